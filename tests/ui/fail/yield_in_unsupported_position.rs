use workflow::prelude::*;

async fn fetch(n: u32) -> u32 {
    n
}

fn double(n: u32) -> u32 {
    n * 2
}

#[workflow]
async fn misplaced(n: u32) -> u32 {
    let a = double(fetch(n).await); //~ ERROR
    if a > 10 {
        sleep!(1.secs());
    }
    let later = || call_nested!(misplaced(1)); //~ ERROR
    let _ = later;
    a
}

fn main() {}
