use workflow::prelude::*;

struct Svc;
impl Svc {
    async fn busy(&self) -> bool {
        false
    }
}

#[workflow]
async fn waits_while_busy(svc: &Svc) {
    while svc.busy().await { //~ ERROR
        sleep!(10.secs());
    }
}

fn main() {}
