use workflow::prelude::*;

#[derive(Debug, serde::Serialize, serde::Deserialize, WorkflowError)]
enum MyError {
    Failed,
}

type Result<T> = std::result::Result<T, MyError>;

#[workflow]
async fn aliased(n: u32) -> Result<u32> { //~ ERROR
    Ok(n)
}

fn main() {}
