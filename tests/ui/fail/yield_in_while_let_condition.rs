use workflow::prelude::*;

struct Queue;
impl Queue {
    async fn pop(&self) -> Option<u32> {
        None
    }
}

// The message shows the whole loop rewritten (`tests/ui/pass/while_let_rewrite.rs`
// compiles it): bound once before the loop, the value would never change.
#[workflow]
async fn drain(q: &Queue) -> u32 {
    let mut total: u32 = 0;
    while let Some(x) = q.pop().await { //~ ERROR
        total += x;
        sleep!(1.secs());
    }
    total
}

fn main() {}
