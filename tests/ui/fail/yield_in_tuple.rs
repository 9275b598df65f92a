use workflow::prelude::*;

async fn price(item: u32) -> u32 {
    item * 10
}

// Two tasks in one expression: a user hoping they run together.
#[workflow]
async fn both(a: u32, b: u32) -> u32 {
    let (x, y): (u32, u32) = (price(a).await, price(b).await); //~ ERROR 2
    x + y
}

fn main() {}
