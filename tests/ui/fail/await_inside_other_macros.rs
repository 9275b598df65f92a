use workflow::prelude::*;

struct Svc;
impl Svc {
    async fn fetch(&self, n: u32) -> u32 {
        n
    }
}

// The arguments of another macro are an expression like any other: a task there would run
// without a checkpoint.
#[workflow]
async fn logs(svc: &Svc, n: u32) -> u32 {
    println!("fetched {}", svc.fetch(n).await); //~ ERROR
    assert!(svc.fetch(n).await > 0); //~ ERROR
    let v: Vec<u32> = vec![svc.fetch(n).await, 2]; //~ ERROR
    v.len() as u32
}

fn main() {}
