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
    #[retry(backoff_rate = 2.0)] //~ ERROR
    let a: u32 = svc.call().await?;
    #[retry(delay = 1.secs())] //~ ERROR
    let b: u32 = svc.call().await?;
    #[retry(max_attempt = 3)] //~ ERROR
    let c: u32 = svc.call().await?;
    #[retry(jitter = "full")] //~ ERROR
    let d: u32 = svc.call().await?;
    Ok(a + b + c + d)
}

fn main() {}
