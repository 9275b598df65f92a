use workflow::prelude::*;

#[workflow]
async fn waits_for_it(maybe: Option<u32>) -> u32 {
    match maybe {
        Some(n) => { //~ ERROR
            sleep!(1.secs());
            n
        }
        None => 0,
    }
}

fn main() {}
