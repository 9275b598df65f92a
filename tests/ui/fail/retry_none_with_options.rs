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

// `none` opts out of retries: it takes no other option.
#[workflow(retry(max_attempts = 5))]
async fn retried(svc: &Svc) -> Result<u32, SvcError> {
    #[retry(none, max_attempts = 2)] //~ ERROR
    let a: u32 = svc.call().await?;
    Ok(a)
}

fn main() {}
