use workflow::prelude::*;

#[derive(Debug, serde::Serialize, serde::Deserialize, WorkflowError)]
enum SvcError {
    Unavailable,
}

struct Svc;
impl Svc {
    async fn call(&self) -> Result<u32, SvcError> {
        Ok(1)
    }
}

#[workflow]
async fn retried(svc: &Svc) -> Result<u32, SvcError> {
    #[retry(max_attempts = 0)] //~ ERROR
    let a: u32 = svc.call().await?;
    #[retry(backoff = -2.0)] //~ ERROR
    let b: u32 = svc.call().await?;
    Ok(a + b)
}

fn main() {}
