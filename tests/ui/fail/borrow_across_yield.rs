use workflow::prelude::*;

#[workflow]
async fn keeps_a_borrow(name: String) -> usize {
    let first: &str = &name[..1]; //~ ERROR
    sleep!(1.secs());
    first.len()
}

fn main() {}
