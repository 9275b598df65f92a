//! Every way out of the code after a yield point: labelled and unlabelled `break` and
//! `continue` that skip later yield points of their own body, `break 'outer value` from
//! a `match`, labelled value blocks with the `break` before or after a yield, `let … else
//! { break }`, early `return` and `?`. Run natively and as ASL by `tests/asl.rs`, and
//! compared with plain Rust by `tests/exits.rs`; compiled here with every warning denied.
#![deny(warnings, clippy::all)]
#![allow(dead_code)]

use serde::{Deserialize, Serialize};
use workflow::prelude::*;

/// Records every call, so a test can compare the order with plain Rust's.
#[derive(Default)]
pub struct Svc {
    pub calls: std::sync::Mutex<Vec<u32>>,
}

impl Svc {
    pub async fn note(&self, n: u32) -> u32 {
        self.calls.lock().unwrap().push(n);
        n
    }
    /// `Some(n - 1)` down to `None` at 0.
    pub async fn next(&self, n: u32) -> Option<u32> {
        self.calls.lock().unwrap().push(n);
        n.checked_sub(1)
    }
    pub async fn check(&self, n: u32) -> Result<u32, Bad> {
        self.calls.lock().unwrap().push(n);
        if n == 13 {
            Err(Bad::Unlucky(n))
        } else {
            Ok(n)
        }
    }
}

#[derive(WorkflowError, Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
pub enum Bad {
    #[error("unlucky {0}")]
    Unlucky(u32),
    #[error("too big {0}")]
    TooBig(u32),
}

/// A child for the `break 'outer value` after a child.
#[workflow]
pub async fn halve(n: u32) -> u32 {
    n / 2
}

/// A labelled value block whose `break` comes after a yield, and one whose `break` comes
/// before it.
#[workflow]
pub async fn value_blocks(s: &Svc, n: u32) -> u32 {
    let x: u32 = 'b: {
        let a: u32 = s.note(n).await;
        if a > 3 {
            break 'b a * 10;
        }
        a + 1
    };
    let y: u32 = 'c: {
        if x > 50 {
            break 'c 99;
        }
        let b: u32 = s.note(x).await;
        b + 2
    };
    x + y
}

/// Labelled `continue` and `break` of a `while` from a `for` inside it, after a yield of
/// the `for` and with yields after the `for`.
#[workflow]
pub async fn for_in_while(s: &Svc, rounds: u32, items: Vec<u32>) -> u32 {
    let mut round: u32 = 0;
    let mut total: u32 = 0;
    'rounds: while round < rounds {
        round += 1;
        let these: Vec<u32> = items.clone();
        for i in these {
            let v: u32 = s.note(round * 100 + i).await;
            if v % 5 == 0 {
                continue 'rounds;
            }
            if v % 7 == 0 {
                break 'rounds;
            }
            total += v;
        }
        sleep!(1.millis());
        total += s.note(round).await;
    }
    total
}

/// `break 'outer value` from a `match` inside nested loops, after a child.
#[workflow]
pub async fn match_break_value(s: &Svc, limit: u32) -> Result<u32, NestedError<NoError>> {
    let mut i: u32 = 0;
    let found: u32 = 'outer: loop {
        i += 1;
        let mut j: u32 = 0;
        loop {
            j += 1;
            let h: u32 = call_nested!(halve(i * 10 + j))?;
            match h % 4 {
                0 => break 'outer h,
                1 => break,
                _ => {}
            }
            if j > limit {
                break 'outer 0;
            }
            s.note(h).await;
        }
        s.note(1000 + i).await;
    };
    Ok(found)
}

/// Yield points inside labelled blocks: leaving the block skips the rest of it.
#[workflow]
pub async fn labelled_blocks(s: &Svc, n: u32) -> u32 {
    let mut out: u32 = 0;
    'outer: {
        let a: u32 = s.note(n).await;
        'inner: {
            if a % 2 == 0 {
                break 'inner;
            }
            sleep!(1.millis());
            if a % 3 == 0 {
                break 'outer;
            }
            out += s.note(a + 1).await;
        }
        out += s.note(a + 2).await;
    }
    out
}

/// A plain `continue` after a `sleep!`, with yields after the inner loop.
#[workflow]
pub async fn continue_after_sleep(s: &Svc, n: u32) -> u32 {
    let mut total: u32 = 0;
    for r in 0..n {
        let mut k: u32 = 0;
        while k < 3 {
            k += 1;
            sleep!(1.millis());
            if (r + k) % 2 == 0 {
                continue;
            }
            total += s.note(r * 10 + k).await;
        }
        total += s.note(r).await;
    }
    total
}

/// `loop { let Some(x) = task().await else { break }; … }` inside an `if` inside a `for`.
#[workflow]
pub async fn let_else_break(s: &Svc, starts: Vec<u32>) -> u32 {
    let mut total: u32 = 0;
    for start in starts {
        if start > 0 {
            let mut at: u32 = start;
            loop {
                let next: Option<u32> = s.next(at).await;
                let Some(x) = next else { break };
                at = x;
                total += x;
            }
        }
        total += s.note(start).await;
    }
    total
}

/// A `match` whose arms `continue`, `break` or fall through after different yields.
#[workflow]
pub async fn match_arms(s: &Svc, items: Vec<u32>) -> u32 {
    let mut total: u32 = 0;
    for i in items {
        match i % 3 {
            0 => {
                s.note(i).await;
                continue;
            }
            1 => {
                sleep!(1.millis());
                if i > 20 {
                    break;
                }
            }
            _ => {
                total += s.note(i * 2).await;
            }
        }
        total += i;
    }
    s.note(total).await
}

/// Early `return`s and `?` from inside loops and blocks, after yields.
#[workflow]
pub async fn early_exits(s: &Svc, items: Vec<u32>) -> Result<u32, Bad> {
    let mut total: u32 = 0;
    for i in items {
        let v: u32 = s.check(i).await?;
        if v == 0 {
            return Ok(total);
        }
        if v > 100 {
            return Err(Bad::TooBig(v));
        }
        total += v;
    }
    let last: u32 = s.check(total).await?;
    Ok(last)
}

/// An outer `for` variable read inside an inner loop and again after a later yield, and
/// values dead after a `sleep!` followed by `break`: no warning, nothing dead persisted.
#[workflow]
pub async fn outer_variable(s: &Svc, n: u32) -> u32 {
    let mut total: u32 = 0;
    for r in 0..n {
        let mut c: u32 = 0;
        while c < 2 {
            c += 1;
            total += s.note(r * 10 + c).await;
        }
        sleep!(1.millis());
        total += r;
    }
    loop {
        let dead: u32 = total * 2;
        sleep!(1.millis());
        if total > 0 {
            break;
        }
        total += dead + 1;
    }
    total
}

fn main() {}
