use workflow::prelude::*;

async fn fetch() -> u32 {
    1
}

#[workflow]
async fn hidden_yields() -> u32 {
    let in_closure = || sleep!(1.secs()); //~ ERROR
    let in_async = async {
        poll_until!(check(), |v| *v, every = 1.secs(), timeout = 1.mins()) //~ ERROR
    };
    fn in_item() {
        sleep!(1.secs()); //~ ERROR
    }
    let n: u32 = fetch().await;
    n
}

async fn check() -> Result<bool, String> {
    Ok(true)
}

fn main() {}
