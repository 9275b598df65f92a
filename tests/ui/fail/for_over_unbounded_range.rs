use workflow::prelude::*;

#[workflow]
async fn forever(start: u32) -> u32 {
    for i in start.. { //~ ERROR
        sleep!(1.secs());
        if i > 10 {
            return i;
        }
    }
    0
}

fn main() {}
