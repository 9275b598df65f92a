use workflow::prelude::*;

struct Svc;
impl Svc {
    async fn price(&self, item: &str) -> u32 {
        item.len() as u32
    }
}

#[workflow]
async fn prices(svc: &Svc, items: Vec<String>) -> u32 {
    let total: u32 = items.iter().map(|i| svc.price(i).await).sum(); //~ ERROR
    total
}

fn main() {}
