use workflow::prelude::*;

// `5` is not a duration: `5.secs()` is.
#[workflow]
async fn pauses() -> u32 {
    sleep!(5); //~ ERROR
    1
}

fn main() {}
