use workflow::prelude::*;

async fn fetch(n: u32) -> Result<u32, String> {
    Ok(n)
}

#[workflow]
async fn plain(n: u32) -> u32 {
    let a: u32 = fetch(n).await?; //~ ERROR
    a
}

fn main() {}
