//! A runtime's life as its user sees it: a typed handle from an id (after a restart too),
//! dropping a runtime, and a cancellation that is over when `cancel` returns.

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use workflow::prelude::*;
use workflow::{ExecutionId, LookupError, StoreError};

#[derive(WorkflowError, Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
enum NapError {
    #[error("a nap of {0} ms is too short")]
    TooShort(u64),
}

/// Counts the ticks of this runtime's executions.
#[derive(Default)]
struct Ticks(AtomicU32);

impl Ticks {
    async fn tick(&self) -> u32 {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }
}

/// Sleeps `ms`, unless that is too short.
#[workflow(name = "LifecycleNap")]
async fn nap(ms: u64) -> Result<u64, NapError> {
    if ms < 5 {
        return Err(NapError::TooShort(ms));
    }
    sleep!(ms.millis());
    Ok(ms)
}

/// Another workflow, with another output type.
#[workflow(name = "LifecycleTicker")]
async fn ticker(ticks: &Ticks, rounds: u32) -> u32 {
    let mut last: u32 = 0;
    for _ in 0..rounds {
        sleep!(5.millis());
        last = ticks.tick().await;
    }
    last
}

/// Held by a task: a cancelled task is dropped, and this makes that take a while, so that
/// an execution that did not wait for its children to end would end long before them.
struct SlowToDrop;

impl Drop for SlowToDrop {
    fn drop(&mut self) {
        std::thread::sleep(Duration::from_millis(30));
    }
}

/// A leaf that never ends on its own: a long wait, or a task still running (and slow to
/// cancel).
#[workflow(name = "LifecycleLeaf")]
async fn leaf(ticks: &Ticks, long_task: bool) -> u32 {
    if long_task {
        let n: u32 = async {
            let _slow = SlowToDrop;
            tokio::time::sleep(Duration::from_secs(3600)).await;
            ticks.tick().await
        }
        .await;
        return n;
    }
    sleep!(3600.secs());
    0
}

#[workflow(name = "LifecycleMiddle")]
async fn middle(n: u32) -> Result<u32, NestedError<NoError>> {
    let (a, b): (u32, u32) = call_nested!(parallel(leaf(n % 2 == 0), leaf(true)))?;
    Ok(a + b)
}

/// Three levels: a top, three middles, six leaves.
#[workflow(name = "LifecycleTop")]
async fn top(n: u32) -> Result<u32, NestedError<NoError>> {
    let rounds: Vec<u32> = (0..3).map(|i| n + i).collect();
    let all: Vec<u32> = call_nested!(for r in rounds => middle(r), max_concurrency = 3)?;
    Ok(all.iter().sum())
}

fn runtime(db: &Path, ticks: Arc<Ticks>) -> Runtime {
    Runtime::builder()
        .register(nap)
        .register(ticker)
        .register(top)
        .dependency_arc(ticks)
        .sqlite(db)
        .build()
        .expect("the runtime builds")
}

fn count(tree: &workflow::ExecutionTree) -> usize {
    1 + tree.children.iter().map(count).sum::<usize>()
}

fn running(tree: &workflow::ExecutionTree) -> Vec<String> {
    let mut out = Vec::new();
    if !tree.status.is_terminal() {
        out.push(format!("{} {:?}", tree.id, tree.status));
    }
    for child in &tree.children {
        out.extend(running(child));
    }
    out
}

/// Waits until execution `id` has its whole tree (ten executions) running.
async fn until_grown(rt: &Runtime, id: &ExecutionId) {
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let tree = rt.tree(id).await.unwrap();
            if count(&tree) == 10 && running(&tree).len() == 10 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .expect("the tree grows");
}

