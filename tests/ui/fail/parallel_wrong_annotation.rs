use workflow::prelude::*;

#[workflow]
async fn number(n: u32) -> u32 {
    n
}

#[workflow]
async fn text(n: u32) -> String {
    n.to_string()
}

#[workflow]
async fn parent() -> Result<u32, NestedError<NoError>> {
    let (a, b): (u32, u32) = call_nested!(parallel(number(1), text(2)))?; //~ ERROR
    Ok(a + b)
}

fn main() {}
