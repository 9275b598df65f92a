use workflow::prelude::*;

struct Svc;
impl Svc {
    async fn start(&self) -> u64 {
        7
    }
    async fn status(&self, job: u64) -> Result<bool, String> {
        Ok(job > 0)
    }
}

#[workflow]
async fn polls(svc: &Svc) -> Result<bool, PollError> {
    let done: Polled<bool> = poll_until!(
        svc.status(svc.start().await), //~ ERROR
        |s| *s,
        every = 1.secs(),
        timeout = 1.mins(),
    )?;
    Ok(done.value)
}

fn main() {}
