use workflow::prelude::*;

#[derive(Debug)]
struct Unreachable;

struct Svc;
impl Svc {
    async fn status(&self) -> Result<bool, Unreachable> {
        Ok(true)
    }
}

// A poll records its call errors as text: the error type must be `Display`.
#[workflow]
async fn polls(svc: &Svc) -> Result<(), PollError> {
    let _done: Polled<bool> = poll_until!(svc.status(), |s| *s, every = 1.secs(), timeout = 1.mins())?; //~ ERROR
    Ok(())
}

fn main() {}
