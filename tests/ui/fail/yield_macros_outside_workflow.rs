use workflow::prelude::*;

#[workflow]
async fn child(n: u32) -> u32 {
    n
}

async fn helper() {
    sleep!(1.secs()); //~ ERROR
    let _ = call_nested!(child(1)); //~ ERROR
    wait_for_callback!(|token| async move { drop(token) }, timeout = 1.secs()); //~ ERROR
}

fn main() {}
