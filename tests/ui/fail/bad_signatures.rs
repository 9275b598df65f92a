use workflow::prelude::*;

#[workflow]
fn not_async(n: u32) -> u32 { //~ ERROR
    n
}

#[workflow]
async fn generic<T: Clone>(t: T) -> T { //~ ERROR
    t
}

#[workflow(name = "has spaces")] //~ ERROR
async fn badly_named() {}

#[workflow(retries = 3)] //~ ERROR
async fn unknown_option() {}

fn main() {}
