use workflow::prelude::*;

struct Svc;
impl Svc {
    async fn status(&self) -> Result<bool, String> {
        Ok(true)
    }
}

#[workflow]
async fn polls(svc: &Svc) -> Result<(), PollError> {
    let _done: Polled<bool> = poll_until!(
        svc.status(),
        every = 1.secs(), //~ ERROR
        timeout = 1.mins(),
    )?;
    Ok(())
}

fn main() {}
