//! Runs `tests/ui/pass/exits.rs` natively and checks each workflow against the same logic
//! as plain Rust: the same result and the same service calls in the same order.

#[path = "ui/pass/exits.rs"]
mod flows;

use std::sync::Arc;

use flows::*;
use workflow::prelude::*;

/// The workflow's outcome (its output as JSON, or its error's name) and the calls made.
async fn run<W: Workflow>(w: W, input: W::Input) -> (String, Vec<u32>) {
    let svc = Arc::new(Svc::default());
    let rt = Runtime::builder()
        .register(w)
        .register(halve)
        .dependency_arc(svc.clone())
        .build()
        .unwrap();
    let out = match rt.start(w, input).await.unwrap().result().await {
        Ok(out) => serde_json::to_string(&out).unwrap(),
        Err(RunError::Failed(e)) => format!("error {}", e.error_name()),
        Err(_) => panic!("the workflow did not end"),
    };
    let calls = svc.calls.lock().unwrap().clone();
    (out, calls)
}

/// The plain twin's outcome, as `run` reports it.
fn plain<T: serde::Serialize>(out: Result<T, Bad>, calls: Vec<u32>) -> (String, Vec<u32>) {
    let out = match out {
        Ok(v) => serde_json::to_string(&v).unwrap(),
        Err(e) => format!("error {}", e.error_name()),
    };
    (out, calls)
}

fn note(calls: &mut Vec<u32>, n: u32) -> u32 {
    calls.push(n);
    n
}

fn value_blocks_plain(n: u32) -> (String, Vec<u32>) {
    let mut calls = Vec::new();
    let x = 'b: {
        let a = note(&mut calls, n);
        if a > 3 {
            break 'b a * 10;
        }
        a + 1
    };
    let y = 'c: {
        if x > 50 {
            break 'c 99;
        }
        note(&mut calls, x) + 2
    };
    plain(Ok(x + y), calls)
}

fn for_in_while_plain(rounds: u32, items: Vec<u32>) -> (String, Vec<u32>) {
    let mut calls = Vec::new();
    let (mut round, mut total) = (0, 0);
    'rounds: while round < rounds {
        round += 1;
        for &i in &items {
            let v = note(&mut calls, round * 100 + i);
            if v % 5 == 0 {
                continue 'rounds;
            }
            if v % 7 == 0 {
                break 'rounds;
            }
            total += v;
        }
        total += note(&mut calls, round);
    }
    plain(Ok(total), calls)
}

fn match_break_value_plain(limit: u32) -> (String, Vec<u32>) {
    let mut calls = Vec::new();
    let mut i = 0;
    let found = 'outer: loop {
        i += 1;
        let mut j = 0;
        loop {
            j += 1;
            let h = (i * 10 + j) / 2;
            match h % 4 {
                0 => break 'outer h,
                1 => break,
                _ => {}
            }
            if j > limit {
                break 'outer 0;
            }
            note(&mut calls, h);
        }
        note(&mut calls, 1000 + i);
    };
    plain(Ok(found), calls)
}

fn labelled_blocks_plain(n: u32) -> (String, Vec<u32>) {
    let mut calls = Vec::new();
    let mut out = 0;
    'outer: {
        let a = note(&mut calls, n);
        'inner: {
            if a % 2 == 0 {
                break 'inner;
            }
            if a % 3 == 0 {
                break 'outer;
            }
            out += note(&mut calls, a + 1);
        }
        out += note(&mut calls, a + 2);
    }
    plain(Ok(out), calls)
}

fn continue_after_sleep_plain(n: u32) -> (String, Vec<u32>) {
    let mut calls = Vec::new();
    let mut total = 0;
    for r in 0..n {
        let mut k = 0;
        while k < 3 {
            k += 1;
            if (r + k) % 2 == 0 {
                continue;
            }
            total += note(&mut calls, r * 10 + k);
        }
        total += note(&mut calls, r);
    }
    plain(Ok(total), calls)
}

