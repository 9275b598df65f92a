use workflow::prelude::*;

async fn fetch(n: u32) -> u32 {
    n
}

#[workflow]
async fn returns(n: u32) -> String {
    sleep!(1.secs());
    fetch(n).await //~ ERROR
}

fn main() {}
