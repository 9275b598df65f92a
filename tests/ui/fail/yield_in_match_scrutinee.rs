use workflow::prelude::*;

struct Svc;
impl Svc {
    async fn status(&self) -> Result<u32, String> {
        Ok(1)
    }
}

#[workflow]
async fn branches(svc: &Svc) -> u32 {
    match svc.status().await { //~ ERROR
        Ok(n) => n,
        Err(_) => 0,
    }
}

fn main() {}
