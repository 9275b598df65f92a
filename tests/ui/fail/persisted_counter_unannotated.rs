use workflow::prelude::*;

#[workflow]
async fn counts(n: u32) -> u32 {
    let mut tries = 0; //~ ERROR
    while tries < n {
        tries += 1;
        sleep!(1.secs());
    }
    tries
}

fn main() {}
