use workflow::prelude::*;

async fn check() -> Result<bool, String> {
    Ok(true)
}

#[workflow]
async fn spins() -> Result<(), PollError> {
    let _a: Polled<bool> = poll_until!(check(), |v| *v, every = 0.secs(), timeout = 1.mins())?; //~ ERROR
    let _b: Polled<bool> = poll_until!(check(), |v| *v, every = std::time::Duration::ZERO, max_attempts = 3)?; //~ ERROR
    let _c: Polled<bool> = poll_until!(check(), |v| *v, every = 1.secs(), max_attempts = 0)?; //~ ERROR
    let _d: Polled<bool> = poll_until!(check(), |v| *v, every = (-1).secs(), max_attempts = 3)?; //~ ERROR
    Ok(())
}

fn main() {}
