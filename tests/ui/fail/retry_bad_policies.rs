use serde::{Deserialize, Serialize};
use workflow::prelude::*;

#[derive(Debug, Serialize, Deserialize, WorkflowError)]
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
async fn bad_values(svc: &Svc) -> Result<u32, SvcError> {
    #[retry(max_attempts = 0, interval = 5.secs())] //~ ERROR
    let a: u32 = svc.call().await?;
    #[retry(backoff = 0.5)] //~ ERROR
    let b: u32 = svc.call().await?;
    #[retry(on = ["States.Timeout"])] //~ ERROR
    let c: u32 = svc.call().await?;
    #[retry(interval = 0.secs(), jitter = half, retries = 3)] //~ ERROR
    let d: u32 = svc.call().await?;
    #[timeout(0.secs())] //~ ERROR
    let e: u32 = svc.call().await?;
    #[retry(interval = 0.secs(), max_delay = -(1.secs()))] //~ ERROR 2
    let f: u32 = svc.call().await?;
    Ok(a + b + c + d + e + f)
}

#[workflow]
async fn misplaced(svc: &Svc) -> Result<u32, SvcError> {
    #[retry] //~ ERROR
    let x = 1;
    #[retry] //~ ERROR
    sleep!(1.secs());
    #[retry]
    #[retry] //~ ERROR
    let a: u32 = svc.call().await?;
    Ok(x + a)
}

#[workflow(retry(backoff = 0.1))] //~ ERROR
async fn bad_default(svc: &Svc) -> Result<u32, SvcError> {
    svc.call().await
}

#[derive(Debug, Serialize, Deserialize, WorkflowError)]
enum Reserved {
    #[workflow_error(name = "States.TaskFailed")] //~ ERROR
    Failed,
    #[workflow_error(transparent)] //~ ERROR
    Two(SvcError, SvcError),
    #[workflow_error(retryable)] //~ ERROR
    Other,
}

fn main() {}
