use serde::{Deserialize, Serialize};
use workflow::prelude::*;

#[derive(Serialize, Deserialize)]
struct Report {
    id: u32,
    total: u32,
}

async fn total(id: u32) -> u32 {
    id * 2
}

#[workflow]
async fn report(id: u32) -> Report {
    Report {
        id,
        total: total(id).await, //~ ERROR
    }
}

fn main() {}
