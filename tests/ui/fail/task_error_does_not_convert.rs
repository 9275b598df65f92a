use workflow::prelude::*;

#[derive(Debug, serde::Serialize, serde::Deserialize, WorkflowError)]
enum MyError {
    Failed,
}

struct Svc;
impl Svc {
    async fn call(&self) -> Result<u32, std::io::Error> {
        Ok(1)
    }
}

#[workflow]
async fn calls(svc: &Svc) -> Result<u32, MyError> {
    let a: u32 = svc.call().await?; //~ ERROR
    Ok(a)
}

fn main() {}
