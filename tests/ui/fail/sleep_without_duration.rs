use workflow::prelude::*;

#[workflow]
async fn pauses() -> u32 {
    sleep!(); //~ ERROR
    1
}

fn main() {}
