use workflow::prelude::*;

fn compute(n: u32) -> u32 {
    n * 2
}

#[workflow]
async fn computes(n: u32) -> u32 {
    let a: u32 = compute(n).await; //~ ERROR
    a
}

fn main() {}
