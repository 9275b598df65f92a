use workflow::prelude::*;

#[workflow]
async fn sums(items: Vec<u32>) -> u32 {
    let mut sum: u32 = 0;
    for x in items.as_slice() { //~ ERROR
        sleep!(1.secs());
        sum += x;
    }
    sum
}

fn main() {}
