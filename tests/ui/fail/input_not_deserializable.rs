use workflow::prelude::*;

#[derive(serde::Serialize)]
struct Order {
    items: Vec<String>,
}

#[workflow]
async fn takes_an_order(order: Order) -> usize { //~ ERROR
    order.items.len()
}

fn main() {}
