use workflow::prelude::*;

#[workflow]
async fn child(n: u32) -> u32 {
    n
}

// One result per item: a `Vec<u32>`, not a `u32`.
#[workflow]
async fn parent(items: Vec<u32>) -> Result<u32, NestedError<NoError>> {
    let total: u32 = call_nested!(for x in items => child(x))?; //~ ERROR
    Ok(total)
}

fn main() {}
