use workflow::prelude::*;

struct Svc;

#[workflow]
async fn borrowed<'a>(svc: &'a Svc, n: u32) -> u32 { //~ ERROR
    let _ = svc;
    n
}

fn main() {}
