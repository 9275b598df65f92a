use workflow::prelude::*;

#[derive(Debug, serde::Serialize, serde::Deserialize, WorkflowError)]
enum MyError {
    Failed,
}

async fn fetch(n: u32) -> u32 {
    n
}

#[workflow]
async fn returns(n: u32) -> Result<u32, MyError> {
    let v: u32 = fetch(n).await;
    if v == 0 {
        return 0; //~ ERROR
    }
    Ok(v)
}

fn main() {}
