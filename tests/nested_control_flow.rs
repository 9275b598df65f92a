//! Runs `tests/ui/pass/nested_control_flow.rs` and checks each workflow against the same
//! logic as plain Rust: the results and the order of the service calls must agree.

#[path = "ui/pass/nested_control_flow.rs"]
mod flows;

use std::sync::Arc;

use flows::*;
use workflow::prelude::*;

async fn run<W: Workflow>(w: W, input: W::Input) -> (W::Output, Vec<u32>) {
    let log = Arc::new(Log::default());
    let rt = Runtime::builder()
        .register(w)
        .dependency_arc(log.clone())
        .build()
        .unwrap();
    let out = match rt.start(w, input).await.unwrap().result().await {
        Ok(out) => out,
        Err(_) => panic!("the workflow failed"),
    };
    let calls = log.calls.lock().unwrap().clone();
    (out, calls)
}

fn grid_plain(rows: u32, cols: u32, calls: &mut Vec<u32>) -> u32 {
    let mut r = 0;
    'outer: loop {
        r += 1;
        calls.push(r * 100);
        let mut c = 0;
        while c < cols {
            c += 1;
            let v = r * 100 + c;
            calls.push(v);
            if v % 7 == 0 {
                continue 'outer;
            }
            if r >= rows && c == cols {
                break 'outer v;
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn nested_loops_match_plain_rust() {
    for (rows, cols) in [(1, 1), (2, 3), (3, 4), (5, 2)] {
        let mut expected_calls = Vec::new();
        let expected = grid_plain(rows, cols, &mut expected_calls);
        let (out, calls) = run(grid, (rows, cols)).await;
        assert_eq!(out, expected, "rows {rows} cols {cols}");
        assert_eq!(calls, expected_calls, "rows {rows} cols {cols}");
    }
}

#[tokio::test(start_paused = true)]
async fn layered_branches_match_plain_rust() {
    let items = vec![Some(3), None, Some(12), Some(40), None];
    let (out, calls) = run(layered, (items.clone(), true)).await;
    assert_eq!(out, [3, 0, 12, 13, 40, 41, 0]);
    assert_eq!(calls, [1, 12, 40]);
    let (out, calls) = run(layered, (items, false)).await;
    assert_eq!(out, [2]);
    assert_eq!(calls, [2]);
}

#[tokio::test(start_paused = true)]
async fn while_let_over_a_growing_queue() {
    // Plain Rust: pop 8 (even, +8, push 4), pop 4 (+4, push 2), pop 2 (+2), pop 5 (odd,
    // +50, push 2), pop 2 (+2), pop 1 (+10).
    let (out, calls) = run(drain, vec![1, 5, 8]).await;
    assert_eq!(out, (8 + 4 + 2 + 50 + 2 + 10, 6));
    assert_eq!(calls, [8, 4, 2, 2]);
}
