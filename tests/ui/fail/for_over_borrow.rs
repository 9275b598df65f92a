use workflow::prelude::*;

#[workflow]
async fn iterates_a_borrow(items: Vec<u32>) -> u32 {
    let mut sum: u32 = 0;
    for x in items.iter() { //~ ERROR
        sleep!(1.secs());
        sum += x;
    }
    for x in &items { //~ ERROR
        sleep!(1.secs());
        sum += x;
    }
    sum
}

fn main() {}
