use workflow::prelude::*;

async fn fetch(n: u32) -> u32 {
    n
}

#[workflow]
async fn maybe(n: u32) -> u32 {
    let v: u32 = if n > 0 { //~ ERROR
        fetch(n).await
    };
    v
}

fn main() {}
