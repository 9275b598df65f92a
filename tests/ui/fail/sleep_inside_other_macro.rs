use workflow::prelude::*;

#[workflow]
async fn logs(n: u32) -> u32 {
    println!("slept: {:?}", sleep!(1.secs())); //~ ERROR
    n
}

fn main() {}
