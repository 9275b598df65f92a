use workflow::prelude::*;

struct Svc;
impl Svc {
    async fn status(&self) -> Result<bool, String> {
        Ok(true)
    }
}

#[workflow]
async fn typo(svc: &Svc) -> Result<(), PollError> {
    let _done: Polled<bool> = poll_until!(
        svc.status(),
        |s| *s,
        every = 1.secs(),
        timeout = 1.mins(),
        timeout = 2.mins(), //~ ERROR
        max_retries = 3, //~ ERROR
    )?;
    Ok(())
}

fn main() {}
