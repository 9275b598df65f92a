use workflow::prelude::*;

#[workflow]
async fn child(n: u32) -> u32 {
    n
}

#[workflow]
async fn no_call() -> Result<u32, NestedError<NoError>> {
    let a: u32 = call_nested!(child)?; //~ ERROR
    Ok(a)
}

#[workflow]
async fn empty_parallel() -> Result<(), NestedError<NoError>> {
    let () = call_nested!(parallel())?; //~ ERROR
    Ok(())
}

fn main() {}
