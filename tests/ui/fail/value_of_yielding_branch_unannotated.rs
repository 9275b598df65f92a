use workflow::prelude::*;

async fn fetch(n: u32) -> u32 {
    n
}

#[workflow]
async fn branch_value(n: u32) -> u32 {
    let picked = if n > 1 { fetch(n).await } else { 0 }; //~ ERROR
    let matched = match n { //~ ERROR
        0 => 1,
        _ => {
            sleep!(1.secs());
            2
        }
    };
    picked + matched
}

fn main() {}
