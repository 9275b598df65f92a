use workflow::prelude::*;

struct Svc;
impl Svc {
    async fn find(&self, id: u32) -> Option<String> {
        Some(id.to_string())
    }
}

#[workflow]
async fn lookup(svc: &Svc, id: u32) -> usize {
    if let Some(name) = svc.find(id).await { //~ ERROR
        name.len()
    } else {
        0
    }
}

fn main() {}
