use workflow::prelude::*;

async fn fetch(n: u32) -> u32 {
    n
}

#[workflow]
async fn early(n: u32) -> u32 {
    if n == 0 {
        return fetch(1).await; //~ ERROR
    }
    sleep!(1.secs());
    n
}

fn main() {}
