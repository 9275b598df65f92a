use workflow::prelude::*;

async fn find(n: u32) -> Option<u32> {
    Some(n)
}

#[workflow]
async fn let_else(n: u32) -> u32 {
    let Some(found): Option<u32> = find(n).await else { //~ ERROR
        return 0;
    };
    found
}

fn main() {}
