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
    #[retry(interval = 1.secs(), max_attempts = 3, interval = 2.secs())] //~ ERROR
    let a: u32 = svc.call().await?;
    Ok(a)
}

fn main() {}
