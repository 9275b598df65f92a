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

// A timeout is one of the call's errors: `MyError` needs `From<TaskTimeout>`.
#[workflow]
async fn timed(svc: &Svc) -> Result<u32, MyError> {
    #[timeout(5.secs())] //~ ERROR
    let a: u32 = svc.call().await?;
    Ok(a)
}

fn main() {}
