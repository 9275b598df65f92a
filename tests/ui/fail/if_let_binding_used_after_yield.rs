use workflow::prelude::*;

#[workflow]
async fn waits_for_it(maybe: Option<String>) -> usize {
    if let Some(name) = maybe { //~ ERROR
        sleep!(1.secs());
        name.len()
    } else {
        0
    }
}

fn main() {}
