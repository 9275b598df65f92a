use workflow::prelude::*;

#[workflow]
async fn child(n: u32) -> u32 {
    n
}

#[workflow]
async fn parent(items: Vec<u32>) -> Result<Vec<u32>, NestedError<NoError>> {
    let all: Vec<u32> = call_nested!(for x in items => child(x), max_concurrency = 0)?; //~ ERROR
    Ok(all)
}

fn main() {}
