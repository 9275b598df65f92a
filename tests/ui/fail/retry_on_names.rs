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
    #[retry(on = ["States.ALL"])] //~ ERROR
    let a: u32 = svc.call().await?;
    #[retry(on = [])] //~ ERROR
    let b: u32 = svc.call().await?;
    #[retry(on = [Unavailable])] //~ ERROR
    let c: u32 = svc.call().await?;
    #[retry(on = [""])] //~ ERROR
    let d: u32 = svc.call().await?;
    Ok(a + b + c + d)
}

fn main() {}
