//! Yield points inside branches, loops and blocks. Each workflow here is also run by
//! `tests/control_flow.rs`, which checks its result and its history.
#![deny(warnings, clippy::all)]
#![allow(dead_code)]

use serde::{Deserialize, Serialize};
use workflow::prelude::*;

/// A service that echoes and counts; every call is a task.
#[derive(Default)]
pub struct Calc {
    pub calls: std::sync::atomic::AtomicU32,
}

impl Calc {
    pub async fn double(&self, n: u32) -> u32 {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        n * 2
    }
    pub async fn check(&self, n: u32) -> Result<u32, Oops> {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if n == 13 {
            Err(Oops::Unlucky(n))
        } else {
            Ok(n)
        }
    }
    pub async fn ready(&self, n: &u32) -> Result<u32, Oops> {
        Ok(*n)
    }
}

#[derive(WorkflowError, Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
pub enum Oops {
    #[error("unlucky {0}")]
    Unlucky(u32),
    #[error(transparent)]
    #[workflow_error(transparent)]
    Poll(#[from] PollError),
}

/// `if` / `else if` / `else` with a yield in each branch.
#[workflow]
pub async fn branches(calc: &Calc, n: u32) -> u32 {
    let label: u32 = n + 1000;
    if n < 10 {
        let small: u32 = calc.double(n).await;
        sleep!(1.secs());
        small + label
    } else if n < 100 {
        sleep!(2.secs());
        label
    } else {
        calc.double(label).await
    }
}

/// `if let … else` and a `match` with guards whose arms yield.
#[workflow]
pub async fn matching(calc: &Calc, n: Option<u32>) -> Result<String, Oops> {
    let text: String = if let Some(v) = n {
        let v: u32 = v;
        let checked: u32 = calc.check(v).await?;
        format!("some {checked}")
    } else {
        "none".to_owned()
    };
    let kind: String = match n {
        Some(0) => "zero".to_owned(),
        Some(x) if x % 2 == 0 => {
            sleep!(1.secs());
            "even".to_owned()
        }
        Some(_) => {
            calc.double(1).await;
            "odd".to_owned()
        }
        None => "nothing".to_owned(),
    };
    Ok(format!("{text} {kind}"))
}

/// `loop` with `break value`, `continue`, and a counter persisted across yields.
#[workflow]
pub async fn counting(calc: &Calc, limit: u32) -> u32 {
    let mut i: u32 = 0;
    let mut total: u32 = 0;
    let last: u32 = loop {
        i += 1;
        if i % 3 == 0 {
            continue;
        }
        let d: u32 = calc.double(i).await;
        total += d;
        if i >= limit {
            break d;
        }
    };
    total * 1000 + last
}

/// `while` and `while let` around yields.
#[workflow]
pub async fn whiles(calc: &Calc, mut queue: Vec<u32>) -> Vec<u32> {
    let mut out: Vec<u32> = Vec::new();
    while let Some(next) = queue.pop() {
        let next: u32 = next;
        let d: u32 = calc.double(next).await;
        out.push(d);
    }
    let mut n: u32 = 1;
    while n < 100 {
        n = calc.double(n).await;
    }
    out.push(n);
    out
}

/// `for` over an owned collection and over ranges; the position is persisted.
#[workflow]
pub async fn fors(calc: &Calc, items: Vec<u32>) -> (u32, u32, u32) {
    let mut sum: u32 = 0;
    for x in items {
        let d: u32 = calc.double(x).await;
        sum += d;
    }
    let mut squares: u32 = 0;
    for i in 0..4u32 {
        sleep!(1.millis());
        squares += i * i;
    }
    let mut inclusive: u32 = 0;
    for i in 1..=3u32 {
        let d: u32 = calc.double(i).await;
        inclusive += d;
    }
    (sum, squares, inclusive)
}

/// Labelled loops: `break 'outer` and `continue 'outer` from an inner loop, across yields.
#[workflow]
pub async fn labels(calc: &Calc, rows: u32) -> Vec<(u32, u32)> {
    let mut seen: Vec<(u32, u32)> = Vec::new();
    let mut r: u32 = 0;
    'outer: loop {
        r += 1;
        let mut c: u32 = 0;
        loop {
            c += 1;
            let d: u32 = calc.double(c).await;
            if d > 4 {
                continue 'outer;
            }
            if r > rows {
                break 'outer;
            }
            seen.push((r, c));
        }
    }
    seen
}

