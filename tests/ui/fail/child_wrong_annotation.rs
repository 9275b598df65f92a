use workflow::prelude::*;

#[workflow]
async fn child(n: u32) -> u32 {
    n
}

#[workflow]
async fn parent() -> Result<usize, NestedError<NoError>> {
    let a: String = call_nested!(child(1))?; //~ ERROR
    Ok(a.len())
}

fn main() {}
