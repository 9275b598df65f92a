use workflow::prelude::*;

struct Svc;
impl Svc {
    async fn name(&self) -> String {
        "tea".to_owned()
    }
}

#[workflow]
async fn name_length(svc: &Svc) -> usize {
    let len: usize = svc.name().await.len(); //~ ERROR
    len
}

fn main() {}
