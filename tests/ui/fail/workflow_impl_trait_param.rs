use workflow::prelude::*;

#[workflow]
async fn sums(items: impl IntoIterator<Item = u32>) -> u32 { //~ ERROR
    items.into_iter().sum()
}

fn main() {}
