use workflow::prelude::*;

pub struct Order {
    pub id: u32,
}

#[workflow]
async fn ships(order: Order) -> u32 { //~ ERROR 2
    order.id
}

fn main() {}