fn let_else_break_plain(starts: Vec<u32>) -> (String, Vec<u32>) {
    let mut calls = Vec::new();
    let mut total = 0;
    for start in starts {
        if start > 0 {
            let mut at = start;
            loop {
                calls.push(at);
                let Some(x) = at.checked_sub(1) else { break };
                at = x;
                total += x;
            }
        }
        total += note(&mut calls, start);
    }
    plain(Ok(total), calls)
}

fn match_arms_plain(items: Vec<u32>) -> (String, Vec<u32>) {
    let mut calls = Vec::new();
    let mut total = 0;
    for i in items {
        match i % 3 {
            0 => {
                note(&mut calls, i);
                continue;
            }
            1 => {
                if i > 20 {
                    break;
                }
            }
            _ => total += note(&mut calls, i * 2),
        }
        total += i;
    }
    let last = note(&mut calls, total);
    plain(Ok(last), calls)
}

fn early_exits_plain(items: Vec<u32>) -> (String, Vec<u32>) {
    let mut calls = Vec::new();
    let check = |calls: &mut Vec<u32>, n: u32| {
        calls.push(n);
        if n == 13 {
            Err(Bad::Unlucky(n))
        } else {
            Ok(n)
        }
    };
    let out = (|| {
        let mut total = 0;
        for i in items {
            let v = check(&mut calls, i)?;
            if v == 0 {
                return Ok(total);
            }
            if v > 100 {
                return Err(Bad::TooBig(v));
            }
            total += v;
        }
        check(&mut calls, total)
    })();
    plain(out, calls)
}

fn outer_variable_plain(n: u32) -> (String, Vec<u32>) {
    let mut calls = Vec::new();
    let mut total = 0;
    for r in 0..n {
        for c in 1..=2 {
            total += note(&mut calls, r * 10 + c);
        }
        total += r;
    }
    loop {
        let dead = total * 2;
        if total > 0 {
            break;
        }
        total += dead + 1;
    }
    plain(Ok(total), calls)
}

#[tokio::test(start_paused = true)]
async fn every_exit_behaves_as_in_plain_rust() {
    for n in [1, 3, 4, 6, 60] {
        assert_eq!(run(value_blocks, n).await, value_blocks_plain(n), "{n}");
    }
    for (rounds, items) in [
        (2, vec![1, 2, 3]),
        (3, vec![1, 5, 2]),
        (2, vec![4, 7]),
        (0, vec![1]),
    ] {
        let input = (rounds, items.clone());
        assert_eq!(
            run(for_in_while, input).await,
            for_in_while_plain(rounds, items)
        );
    }
    for limit in [0, 1, 5] {
        let native = run(match_break_value, limit).await;
        assert_eq!(native, match_break_value_plain(limit), "{limit}");
    }
    for n in [2, 3, 5, 9] {
        assert_eq!(run(labelled_blocks, n).await, labelled_blocks_plain(n));
    }
    for n in [0, 2, 3] {
        let native = run(continue_after_sleep, n).await;
        assert_eq!(native, continue_after_sleep_plain(n));
    }
    for starts in [vec![2, 0, 1], vec![], vec![3]] {
        let native = run(let_else_break, starts.clone()).await;
        assert_eq!(native, let_else_break_plain(starts));
    }
    for items in [vec![3, 4, 5, 22, 6], vec![2, 6, 8], vec![]] {
        let native = run(match_arms, items.clone()).await;
        assert_eq!(native, match_arms_plain(items));
    }
    for items in [
        vec![1, 2, 3],
        vec![1, 0, 3],
        vec![1, 200],
        vec![1, 13],
        vec![6, 7],
    ] {
        let native = run(early_exits, items.clone()).await;
        assert_eq!(native, early_exits_plain(items));
    }
    for n in [0, 1, 2] {
        assert_eq!(run(outer_variable, n).await, outer_variable_plain(n));
    }
}
