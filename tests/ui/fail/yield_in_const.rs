use workflow::prelude::*;

#[workflow]
async fn with_a_const() -> u32 {
    const PAUSE: () = {
        sleep!(1.secs()); //~ ERROR
    };
    PAUSE;
    1
}

fn main() {}
