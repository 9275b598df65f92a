use workflow::prelude::*;

struct Jobs;

impl Jobs {
    #[workflow]
    async fn run(&self, n: u32) -> u32 { //~ ERROR
        n
    }
}

fn main() {}
