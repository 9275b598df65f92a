use workflow::prelude::*;

async fn price(item: u32) -> u32 {
    item * 10
}

#[workflow]
async fn with_tax(item: u32) -> u32 {
    let total: u32 = price(item).await * 2; //~ ERROR
    total
}

fn main() {}
