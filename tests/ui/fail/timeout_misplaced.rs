use serde::{Deserialize, Serialize};
use workflow::prelude::*;

#[derive(Debug, Serialize, Deserialize, WorkflowError, thiserror::Error)]
enum SvcError {
    #[error("unavailable")]
    Unavailable,
    #[error(transparent)]
    #[workflow_error(transparent)]
    Timeout(#[from] TaskTimeout),
}

struct Svc;
impl Svc {
    async fn call(&self) -> Result<u32, SvcError> {
        Ok(1)
    }
}

fn parse(n: u32) -> u32 {
    n
}

#[workflow]
async fn misplaced(svc: &Svc) -> Result<u32, SvcError> {
    #[timeout(5.secs())] //~ ERROR
    let x: u32 = parse(1);
    #[timeout(5.secs())] //~ ERROR
    sleep!(1.secs());
    #[timeout(5.secs())]
    #[timeout(10.secs())] //~ ERROR
    let a: u32 = svc.call().await?;
    Ok(x + a)
}

fn main() {}
