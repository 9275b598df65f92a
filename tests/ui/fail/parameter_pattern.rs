use workflow::prelude::*;

#[workflow]
async fn adds((a, b): (u32, u32)) -> u32 { //~ ERROR
    a + b
}

fn main() {}
