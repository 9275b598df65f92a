use workflow::prelude::*;

struct Svc;
impl Svc {
    async fn allowed(&self, n: u32) -> bool {
        n > 1
    }
}

#[workflow]
async fn guarded(svc: &Svc, n: u32) -> u32 {
    match n {
        0 => 0,
        n if svc.allowed(n).await => n, //~ ERROR
        _ => {
            sleep!(1.secs());
            1
        }
    }
}

fn main() {}