/// After a restart, `execution::<W>(id)` is a typed handle: its result (one that ended
/// before the restart, one that ran through it), its history, its cancellation; an id of
/// another workflow, or of nothing, is a typed error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typed_handle_from_an_id_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wf.sqlite");
    let rt = runtime(&db, Arc::default());
    let failed = rt.start(nap, 1).await.unwrap();
    let failed_id = failed.id().clone();
    assert_eq!(
        failed.result().await.unwrap_err(),
        RunError::Failed(NapError::TooShort(1))
    );
    let through = rt.start(nap, 300).await.unwrap().id().clone();
    let cancelled = rt.start(nap, 3_600_000).await.unwrap().id().clone();
    let ticking = rt.start(ticker, 3).await.unwrap();
    let ticking_id = ticking.id().clone();
    assert_eq!(ticking.result().await.unwrap(), 3);
    rt.shutdown().await;

    let rt = runtime(&db, Arc::default());
    let report = rt.recover().await.unwrap();
    assert_eq!(report.resumed.len(), 2, "{report}");

    // Typed results: an error that was stored before the restart, an output that comes
    // after it.
    let handle = rt.execution::<nap>(&failed_id).await.unwrap();
    assert_eq!(handle.id(), &failed_id);
    assert_eq!(
        handle.clone().result().await.unwrap_err(),
        RunError::Failed(NapError::TooShort(1))
    );
    let names: Vec<&str> = handle
        .history()
        .await
        .unwrap()
        .iter()
        .map(|e| e.kind.name())
        .collect();
    assert_eq!(names, ["ExecutionStarted", "ExecutionFailed"]);
    let output: u64 = rt
        .execution::<nap>(&through)
        .await
        .unwrap()
        .result()
        .await
        .unwrap();
    assert_eq!(output, 300);
    let ticks: u32 = rt
        .execution::<ticker>(&ticking_id)
        .await
        .unwrap()
        .result()
        .await
        .unwrap();
    assert_eq!(ticks, 3);

    // Cancelled through the handle.
    let handle = rt.execution::<nap>(&cancelled).await.unwrap();
    assert_eq!(handle.status().await.unwrap(), Status::Running);
    assert!(handle.cancel().await.unwrap());
    assert_eq!(handle.status().await.unwrap(), Status::Cancelled);
    assert_eq!(handle.result().await.unwrap_err(), RunError::Cancelled);

    // Another workflow's id, and no execution at all.
    let err = rt.execution::<ticker>(&through).await.unwrap_err();
    assert_eq!(
        err,
        LookupError::WrongWorkflow {
            id: through.clone(),
            expected: "LifecycleTicker",
            found: "LifecycleNap".to_owned(),
        }
    );
    assert!(
        err.to_string().contains("not of `LifecycleTicker`"),
        "{err}"
    );
    let nobody = ExecutionId::from("nobody");
    assert_eq!(
        rt.execution::<nap>(&nobody).await.unwrap_err(),
        LookupError::NotFound(nobody)
    );
    rt.shutdown().await;
}

/// A handle made before `recover` waits for the result once the execution runs again;
/// without `recover`, its result says why there is none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handle_before_recover_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wf.sqlite");
    let rt = runtime(&db, Arc::default());
    let id = rt.start(nap, 200).await.unwrap().id().clone();
    rt.shutdown().await;

    let rt = runtime(&db, Arc::default());
    let handle = rt.execution::<nap>(&id).await.unwrap();
    let RunError::Faulted(fault) = handle.clone().result().await.unwrap_err() else {
        panic!("expected a fault");
    };
    assert!(
        fault.to_string().contains("not running in this runtime"),
        "{fault}"
    );
    rt.recover().await.unwrap();
    assert_eq!(handle.result().await.unwrap(), 200);
    rt.shutdown().await;
}

/// Dropping the last handle of a runtime stops it, as dropping a tokio runtime does: its
/// executions stop where they are (nothing recorded), and the SQLite file is free at
/// once, for a new runtime in the same process, which resumes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_runtime_stops_it_and_frees_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wf.sqlite");
    for round in 0..20 {
        let first_ticks = Arc::new(Ticks::default());
        let first = runtime(&db, Arc::clone(&first_ticks));
        first.recover().await.unwrap();
        let exec = first.start(ticker, 1_000_000).await.unwrap();
        let clone = first.clone();
        // It ticks: checkpoints are in flight at random moments of the drop below.
        while first_ticks.0.load(Ordering::SeqCst) < 2 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(Duration::from_micros(137 * round)).await;
        drop(first);
        assert!(
            Runtime::builder().sqlite(&db).build().is_err(),
            "a clone keeps it running"
        );
        drop(clone);
        let second_ticks = Arc::new(Ticks::default());
        let second = runtime(&db, Arc::clone(&second_ticks));
        let stopped = first_ticks.0.load(Ordering::SeqCst);
        let RunError::Faulted(fault) = exec.clone().result().await.unwrap_err() else {
            panic!("expected a fault");
        };
        assert!(fault.to_string().contains("stopped"), "{fault}");
        let report = second.recover().await.unwrap();
        assert!(report.resumed.contains(exec.id()), "{report}");
        while second_ticks.0.load(Ordering::SeqCst) < 2 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(
            first_ticks.0.load(Ordering::SeqCst),
            stopped,
            "the dropped runtime still runs its executions"
        );
        assert!(second.cancel(exec.id()).await.unwrap());
        drop(second);
    }
}

