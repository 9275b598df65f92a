//! The rewrite that the error of a yield point in a `while let` condition shows
//! (`tests/ui/fail/yield_in_while_let_condition.rs`), written out: it compiles, and ends.
#![deny(warnings)]
// `tests/asl.rs` includes this file as a module, where `main` is unused.
#![allow(dead_code)]

use workflow::prelude::*;

/// The item after `done` items, if any: a task.
async fn pop(items: &[u32], done: usize) -> Option<u32> {
    items.get(done).copied()
}

#[workflow(name = "WhileLetRewrite")]
pub async fn drain(items: Vec<u32>) -> u32 {
    let mut total: u32 = 0;
    let mut done: usize = 0;
    loop {
        let next: Option<u32> = pop(&items, done).await;
        let Some(x) = next else { break };
        total += x;
        done += 1;
        sleep!(1.millis());
    }
    total
}

fn main() {
    let _ = drain;
}
