use workflow::prelude::*;

async fn not_a_workflow() {
    poll_until!(check(), |v| *v, every = 1.secs(), timeout = 1.mins()); //~ ERROR
}

async fn check() -> Result<bool, String> {
    Ok(true)
}

fn main() {}
