use workflow::prelude::*;

#[derive(Debug, serde::Serialize, serde::Deserialize, WorkflowError)]
enum SvcError {
    Unavailable,
}

fn compute(n: u32) -> Result<u32, SvcError> {
    Ok(n)
}

// A synchronous call is not a task: there is nothing to retry durably.
#[workflow]
async fn retried(n: u32) -> Result<u32, SvcError> {
    #[retry(max_attempts = 3)] //~ ERROR
    let a: u32 = compute(n)?;
    sleep!(1.secs());
    Ok(a)
}

fn main() {}
