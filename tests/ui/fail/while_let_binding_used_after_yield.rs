use workflow::prelude::*;

#[workflow]
async fn drains(mut queue: Vec<String>) -> usize {
    let mut total: usize = 0;
    while let Some(item) = queue.pop() { //~ ERROR
        sleep!(1.secs());
        total += item.len();
    }
    total
}

fn main() {}
