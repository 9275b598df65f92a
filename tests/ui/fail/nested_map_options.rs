use workflow::prelude::*;

#[workflow]
async fn child(n: u32) -> u32 {
    n
}

#[workflow]
async fn typo(items: Vec<u32>) -> Result<Vec<u32>, NestedError<NoError>> {
    let all: Vec<u32> = call_nested!(for x in items => child(x), concurrency = 4)?; //~ ERROR
    Ok(all)
}

#[workflow]
async fn not_a_literal(items: Vec<u32>, limit: u32) -> Result<Vec<u32>, NestedError<NoError>> {
    let all: Vec<u32> = call_nested!(for x in items => child(x), max_concurrency = limit)?; //~ ERROR
    Ok(all)
}

fn main() {}
