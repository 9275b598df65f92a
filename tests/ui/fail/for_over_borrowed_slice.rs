use workflow::prelude::*;

#[workflow]
async fn skips_the_first(items: Vec<u32>) -> u32 {
    let mut sum: u32 = 0;
    for x in &items[1..] { //~ ERROR
        sleep!(1.secs());
        sum += x;
    }
    sum
}

fn main() {}
