use workflow::prelude::*;

struct Svc;
impl Svc {
    async fn call(&self) -> Result<u32, MyError> {
        Ok(1)
    }
}

#[derive(Debug, serde::Serialize, serde::Deserialize, WorkflowError)]
enum MyError {
    Failed,
}

#[workflow(nmae = "Typo")] //~ ERROR
async fn misspelt() {}

#[workflow]
async fn retried(svc: &Svc) -> Result<u32, MyError> {
    #[retry(retries = 3)] //~ ERROR
    let a: u32 = svc.call().await?;
    Ok(a)
}

fn main() {}
