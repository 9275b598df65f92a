//! Deeper nesting of control flow around yield points; run by `tests/nested_control_flow.rs`.
#![deny(warnings, clippy::all)]
#![allow(dead_code)]

use workflow::prelude::*;

/// Records what it is called with, so a test can compare with the plain-Rust order.
#[derive(Default)]
pub struct Log {
    pub calls: std::sync::Mutex<Vec<u32>>,
}

impl Log {
    pub async fn note(&self, n: u32) -> u32 {
        self.calls.lock().unwrap().push(n);
        n
    }
}

/// Yield points at both levels of nested loops, `continue 'outer` and `break 'outer`
/// after a yield in the inner loop, and a `break value` out of the outer `loop`.
#[workflow]
pub async fn grid(log: &Log, rows: u32, cols: u32) -> u32 {
    let mut r: u32 = 0;
    let found: u32 = 'outer: loop {
        r += 1;
        log.note(r * 100).await;
        let mut c: u32 = 0;
        while c < cols {
            c += 1;
            let v: u32 = log.note(r * 100 + c).await;
            if v % 7 == 0 {
                continue 'outer;
            }
            if r >= rows && c == cols {
                break 'outer v;
            }
            sleep!(1.millis());
        }
    };
    found
}

/// A `match` inside a `for` inside an `if`, with yields at every level.
#[workflow]
pub async fn layered(log: &Log, items: Vec<Option<u32>>, deep: bool) -> Vec<u32> {
    let mut out: Vec<u32> = Vec::new();
    if deep {
        log.note(1).await;
        for item in items {
            match item {
                Some(n) if n > 10 => {
                    let n: u32 = n;
                    let a: u32 = log.note(n).await;
                    out.push(a);
                    sleep!(1.millis());
                    out.push(n + 1);
                }
                Some(n) => out.push(n),
                None => {
                    sleep!(1.millis());
                    out.push(0);
                }
            }
        }
    } else {
        let b: u32 = log.note(2).await;
        out.push(b);
    }
    out
}

/// `while let` over a queue that grows while it is drained, with a value-producing `if`.
#[workflow]
pub async fn drain(log: &Log, mut queue: Vec<u32>) -> (u32, usize) {
    let mut seen: usize = 0;
    let mut sum: u32 = 0;
    while let Some(n) = queue.pop() {
        let n: u32 = n;
        seen += 1;
        let add: u32 = if n % 2 == 0 {
            log.note(n).await
        } else {
            sleep!(1.millis());
            n * 10
        };
        sum += add;
        if n > 3 {
            queue.push(n / 2);
        }
    }
    (sum, seen)
}

fn main() {}
