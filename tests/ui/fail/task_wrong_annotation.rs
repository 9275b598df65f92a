use workflow::prelude::*;

struct Svc;
impl Svc {
    async fn count(&self) -> u32 {
        1
    }
}

#[workflow]
async fn counts(svc: &Svc) -> usize {
    let n: String = svc.count().await; //~ ERROR
    n.len()
}

fn main() {}
