use workflow::prelude::*;

#[derive(Debug, serde::Serialize, serde::Deserialize, WorkflowError)]
enum MyError {
    Failed,
}

#[workflow]
async fn pauses() -> Result<u32, MyError> {
    sleep!(1.secs())?; //~ ERROR
    Ok(1)
}

fn main() {}
