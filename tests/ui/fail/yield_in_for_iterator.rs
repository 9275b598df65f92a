use workflow::prelude::*;

struct Svc;
impl Svc {
    async fn list(&self) -> Vec<u32> {
        vec![1, 2]
    }
}

#[workflow]
async fn each(svc: &Svc) -> u32 {
    let mut total: u32 = 0;
    for n in svc.list().await { //~ ERROR
        total += n;
        sleep!(1.secs());
    }
    total
}

fn main() {}
