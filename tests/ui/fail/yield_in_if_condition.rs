use workflow::prelude::*;

struct Svc;
impl Svc {
    async fn is_ready(&self) -> bool {
        true
    }
}

#[workflow]
async fn waits(svc: &Svc) -> u32 {
    if svc.is_ready().await { //~ ERROR
        sleep!(1.secs());
    }
    1
}

fn main() {}
