use workflow::prelude::*;

#[workflow]
async fn child(n: u32) -> u32 {
    n
}

#[workflow]
async fn parent() -> Result<u32, NestedError<NoError>> {
    let a: u32 = call_nested!(child(1, 2))?; //~ ERROR
    Ok(a)
}

fn main() {}
