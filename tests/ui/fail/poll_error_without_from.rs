use workflow::prelude::*;

struct Svc;
impl Svc {
    async fn status(&self) -> Result<u32, String> {
        Ok(1)
    }
}

#[derive(Debug, serde::Serialize, serde::Deserialize, WorkflowError)]
enum MyError {
    Failed,
}

// `?` needs `From<PollError> for MyError`.
#[workflow]
async fn polls(svc: &Svc) -> Result<u32, MyError> {
    let p: Polled<u32> = poll_until!(svc.status(), |s| *s > 0, every = 1.secs(), max_attempts = 3)?; //~ ERROR
    Ok(p.value)
}

fn main() {}
