use workflow::prelude::*;

#[derive(Debug, serde::Serialize, serde::Deserialize, WorkflowError)]
enum MyError {
    Failed,
}

async fn fetch(n: u32) -> u32 {
    n
}

#[workflow]
async fn fetches(n: u32) -> Result<u32, MyError> {
    let a: u32 = fetch(n).await?; //~ ERROR
    Ok(a)
}

fn main() {}
