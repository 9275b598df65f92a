//! A `for` loop's position survives a restart: the loop resumes at the next item, and the
//! items already done are not called again.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use workflow::prelude::*;
use workflow::{EventKind, Outcome};

#[derive(Default)]
pub struct Log {
    calls: Mutex<Vec<u32>>,
}

impl Log {
    async fn note(&self, n: u32) -> u32 {
        self.calls.lock().unwrap().push(n);
        n
    }
    fn calls(&self) -> Vec<u32> {
        self.calls.lock().unwrap().clone()
    }
}

/// Sums its items, one task each, with a durable timer after the second one.
#[workflow]
async fn sum_slowly(log: &Log, items: Vec<u32>) -> u32 {
    let mut sum: u32 = 0;
    for x in items {
        let v: u32 = log.note(x).await;
        sum += v;
        if x == 2 {
            sleep!(1.secs());
        }
    }
    sum
}

fn runtime(db: &std::path::Path, log: Arc<Log>) -> Runtime {
    Runtime::builder()
        .register(sum_slowly)
        .dependency_arc(log)
        .sqlite(db)
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_for_loop_resumes_at_its_next_item_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flows.sqlite");

    let first = Arc::new(Log::default());
    let rt = runtime(&db, first.clone());
    let id = rt
        .start(sum_slowly, vec![1, 2, 3, 4])
        .await
        .unwrap()
        .id()
        .clone();
    // Stop the process while the workflow sleeps inside the loop.
    for _ in 0..1_000 {
        let history = rt.history(&id).await.unwrap();
        if history
            .iter()
            .any(|e| matches!(e.kind, EventKind::WaitStarted { .. }))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    rt.shutdown().await;
    assert_eq!(first.calls(), [1, 2]);

    let second = Arc::new(Log::default());
    let rt = runtime(&db, second.clone());
    rt.recover().await.unwrap();
    let outcome = rt.wait(&id).await.unwrap();
    assert_eq!(outcome, Outcome::Succeeded(serde_json::json!(10).into()));
    assert_eq!(
        second.calls(),
        [3, 4],
        "the loop went on from its third item"
    );
    rt.shutdown().await;
}
