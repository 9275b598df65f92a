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

// A retried task's error needs a name: `String` has none.
#[workflow]
async fn untyped(svc: &Svc) -> Result<u32, MyError> {
    #[retry]
    let a: u32 = svc.call().await?; //~ ERROR
    Ok(a)
}

fn main() {}
