use workflow::prelude::*;

struct Svc;
impl Svc {
    async fn status(&self) -> Result<bool, String> {
        Ok(true)
    }
}

// `timeout = 60` is not a duration: `60.secs()` is.
#[workflow]
async fn polls(svc: &Svc) -> Result<(), PollError> {
    let _done: Polled<bool> = poll_until!(svc.status(), |s| *s, every = 1.secs(), timeout = 60)?; //~ ERROR
    Ok(())
}

fn main() {}
