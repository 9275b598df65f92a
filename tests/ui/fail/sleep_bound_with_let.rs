use workflow::prelude::*;

#[workflow]
async fn pauses() -> u32 {
    let _waited = sleep!(1.secs()); //~ ERROR
    1
}

fn main() {}
