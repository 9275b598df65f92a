use workflow::prelude::*;

#[workflow]
async fn child(n: u32) -> u32 {
    n
}

// A workflow is not an `async fn` any more: run it with `call_nested!(child(1))`.
#[workflow]
async fn parent() -> u32 {
    let a: u32 = child(1).await; //~ ERROR
    a
}

fn main() {}
