use workflow::prelude::*;

struct Counter {
    n: u32,
}

#[workflow]
async fn bumps(counter: &mut Counter) -> u32 { //~ ERROR
    counter.n += 1;
    counter.n
}

fn main() {}
