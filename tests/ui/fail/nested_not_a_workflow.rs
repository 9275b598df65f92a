use workflow::prelude::*;

async fn helper(n: u32) -> u32 {
    n
}

#[workflow]
async fn child(n: u32) -> u32 {
    n
}

#[workflow]
async fn parent() -> Result<u32, NestedError<NoError>> {
    let a: u32 = call_nested!(helper(1))?; //~ ERROR
    let b: u32 = call_nested!(child("one"))?; //~ ERROR
    Ok(a + b)
}

fn main() {}
