use workflow::prelude::*;

#[derive(Debug, serde::Serialize, serde::Deserialize, WorkflowError)]
enum AError {
    A,
}

#[derive(Debug, serde::Serialize, serde::Deserialize, WorkflowError)]
enum BError {
    B,
}

#[workflow]
async fn a(n: u32) -> Result<u32, AError> {
    Ok(n)
}

#[workflow]
async fn b(n: u32) -> Result<u32, BError> {
    Ok(n)
}

// `BError` does not convert into `AError`, the error of the first child that can fail:
// the error is on `b`.
#[workflow]
async fn parent() -> Result<u32, NestedError<AError>> {
    let (x, y): (u32, u32) = call_nested!(parallel(a(1), b(2)))?; //~ ERROR
    Ok(x + y)
}

fn main() {}
