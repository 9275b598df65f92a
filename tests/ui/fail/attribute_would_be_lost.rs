use workflow::prelude::*;

#[workflow]
#[inline] //~ ERROR
async fn quick(n: u32) -> u32 {
    n
}

fn main() {}
