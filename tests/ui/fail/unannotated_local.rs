use workflow::prelude::*;

#[workflow]
async fn forgets_the_type(n: u32) -> u32 {
    let doubled = n * 2; //~ ERROR
    sleep!(1.secs());
    doubled
}

fn main() {}
