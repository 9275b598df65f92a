use workflow::prelude::*;

struct Svc;
impl Svc {
    async fn status(&self) -> Result<bool, String> {
        Ok(true)
    }
}

#[workflow]
async fn wait_forever(svc: &Svc) -> Result<(), PollError> {
    let _done: Polled<bool> = poll_until!(svc.status(), |s| *s, every = 1.secs())?; //~ ERROR
    Ok(())
}

fn main() {}
