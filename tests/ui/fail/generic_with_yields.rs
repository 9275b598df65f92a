use workflow::prelude::*;

// The signature is refused before the body is looked at: no error about `sleep!`.
#[workflow]
async fn generic<T: Clone>(t: T) -> T { //~ ERROR
    sleep!(1.secs());
    t
}

fn main() {}
