use workflow::prelude::*;

struct Svc;
impl Svc {
    async fn get(&self, n: u32) -> u32 {
        n
    }
}

#[workflow]
async fn fetches(svc: &'static Svc, n: u32) -> u32 { //~ ERROR
    let v: u32 = svc.get(n).await;
    v
}

fn main() {}
