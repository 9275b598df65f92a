use workflow::prelude::*;

struct Svc;
impl Svc {
    async fn call(&self) -> Result<u32, String> {
        Ok(1)
    }
}

#[derive(Debug, serde::Serialize, serde::Deserialize, WorkflowError)]
enum MyError {
    Failed,
}

impl From<String> for MyError {
    fn from(_: String) -> Self {
        MyError::Failed
    }
}

// The workflow's default policy applies to every task: this one's error has no names.
#[workflow(retry(max_attempts = 3))]
async fn untyped(svc: &Svc) -> Result<u32, MyError> {
    let a: u32 = svc.call().await?; //~ ERROR
    Ok(a)
}

fn main() {}
