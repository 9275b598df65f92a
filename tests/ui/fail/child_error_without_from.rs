use workflow::prelude::*;

#[derive(Debug, serde::Serialize, serde::Deserialize, WorkflowError)]
enum MyError {
    Failed,
}

#[workflow]
async fn child(n: u32) -> u32 {
    n
}

// `?` needs `From<NestedError<NoError>> for MyError`.
#[workflow]
async fn parent() -> Result<u32, MyError> {
    let a: u32 = call_nested!(child(1))?; //~ ERROR
    Ok(a)
}

fn main() {}
