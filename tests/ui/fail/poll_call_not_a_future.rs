use workflow::prelude::*;

struct Svc;
impl Svc {
    fn status(&self) -> Result<bool, String> {
        Ok(true)
    }
}

#[workflow]
async fn polls(svc: &Svc) -> Result<(), PollError> {
    let _done: Polled<bool> = poll_until!(svc.status(), |s| *s, every = 1.secs(), timeout = 1.mins())?; //~ ERROR
    Ok(())
}

fn main() {}
