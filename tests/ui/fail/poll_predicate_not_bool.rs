use workflow::prelude::*;

struct Svc;
impl Svc {
    async fn status(&self) -> Result<String, String> {
        Ok("done".into())
    }
}

#[workflow]
async fn polls(svc: &Svc) -> Result<(), PollError> {
    let _done: Polled<String> = poll_until!(svc.status(), |s| s.len(), every = 1.secs(), timeout = 1.mins())?; //~ ERROR
    Ok(())
}

fn main() {}
