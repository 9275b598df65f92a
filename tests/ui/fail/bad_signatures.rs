use workflow::prelude::*;

#[workflow]
fn not_async(n: u32) -> u32 {
    n
}

#[workflow]
async fn generic<T: Clone>(t: T) -> T {
    t
}

#[workflow(name = "has spaces")]
async fn badly_named() {}

#[workflow(retries = 3)]
async fn unknown_option() {}

fn main() {}
