//! 10,000 executions on SQLite, each waiting on a callback, completed from another task
//! in random order: every one finishes, once, with its own value; none is lost.
//!
//! `CALLBACKS_N` changes the number. The figures go to stderr (past the harness's
//! capture): `cargo test --test callbacks scale -- --nocapture` shows them.

use std::io::Write;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;
use workflow::prelude::*;
use workflow::{CallbackToken, EventKind, ExecutionFilter, ExecutionId, Outcome, SqliteStore};

/// Hands each token to the test's completer.
struct Queue {
    tokens: mpsc::UnboundedSender<(u32, CallbackToken)>,
    sends: AtomicU32,
}

impl Queue {
    async fn send(&self, n: u32, token: CallbackToken) -> Result<(), String> {
        self.sends.fetch_add(1, Ordering::Relaxed);
        self.tokens.send((n, token)).map_err(|e| e.to_string())
    }
}

#[workflow(name = "ScaleApprove")]
async fn scale_approve(queue: &Queue, n: u32) -> Result<u64, CallbackError> {
    let value: u64 = wait_for_callback!(|token| queue.send(n, token), timeout = 1.hours())?;
    Ok(value)
}

fn value(n: u32) -> u64 {
    u64::from(n) * 3 + 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_callbacks_completed_in_random_order_on_sqlite() {
    let total: u32 = std::env::var("CALLBACKS_N")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("scale.sqlite")).unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let queue = Arc::new(Queue {
        tokens: tx,
        sends: AtomicU32::new(0),
    });
    let rt = Runtime::builder()
        .register(scale_approve)
        .dependency_arc(Arc::clone(&queue))
        .store(store.clone())
        .build()
        .unwrap();

    let started = Instant::now();
    let mut ids: Vec<ExecutionId> = Vec::with_capacity(total as usize);
    for n in 0..total {
        ids.push(rt.start(scale_approve, n).await.unwrap().id().clone());
    }
    let start_time = started.elapsed();

    // Another task collects every token, shuffles them, and completes them with 64
    // completions in flight.
    let completer = {
        let rt = rt.clone();
        tokio::spawn(async move {
            let mut tokens = Vec::with_capacity(total as usize);
            while tokens.len() < total as usize {
                tokens.push(rx.recv().await.expect("every execution sends its token"));
            }
            let all_sent = Instant::now();
            let mut seed = 0x2545_f491_4f6c_dd1d_u64;
            for i in (1..tokens.len()).rev() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                tokens.swap(i, usize::try_from(seed % (i as u64 + 1)).unwrap());
            }
            let mut in_flight = tokio::task::JoinSet::new();
            for (n, token) in tokens {
                if in_flight.len() == 64 {
                    in_flight.join_next().await.unwrap().unwrap();
                }
                let rt = rt.clone();
                in_flight.spawn(async move { rt.complete(&token, value(n)).await.unwrap() });
            }
            while let Some(done) = in_flight.join_next().await {
                done.unwrap();
            }
            all_sent.elapsed()
        })
    };
    let complete_time = completer.await.unwrap();

    let mut succeeded = 0;
    for (n, id) in ids.iter().enumerate() {
        match rt.wait(id).await.unwrap() {
            Outcome::Succeeded(v) => {
                assert_eq!(v.decode::<u64>().unwrap(), value(n as u32), "{id}");
                succeeded += 1;
            }
            other => panic!("{id}: {other:?}"),
        }
    }
    let total_time = started.elapsed();
    assert_eq!(succeeded, total);
    assert_eq!(
        queue.sends.load(Ordering::Relaxed),
        total,
        "a token was sent twice"
    );
    let waiting = rt
        .list(ExecutionFilter::new().waiting_on_callback())
        .await
        .unwrap();
    assert!(waiting.executions.is_empty());
    // Each was completed once and ended once.
    for id in &ids {
        let history = rt.history(id).await.unwrap();
        let completed = history
            .iter()
            .filter(|e| matches!(e.kind, EventKind::CallbackCompleted { .. }))
            .count();
        let ended = history
            .iter()
            .filter(|e| matches!(e.kind, EventKind::ExecutionSucceeded { .. }))
            .count();
        assert_eq!((completed, ended), (1, 1), "{id}");
    }
    let stats = store.stats();
    let _ = writeln!(
        std::io::stderr(),
        "callbacks at scale: {total} executions on SQLite, each waiting on a callback, \
         completed in random order (64 at a time) from another task: all {succeeded} \
         succeeded once with their own value, none lost, each token sent once\n\
         \x20 starting all: {start_time:.2?} ({:.0}/s); completing all once sent: \
         {complete_time:.2?} ({:.0}/s); total {total_time:.2?}\n\
         \x20 store: {} writes in {} transactions (largest {}), {} failed",
        f64::from(total) / start_time.as_secs_f64(),
        f64::from(total) / complete_time.as_secs_f64(),
        stats.writes,
        stats.transactions,
        stats.largest_batch,
        stats.failed_transactions,
    );
}
