use std::cell::Cell;
use workflow::prelude::*;

struct Counter {
    n: Cell<u32>,
}

impl Counter {
    async fn bump(&self) -> u32 {
        self.n.set(self.n.get() + 1);
        self.n.get()
    }
}

// Dependencies are shared between executions on several threads: they must be `Sync`.
#[workflow]
async fn bumps(counter: &Counter) -> u32 { //~ ERROR
    let n: u32 = counter.bump().await;
    n
}

fn main() {}
