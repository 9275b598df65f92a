use workflow::prelude::*;

#[workflow]
async fn doubles(items: Vec<u32>) -> usize {
    let doubled: Vec<_> = items.iter().map(|x| x * 2).collect(); //~ ERROR
    sleep!(1.secs());
    doubled.len()
}

fn main() {}