/// Early `return` and `?` from inside branches and loops.
#[workflow]
pub async fn early(calc: &Calc, items: Vec<u32>) -> Result<u32, Oops> {
    let mut sum: u32 = 0;
    for x in items {
        if x == 0 {
            return Ok(sum);
        }
        let v: u32 = calc.check(x).await?;
        sum += v;
    }
    Ok(sum + 1_000)
}

/// Shadowing across yields: the same name, three types.
#[workflow]
pub async fn shadowing(calc: &Calc, x: u32) -> String {
    let x: u32 = calc.double(x).await;
    let x: String = format!("<{x}>");
    sleep!(1.secs());
    let x: usize = x.len();
    sleep!(1.secs());
    format!("{x}")
}

/// Nested blocks and a value-producing `match` whose arms yield.
#[workflow]
pub async fn blocks(calc: &Calc, n: u32) -> Result<u32, Oops> {
    let a: u32 = {
        let t: u32 = calc.double(n).await;
        t + 1
    };
    let checked: Result<u32, Oops> = calc.check(a).await;
    let b: u32 = match checked {
        Ok(v) => v,
        Err(_) => {
            sleep!(1.secs());
            0
        }
    };
    Ok(a + b)
}

/// A poll inside a loop: each round polls until ready.
#[workflow]
pub async fn poll_rounds(calc: &Calc, rounds: u32) -> Result<u32, Oops> {
    let mut attempts: u32 = 0;
    for round in 0..rounds {
        let p: Polled<u32> = poll_until!(
            calc.ready(&round),
            |v| *v == round,
            every = 5.millis(),
            max_attempts = 3,
        )?;
        attempts += p.attempts;
    }
    Ok(attempts)
}

/// Children started from inside a loop and a branch get distinct ids.
#[workflow]
pub async fn child_loop(n: u32) -> Result<Vec<u32>, NestedError<NoError>> {
    let mut out: Vec<u32> = Vec::new();
    for i in 0..n {
        if i % 2 == 0 {
            let v: u32 = call_nested!(square(i))?;
            out.push(v);
        } else {
            let vs: Vec<u32> = call_nested!(for j in [i, i] => square(j), max_concurrency = 1)?;
            out.extend(vs);
        }
    }
    Ok(out)
}

#[workflow]
pub async fn square(n: u32) -> u32 {
    n * n
}

/// The tail is a `match` whose arms yield.
#[workflow]
pub async fn tail_match(calc: &Calc, n: u32) -> u32 {
    match n {
        0 => 0,
        1 => calc.double(1).await,
        _ => {
            sleep!(1.secs());
            calc.double(n).await
        }
    }
}

/// A local that dies before the next yield needs no annotation.
#[workflow]
pub async fn unannotated_temporaries(calc: &Calc, n: u32) -> u32 {
    let tmp = n + 1;
    let d: u32 = calc.double(tmp).await;
    let unused_later = d * 2;
    let e: u32 = calc.double(unused_later).await;
    e
}

/// Assignments from yield points: `x = ….await`, `x += ….await`, and a nested loop
/// whose inner `for` runs children in parallel.
#[workflow]
pub async fn assignments(
    calc: &Calc,
    rounds: u32,
) -> Result<(u32, Vec<u32>), NestedError<NoError>> {
    let mut acc: u32 = 1;
    let mut seen: Vec<u32> = Vec::new();
    let mut round: u32 = 0;
    while round < rounds {
        round += 1;
        acc = calc.double(acc).await;
        acc += calc.double(round).await;
        for n in [round, round + 10] {
            let (a, b): (u32, u32) = call_nested!(parallel(square(n), square(n + 1)))?;
            seen.push(a + b);
        }
    }
    Ok((acc, seen))
}

/// `if` without `else`, a labelled block left with `break`, and a wait inside both.
#[workflow]
pub async fn skip_ahead(calc: &Calc, n: u32) -> u32 {
    let mut out: u32 = n;
    if n > 5 {
        sleep!(1.secs());
        out += 100;
    }
    'block: {
        let d: u32 = calc.double(out).await;
        if d > 50 {
            out = d;
            break 'block;
        }
        sleep!(1.secs());
        out = d + 1;
    }
    out
}

/// A workflow returning `()` whose tail is a `for` loop that yields.
#[workflow]
pub async fn ping_all(calc: &Calc, n: u32) {
    for i in 0..n {
        calc.double(i).await;
    }
}

fn main() {}