/// A runtime on a store given to it, of which the caller kept a clone: dropping the
/// runtime stops it, and the file stays open (and locked) for the clone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_store_stays_open_after_its_runtime_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wf.sqlite");
    let store = workflow::SqliteStore::open(&db).unwrap();
    let rt = Runtime::builder()
        .register(nap)
        .store(store.clone())
        .build()
        .unwrap();
    let exec = rt.start(nap, 3_600_000).await.unwrap();
    drop(rt);
    use workflow::store::Store;
    let record = store.get(exec.id()).await.unwrap().unwrap();
    assert_eq!(record.status, Status::Running);
    let err = Runtime::builder().sqlite(&db).build().unwrap_err();
    assert!(err.to_string().contains("this process"), "{err}");
    assert!(err.to_string().contains("shutdown"), "{err}");
    drop(store);
    let rt = runtime(&db, Arc::default());
    assert_eq!(rt.recover().await.unwrap().resumed.len(), 1);
    // A handle that outlives its runtime cannot read a store that was released.
    let handle = rt.execution::<nap>(exec.id()).await.unwrap();
    drop(rt);
    assert_eq!(handle.history().await.unwrap_err(), StoreError::Stopped);
}

/// `cancel` returns when every execution below the cancelled one has ended: `tree` right
/// after it shows no `Running` child or grandchild (the leaves wait on a timer or run a
/// task). Awaiting the result instead of `cancel` gives the same guarantee.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancellation_is_over_when_cancel_returns() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wf.sqlite");
    let rt = runtime(&db, Arc::default());
    for round in 0..10u32 {
        let exec = rt.start(top, round).await.unwrap();
        let id = exec.id().clone();
        until_grown(&rt, &id).await;
        if round % 2 == 0 {
            assert!(rt.cancel(&id).await.unwrap());
        } else {
            // Not awaited: the result, awaited instead, comes after the descendants end.
            let rt = rt.clone();
            let id = id.clone();
            tokio::spawn(async move { rt.cancel(&id).await });
        }
        assert_eq!(exec.result().await.unwrap_err(), RunError::Cancelled);
        let tree = rt.tree(&id).await.unwrap();
        assert_eq!(count(&tree), 10, "{tree}");
        assert_eq!(running(&tree), Vec::<String>::new(), "{tree}");
        let statuses = |t: &workflow::ExecutionTree| t.status;
        assert!(
            tree.children
                .iter()
                .flat_map(|m| m.children.iter().map(statuses).chain([m.status]))
                .all(|s| s == Status::Cancelled),
            "{tree}"
        );
    }
    rt.shutdown().await;
}

/// The same on the memory store, under virtual time: a parent cancelled while it waits
/// on children reports its end after theirs.
#[tokio::test(start_paused = true)]
async fn a_cancelled_parent_ends_after_its_children() {
    let rt = Runtime::builder()
        .register(top)
        .dependency(Ticks::default())
        .build()
        .unwrap();
    let exec = rt.start(top, 1).await.unwrap();
    let id = exec.id().clone();
    until_grown(&rt, &id).await;
    assert!(rt.cancel(&id).await.unwrap());
    let tree = rt.tree(&id).await.unwrap();
    assert_eq!(running(&tree), Vec::<String>::new(), "{tree}");
    assert!(!rt.cancel(&id).await.unwrap(), "already ended");
    // A leaf's own cancellation is over when it returns too.
    let leaf_id = tree.children[0].children[0].id.clone();
    assert!(!rt.cancel(&leaf_id).await.unwrap(), "ended with its parent");
}
