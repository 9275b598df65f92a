//! Redrive on a real SQLite file: a failed, timed-out or faulted top-level execution runs
//! again from its last checkpoint under the same id, with the children that did not
//! succeed; what succeeded does not run again; refusals change nothing; a `kill -9`
//! during a redrive leaves all of it or none of it running, and recovery finishes it.
//!
//! The kill tests re-execute this test binary as a worker process (`redrive_worker`,
//! ignored unless `REDRIVE_WORKER_DB` is set), as `tests/crash.rs` does, and kill it with
//! SIGKILL. Task calls are counted across processes in a log file, one `write(2)` a line.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::watch;
use workflow::prelude::*;
use workflow::store::Wait;
use workflow::{
    Event, EventKind, ExecutionId, ExecutionRecord, Outcome, Redrive, RedriveError, Status,
};

// ---------------------------------------------------------------------------------------
// A service that is down until it is fixed, and counts its calls.

#[derive(WorkflowError, Clone, Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
enum SvcError {
    #[error("the service is down")]
    Down,
}

struct Svc {
    fixed: watch::Sender<bool>,
    /// Every call, in order.
    calls: Mutex<Vec<String>>,
    /// Every call, one line each, for counting across processes.
    log: Option<File>,
}

impl Svc {
    fn new(fixed: bool) -> Arc<Svc> {
        Arc::new(Svc {
            fixed: watch::Sender::new(fixed),
            calls: Mutex::default(),
            log: None,
        })
    }

    fn logging(fixed: bool, log: &Path) -> Arc<Svc> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("the call log opens");
        Arc::new(Svc {
            fixed: watch::Sender::new(fixed),
            calls: Mutex::default(),
            log: Some(log),
        })
    }

    /// The service is fixed: calls that failed succeed, calls that waited return.
    fn fix(&self) {
        self.fixed.send_replace(true);
    }

    fn is_fixed(&self) -> bool {
        *self.fixed.borrow()
    }

    fn called(&self, call: impl Into<String>) {
        let call = call.into();
        if let Some(mut log) = self.log.as_ref() {
            // One write per line on an O_APPEND file: a kill cannot leave half a line.
            log.write_all(format!("{call}\n").as_bytes())
                .expect("the call log is writable");
        }
        self.calls.lock().unwrap().push(call);
    }

    fn calls(&self, call: &str) -> usize {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| *c == call)
            .count()
    }

    async fn until_fixed(&self) {
        let _ = self.fixed.subscribe().wait_for(|fixed| *fixed).await;
    }

    async fn first(&self, x: u32) -> Result<u32, SvcError> {
        self.called("first");
        Ok(x + 1)
    }

    /// Fails until the service is fixed.
    async fn second(&self, x: u32) -> Result<u32, SvcError> {
        self.called("second");
        if self.is_fixed() {
            Ok(x * 10)
        } else {
            Err(SvcError::Down)
        }
    }

    async fn third(&self, x: u32) -> Result<u32, SvcError> {
        self.called("third");
        Ok(x + 3)
    }

    /// Answers once the service is fixed.
    async fn slow(&self, x: u32) -> Result<u32, SvcError> {
        self.called("slow");
        self.until_fixed().await;
        Ok(x)
    }

    /// Item 1 answers once the service is fixed, item 2 fails until then, the others
    /// answer at once.
    async fn item(&self, n: u32) -> Result<u32, SvcError> {
        self.called(format!("item-{n}"));
        match n {
            1 => self.until_fixed().await,
            2 if !self.is_fixed() => return Err(SvcError::Down),
            _ => {}
        }
        Ok(n * n)
    }
}

/// Counts the lines of the call log that are `call`.
fn logged(log: &Path, call: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|line| *line == call)
        .count()
}

// ---------------------------------------------------------------------------------------
// Workflows.

#[workflow(name = "TwoSteps")]
async fn two_steps(svc: &Svc, x: u32) -> Result<u32, SvcError> {
    let a: u32 = svc.first(x).await?;
    let b: u32 = svc.second(a).await?;
    Ok(b)
}

#[workflow(name = "Item")]
async fn item(svc: &Svc, n: u32) -> Result<u32, SvcError> {
    let squared: u32 = svc.item(n).await?;
    Ok(squared)
}

#[workflow(name = "Map")]
async fn map(items: Vec<u32>) -> Result<Vec<u32>, NestedError<SvcError>> {
    let squares: Vec<u32> = call_nested!(for n in items => item(n), max_concurrency = 2)?;
    Ok(squares)
}

#[workflow(name = "Bounded", timeout = 400.millis())]
async fn bounded(svc: &Svc, x: u32) -> Result<u32, SvcError> {
    let a: u32 = svc.first(x).await?;
    let b: u32 = svc.slow(a).await?;
    Ok(b)
}

/// `Bounded`, with room for a restart within its timeout.
#[workflow(name = "BoundedLonger", timeout = 1500.millis())]
async fn bounded_longer(svc: &Svc, x: u32) -> Result<u32, SvcError> {
    let a: u32 = svc.first(x).await?;
    let b: u32 = svc.slow(a).await?;
    Ok(b)
}

#[workflow(name = "SlowItem")]
async fn slow_item(svc: &Svc, n: u32) -> Result<u32, SvcError> {
    let same: u32 = svc.slow(n).await?;
    Ok(same)
}

#[workflow(name = "BoundedMap", timeout = 400.millis())]
async fn bounded_map(items: Vec<u32>) -> Result<Vec<u32>, NestedError<SvcError>> {
    let same: Vec<u32> = call_nested!(for n in items => slow_item(n), max_concurrency = 3)?;
    Ok(same)
}

#[workflow(name = "Retried")]
async fn retried(svc: &Svc, x: u32) -> Result<u32, SvcError> {
    let a: u32 = svc.first(x).await?;
    #[retry(interval = 10.millis(), max_attempts = 2, backoff = 1)]
    let b: u32 = svc.second(a).await?;
    Ok(b)
}

#[workflow(name = "BatchBounded")]
async fn batch_bounded(items: Vec<u32>) -> Result<Vec<u32>, NestedError<SvcError>> {
    #[timeout(400.millis())]
    let same: Vec<u32> = call_nested!(for n in items => slow_item(n), max_concurrency = 2)?;
    Ok(same)
}

#[workflow(name = "Nightly")]
async fn nightly(svc: &Svc, x: u32) -> Result<u32, SvcError> {
    let a: u32 = svc.first(x).await?;
    let b: u32 = svc.second(a).await?;
    sleep!(2.secs());
    let c: u32 = svc.third(b).await?;
    Ok(c)
}

fn runtime(db: &Path, svc: &Arc<Svc>) -> Runtime {
    Runtime::builder()
        .register(two_steps)
        .register(map)
        .register(bounded)
        .register(bounded_map)
        .register(bounded_longer)
        .register(nightly)
        .register(retried)
        .register(batch_bounded)
        .dependency_arc(Arc::clone(svc))
        .sqlite(db)
        .build()
        .expect("the file opens")
}

// ---------------------------------------------------------------------------------------
// Helpers.

fn names(history: &[Event]) -> Vec<&'static str> {
    history.iter().map(|e| e.kind.name()).collect()
}

/// The events that start and end runs of an execution, in order.
fn lifecycle(history: &[Event]) -> Vec<EventKind> {
    history
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                EventKind::ExecutionStarted { .. }
                    | EventKind::ExecutionRedriven { .. }
                    | EventKind::ExecutionSucceeded { .. }
                    | EventKind::ExecutionFailed { .. }
                    | EventKind::ExecutionTimedOut
                    | EventKind::ExecutionCancelled
                    | EventKind::ExecutionFaulted { .. }
            )
        })
        .map(|e| match &e.kind {
            // Inputs and payloads are checked apart; the kinds and counts here.
            EventKind::ExecutionStarted { .. } => EventKind::ExecutionStarted {
                input: json!(null).into(),
                parent: None,
            },
            EventKind::ExecutionSucceeded { .. } => EventKind::ExecutionSucceeded {
                output: json!(null).into(),
            },
            EventKind::ExecutionFailed { .. } => EventKind::ExecutionFailed {
                error: json!(null).into(),
                name: None,
            },
            kind => kind.clone(),
        })
        .collect()
}

fn started() -> EventKind {
    EventKind::ExecutionStarted {
        input: json!(null).into(),
        parent: None,
    }
}

fn failed() -> EventKind {
    EventKind::ExecutionFailed {
        error: json!(null).into(),
        name: None,
    }
}

fn succeeded() -> EventKind {
    EventKind::ExecutionSucceeded {
        output: json!(null).into(),
    }
}

fn redriven(count: u32) -> EventKind {
    EventKind::ExecutionRedriven { count }
}

async fn snapshot(rt: &Runtime, id: &ExecutionId) -> (ExecutionRecord, Vec<Event>) {
    (rt.record(id).await.unwrap(), rt.history(id).await.unwrap())
}

/// Polls the store until `ready` holds for the execution's record.
async fn until(rt: &Runtime, id: &ExecutionId, ready: impl Fn(&ExecutionRecord) -> bool) {
    for _ in 0..2_000 {
        if rt.record(id).await.is_ok_and(|r| ready(&r)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("execution {id} never reached the expected state");
}

// ---------------------------------------------------------------------------------------
// 1. The failing step runs again, and nothing before it.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_execution_redriven_after_the_fix_succeeds_under_the_same_id() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Svc::new(false);
    let rt = runtime(&dir.path().join("wf.sqlite"), &svc);
    let id = rt.start(two_steps, 4).await.unwrap().id().clone();
    let Outcome::Failed(error) = rt.wait(&id).await.unwrap() else {
        panic!("the second task should fail");
    };
    assert_eq!(error.decode::<SvcError>().unwrap(), SvcError::Down);
    let ended = rt.record(&id).await.unwrap();
    assert_eq!((ended.status, ended.redrives), (Status::Failed, 0));
    assert_eq!((svc.calls("first"), svc.calls("second")), (1, 1));

    svc.fix();
    let redrive = rt.redrive(&id).await.unwrap();
    assert_eq!((&redrive.id, redrive.count), (&id, 1));
    assert!(redrive.children.is_empty());
    assert_eq!(
        rt.wait(&id).await.unwrap(),
        Outcome::Succeeded(json!(50).into())
    );
    assert_eq!(
        (svc.calls("first"), svc.calls("second")),
        (1, 2),
        "the first task did not run again"
    );
    let record = rt.record(&id).await.unwrap();
    assert_eq!((record.status, record.redrives), (Status::Succeeded, 1));
    assert!(record.redriven_at.is_some_and(|at| at >= ended.updated_at));
    assert_eq!(record.created_at, ended.created_at);

    let history = rt.history(&id).await.unwrap();
    assert_eq!(
        lifecycle(&history),
        [started(), failed(), redriven(1), succeeded()]
    );
    // After the redrive, only the second task.
    let after: Vec<_> = names(&history)
        .into_iter()
        .skip_while(|n| *n != "ExecutionRedriven")
        .collect();
    assert_eq!(
        after,
        [
            "ExecutionRedriven",
            "TaskScheduled",
            "TaskSucceeded",
            "ExecutionSucceeded"
        ]
    );
    rt.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// 2. A map: only the children that did not succeed run again.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_redriven_reruns_only_the_children_that_did_not_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Svc::new(false);
    let rt = runtime(&dir.path().join("wf.sqlite"), &svc);
    let id = rt
        .start(map, vec![0, 1, 2, 3, 4])
        .await
        .unwrap()
        .id()
        .clone();
    // Two at a time: 0 succeeds, 1 waits for the fix, 2 (started when 0 ended) fails,
    // which cancels 1; 3 and 4 are never started.
    assert!(matches!(rt.wait(&id).await.unwrap(), Outcome::Failed(_)));
    let child = |i: usize| ExecutionId::from(format!("{id}/1.{i}"));
    let statuses = |rt: Runtime, id: ExecutionId| async move {
        let tree = rt.tree(&id).await.unwrap();
        tree.children
            .iter()
            .map(|c| (c.id.clone(), c.status))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        statuses(rt.clone(), id.clone()).await,
        [
            (child(0), Status::Succeeded),
            (child(1), Status::Cancelled),
            (child(2), Status::Failed),
        ]
    );

    svc.fix();
    let redrive = rt.redrive(&id).await.unwrap();
    assert_eq!(redrive.count, 1);
    assert_eq!(redrive.children, [child(1), child(2)]);
    let Outcome::Succeeded(output) = rt.wait(&id).await.unwrap() else {
        panic!("the redriven map should succeed");
    };
    assert_eq!(output.decode::<Vec<u32>>().unwrap(), [0, 1, 4, 9, 16]);

    // The same child ids, one each: the failed and cancelled ones ran again, the new ones
    // once, the one that succeeded not again.
    assert_eq!(
        statuses(rt.clone(), id.clone()).await,
        (0..5)
            .map(|i| (child(i), Status::Succeeded))
            .collect::<Vec<_>>()
    );
    let calls: Vec<usize> = (0..5).map(|n| svc.calls(&format!("item-{n}"))).collect();
    assert_eq!(calls, [1, 2, 2, 1, 1]);
    for (i, redrives) in [(0, 0), (1, 1), (2, 1), (3, 0), (4, 0)] {
        let record = rt.record(&child(i)).await.unwrap();
        assert_eq!(record.redrives, redrives, "{}", child(i));
    }
    let history = rt.history(&child(2)).await.unwrap();
    assert_eq!(
        lifecycle(&history),
        [started(), failed(), redriven(1), succeeded()]
    );
    let cancelled = lifecycle(&rt.history(&child(1)).await.unwrap());
    assert_eq!(
        cancelled[1..],
        [EventKind::ExecutionCancelled, redriven(1), succeeded()]
    );

    let parent = rt.history(&id).await.unwrap();
    assert_eq!(
        lifecycle(&parent),
        [started(), failed(), redriven(1), succeeded()]
    );
    let count = |name: &str| names(&parent).iter().filter(|n| **n == name).count();
    assert_eq!(count("ChildStarted"), 5, "each child created once");
    assert_eq!(count("ChildSucceeded"), 5);
    assert_eq!((count("ChildFailed"), count("ChildCancelled")), (1, 1));
    rt.shutdown().await;
}

/// A redriven parent cancelled at once ends its redriven children too, whether its batch
/// had resumed them yet or not: none is left running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redriven_parent_cancelled_at_once_cancels_its_redriven_children() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Svc::new(false);
    let rt = runtime(&dir.path().join("wf.sqlite"), &svc);
    let id = rt.start(map, vec![0, 1, 2]).await.unwrap().id().clone();
    assert!(matches!(rt.wait(&id).await.unwrap(), Outcome::Failed(_)));
    let redrive = rt.redrive(&id).await.unwrap();
    assert!(rt.cancel(&id).await.unwrap());
    assert_eq!(rt.wait(&id).await.unwrap(), Outcome::Cancelled);
    for child in &redrive.children {
        until(&rt, child, |r| r.status == Status::Cancelled).await;
        assert_eq!(rt.wait(child).await.unwrap(), Outcome::Cancelled);
    }
    rt.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// 3. Refusals change nothing.

mod v1 {
    use super::*;

    #[workflow(name = "Versioned")]
    pub(super) async fn versioned(svc: &Svc, x: u32) -> Result<u32, SvcError> {
        let b: u32 = svc.second(x).await?;
        Ok(b)
    }
}

mod v2 {
    use super::*;

    #[workflow(name = "Versioned")]
    pub(super) async fn versioned(svc: &Svc, x: u32) -> Result<u32, SvcError> {
        let a: u32 = svc.first(x).await?;
        let b: u32 = svc.second(a).await?;
        Ok(b)
    }
}

/// Redrives `id` and checks that it is refused with nothing changed.
async fn refused(rt: &Runtime, id: &ExecutionId) -> RedriveError {
    let before = snapshot(rt, id).await;
    let error = rt.redrive(id).await.unwrap_err();
    assert_eq!(snapshot(rt, id).await, before, "nothing changed: {error}");
    error
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redrive_is_refused_with_a_typed_error_and_nothing_changed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wf.sqlite");
    let svc = Svc::new(false);
    let rt = runtime(&db, &svc);

    // Unknown.
    let unknown = ExecutionId::from("no-such-execution");
    let error = rt.redrive(&unknown).await.unwrap_err();
    assert!(
        matches!(&error, RedriveError::NotFound { id } if *id == unknown),
        "{error:?}"
    );
    assert!(error.to_string().contains("no-such-execution"), "{error}");

    // Running here (live: its child waits for the fix), then cancelled.
    let live = rt.start(map, vec![1]).await.unwrap().id().clone();
    until(&rt, &live, |r| matches!(r.waiting, Some(Wait::Children(_)))).await;
    // Still going until its child's start is in its history (written after the wait):
    // from then on it only waits.
    for _ in 0..2_000 {
        let history = rt.history(&live).await.unwrap();
        if history
            .iter()
            .any(|e| matches!(e.kind, EventKind::ChildStarted { .. }))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let error = refused(&rt, &live).await;
    assert!(
        matches!(
            &error,
            RedriveError::NotRedrivable {
                status: Status::Running,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains(live.as_str()), "{error}");
    assert!(rt.cancel(&live).await.unwrap());
    assert_eq!(rt.wait(&live).await.unwrap(), Outcome::Cancelled);
    let error = refused(&rt, &live).await;
    assert!(
        matches!(
            &error,
            RedriveError::NotRedrivable {
                status: Status::Cancelled,
                ..
            }
        ),
        "{error:?}"
    );

    // A child: of a map that failed on it.
    let parent = rt.start(map, vec![0, 2]).await.unwrap().id().clone();
    assert!(matches!(
        rt.wait(&parent).await.unwrap(),
        Outcome::Failed(_)
    ));
    let failed_child = ExecutionId::from(format!("{parent}/1.1"));
    assert_eq!(
        rt.record(&failed_child).await.unwrap().status,
        Status::Failed
    );
    let error = refused(&rt, &failed_child).await;
    let RedriveError::Child {
        parent: named,
        top_level,
        ..
    } = &error
    else {
        panic!("{error:?}");
    };
    assert_eq!((named, top_level), (&parent, &parent));
    assert!(error.to_string().contains(parent.as_str()), "{error}");
    let parent_before = snapshot(&rt, &parent).await;
    assert_eq!(snapshot(&rt, &parent).await, parent_before);

    // Succeeded.
    svc.fix();
    let done = rt.start(two_steps, 1).await.unwrap().id().clone();
    assert!(matches!(
        rt.wait(&done).await.unwrap(),
        Outcome::Succeeded(_)
    ));
    let error = refused(&rt, &done).await;
    assert!(
        matches!(
            &error,
            RedriveError::NotRedrivable {
                status: Status::Succeeded,
                ..
            }
        ),
        "{error:?}"
    );
    rt.shutdown().await;

    // Written by one definition, redriven where another has its name.
    let broken = Svc::new(false);
    let old = Runtime::builder()
        .register(v1::versioned)
        .dependency_arc(Arc::clone(&broken))
        .sqlite(&db)
        .build()
        .unwrap();
    let versioned = old.start(v1::versioned, 3).await.unwrap().id().clone();
    assert!(matches!(
        old.wait(&versioned).await.unwrap(),
        Outcome::Failed(_)
    ));
    old.shutdown().await;
    let new = Runtime::builder()
        .register(v2::versioned)
        .dependency_arc(Svc::new(true))
        .sqlite(&db)
        .build()
        .unwrap();
    let error = refused(&new, &versioned).await;
    let (stored, registered) = (
        <v1::versioned as Workflow>::FINGERPRINT,
        <v2::versioned as Workflow>::FINGERPRINT,
    );
    assert!(
        matches!(&error, RedriveError::VersionMismatch { stored: s, registered: r, .. }
            if (*s, *r) == (stored, registered)),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains(&format!("{stored:#018x}")), "{message}");
    assert!(
        message.contains(&format!("{registered:#018x}")),
        "{message}"
    );
    assert!(message.contains(versioned.as_str()), "{message}");
    // The parent of the map, whose workflow this runtime does not register.
    let error = refused(&new, &parent).await;
    assert!(
        matches!(&error, RedriveError::NotRegistered { workflow, .. } if workflow == "Map"),
        "{error:?}"
    );
    new.shutdown().await;
    // Nothing was changed: the old definition redrives it.
    let old = Runtime::builder()
        .register(v1::versioned)
        .dependency_arc(Svc::new(true))
        .sqlite(&db)
        .build()
        .unwrap();
    assert_eq!(old.redrive(&versioned).await.unwrap().count, 1);
    assert_eq!(
        old.wait(&versioned).await.unwrap(),
        Outcome::Succeeded(json!(30).into())
    );
    old.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// 4. Twice.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_execution_redriven_twice_counts_two() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Svc::new(false);
    let rt = runtime(&dir.path().join("wf.sqlite"), &svc);
    let id = rt.start(two_steps, 1).await.unwrap().id().clone();
    assert!(matches!(rt.wait(&id).await.unwrap(), Outcome::Failed(_)));
    // Not fixed yet: it fails again.
    assert_eq!(rt.redrive(&id).await.unwrap().count, 1);
    assert!(matches!(rt.wait(&id).await.unwrap(), Outcome::Failed(_)));
    assert_eq!(rt.record(&id).await.unwrap().redrives, 1);
    svc.fix();
    assert_eq!(rt.redrive(&id).await.unwrap().count, 2);
    assert_eq!(
        rt.wait(&id).await.unwrap(),
        Outcome::Succeeded(json!(20).into())
    );
    let record = rt.record(&id).await.unwrap();
    assert_eq!((record.status, record.redrives), (Status::Succeeded, 2));
    assert_eq!(
        lifecycle(&rt.history(&id).await.unwrap()),
        [
            started(),
            failed(),
            redriven(1),
            failed(),
            redriven(2),
            succeeded()
        ]
    );
    assert_eq!((svc.calls("first"), svc.calls("second")), (1, 3));
    rt.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// 5. Timeouts count from the redrive.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_execution_redriven_gets_its_whole_timeout_again() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Svc::new(false);
    let rt = runtime(&dir.path().join("wf.sqlite"), &svc);
    let id = rt.start(bounded, 1).await.unwrap().id().clone();
    assert_eq!(rt.wait(&id).await.unwrap(), Outcome::TimedOut);
    // Well past its timeout from creation.
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Not fixed: it runs for its whole timeout again, from the redrive.
    let redriven_at = Instant::now();
    assert_eq!(rt.redrive(&id).await.unwrap().count, 1);
    assert_eq!(rt.wait(&id).await.unwrap(), Outcome::TimedOut);
    assert!(
        redriven_at.elapsed() >= Duration::from_millis(400),
        "timed out after {:?}",
        redriven_at.elapsed()
    );
    // Fixed: it succeeds.
    svc.fix();
    assert_eq!(rt.redrive(&id).await.unwrap().count, 2);
    assert_eq!(
        rt.wait(&id).await.unwrap(),
        Outcome::Succeeded(json!(2).into())
    );
    assert_eq!((svc.calls("first"), svc.calls("slow")), (1, 3));
    assert_eq!(
        lifecycle(&rt.history(&id).await.unwrap()),
        [
            started(),
            EventKind::ExecutionTimedOut,
            redriven(1),
            EventKind::ExecutionTimedOut,
            redriven(2),
            succeeded()
        ]
    );
    rt.shutdown().await;
}

/// The redrive's time is stored: after a restart, the timeout still counts from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_the_timeout_still_counts_from_the_redrive() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wf.sqlite");
    let svc = Svc::new(false);
    let rt = runtime(&db, &svc);
    let id = rt.start(bounded_longer, 1).await.unwrap().id().clone();
    assert_eq!(rt.wait(&id).await.unwrap(), Outcome::TimedOut);
    rt.redrive(&id).await.unwrap();
    // Stopped (as if killed) while its slow call is in flight.
    while svc.calls("slow") < 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    rt.shutdown().await;
    let record = {
        let rt = runtime(&db, &Svc::new(true));
        let record = rt.record(&id).await.unwrap();
        assert_eq!(record.status, Status::Running);
        let redriven_at = record.redriven_at.expect("the redrive's time is stored");
        assert!(redriven_at.since(record.created_at) >= Duration::from_millis(1500));
        // Resumed within its timeout from the redrive (from its creation, it would be
        // long past): the slow call runs again and answers.
        let report = rt.recover().await.unwrap();
        assert_eq!(report.in_flight, 1, "{report}");
        assert_eq!(
            rt.wait(&id).await.unwrap(),
            Outcome::Succeeded(json!(2).into())
        );
        rt.shutdown().await;
        record
    };
    assert_eq!(record.redrives, 1);
}

/// A parent that timed out while its children ran: the children were cancelled with
/// it, and are redriven with it (at once, while they may still be ending: the redrive
/// waits for their ends).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_timed_out_on_its_children_is_redriven_with_them() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Svc::new(false);
    let rt = runtime(&dir.path().join("wf.sqlite"), &svc);
    let id = rt
        .start(bounded_map, vec![1, 2, 3])
        .await
        .unwrap()
        .id()
        .clone();
    assert_eq!(rt.wait(&id).await.unwrap(), Outcome::TimedOut);
    let redrive = rt.redrive(&id).await.unwrap();
    let children: Vec<ExecutionId> = (0..3)
        .map(|i| ExecutionId::from(format!("{id}/1.{i}")))
        .collect();
    assert_eq!(redrive.children, children);
    // Fixed once the children wait on it again.
    for child in &children {
        until(&rt, child, |r| r.status == Status::Running).await;
    }
    while svc.calls("slow") < 6 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    svc.fix();
    assert_eq!(
        rt.wait(&id).await.unwrap(),
        Outcome::Succeeded(json!([1, 2, 3]).into())
    );
    for child in &children {
        let record = rt.record(child).await.unwrap();
        assert_eq!((record.status, record.redrives), (Status::Succeeded, 1));
        let history = lifecycle(&rt.history(child).await.unwrap());
        assert_eq!(
            history[1..],
            [EventKind::ExecutionCancelled, redriven(1), succeeded()]
        );
    }
    assert_eq!(svc.calls("slow"), 6);
    rt.shutdown().await;
}

/// A retry policy's attempts start over, and a batch's `#[timeout]` runs again from the
/// redrive (otherwise, past, it would stop the redriven children at once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_and_batch_timeouts_start_over_on_a_redrive() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Svc::new(false);
    let rt = runtime(&dir.path().join("wf.sqlite"), &svc);
    let id = rt.start(retried, 1).await.unwrap().id().clone();
    assert!(matches!(rt.wait(&id).await.unwrap(), Outcome::Failed(_)));
    assert_eq!(svc.calls("second"), 3, "the call and its two retries");
    assert_eq!(rt.redrive(&id).await.unwrap().count, 1);
    assert!(matches!(rt.wait(&id).await.unwrap(), Outcome::Failed(_)));
    assert_eq!(svc.calls("second"), 6, "two retries again");
    let history = rt.history(&id).await.unwrap();
    let retries: Vec<u32> = history
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::RetryScheduled { attempt, .. } => Some(attempt),
            _ => None,
        })
        .collect();
    assert_eq!(retries, [1, 2, 1, 2]);
    svc.fix();
    assert_eq!(rt.redrive(&id).await.unwrap().count, 2);
    assert_eq!(
        rt.wait(&id).await.unwrap(),
        Outcome::Succeeded(json!(20).into())
    );
    assert_eq!((svc.calls("first"), svc.calls("second")), (1, 7));

    let svc = Svc::new(false);
    let rt = {
        rt.shutdown().await;
        runtime(&dir.path().join("wf.sqlite"), &svc)
    };
    let id = rt
        .start(batch_bounded, vec![5, 6])
        .await
        .unwrap()
        .id()
        .clone();
    let Outcome::Failed(error) = rt.wait(&id).await.unwrap() else {
        panic!("the batch should time out");
    };
    assert!(
        matches!(
            error.decode::<NestedError<SvcError>>().unwrap(),
            NestedError::TimedOut { .. }
        ),
        "{error:?}"
    );
    // Well past the batch's timeout from its start.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let redriven_at = Instant::now();
    let redrive = rt.redrive(&id).await.unwrap();
    assert_eq!(redrive.children.len(), 2);
    assert!(matches!(rt.wait(&id).await.unwrap(), Outcome::Failed(_)));
    assert!(
        redriven_at.elapsed() >= Duration::from_millis(400),
        "the batch timed out after {:?}",
        redriven_at.elapsed()
    );
    assert_eq!(svc.calls("slow"), 4, "the children ran again");
    svc.fix();
    rt.redrive(&id).await.unwrap();
    assert_eq!(
        rt.wait(&id).await.unwrap(),
        Outcome::Succeeded(json!([5, 6]).into())
    );
    for i in 0..2 {
        let child = rt.record(&format!("{id}/1.{i}").into()).await.unwrap();
        assert_eq!((child.status, child.redrives), (Status::Succeeded, 2));
    }
    rt.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// 6. kill -9.

/// What the worker does with the execution `REDRIVE_WORKER_ID` of the file.
///
/// - `sleep`: redrives it (the service is fixed), prints `SLEEPING` once it waits on its
///   timer, and finishes it (it is killed before);
/// - `loop`: recovers, then redrives it each time it ends failed (the service stays
///   down), until it is killed.
#[test]
#[ignore = "the redrive kill tests' worker process; they start it"]
fn redrive_worker() {
    let Ok(db) = std::env::var("REDRIVE_WORKER_DB") else {
        return;
    };
    let id = ExecutionId::from(std::env::var("REDRIVE_WORKER_ID").expect("REDRIVE_WORKER_ID"));
    let log = PathBuf::from(std::env::var("REDRIVE_WORKER_LOG").expect("REDRIVE_WORKER_LOG"));
    let mode = std::env::var("REDRIVE_WORKER_MODE").expect("REDRIVE_WORKER_MODE");
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(async move {
            let svc = Svc::logging(mode == "sleep", &log);
            let rt = runtime(Path::new(&db), &svc);
            if mode == "sleep" {
                let redrive = rt.redrive(&id).await.expect("the execution is redriven");
                println!("REDRIVEN {}", redrive.count);
                until(&rt, &id, |r| matches!(r.waiting, Some(Wait::Timer { .. }))).await;
                println!("SLEEPING");
                let outcome = rt.wait(&id).await.expect("the store reads");
                println!("DONE {outcome:?}");
                return;
            }
            rt.recover().await.expect("recovery reads the store");
            loop {
                match rt.wait(&id).await.expect("the store reads") {
                    Outcome::Succeeded(_) => return,
                    _ => match rt.redrive(&id).await {
                        Ok(Redrive { count, .. }) => println!("REDRIVEN {count}"),
                        Err(e) => panic!("redrive refused: {e}"),
                    },
                }
            }
        });
}

fn spawn_worker(db: &Path, log: &Path, id: &ExecutionId, mode: &str, output: &Path) -> Child {
    let output = OpenOptions::new()
        .create(true)
        .append(true)
        .open(output)
        .expect("the worker's output file opens");
    Command::new(std::env::current_exe().expect("the test binary's path"))
        .args([
            "redrive_worker",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("REDRIVE_WORKER_DB", db)
        .env("REDRIVE_WORKER_LOG", log)
        .env("REDRIVE_WORKER_ID", id.as_str())
        .env("REDRIVE_WORKER_MODE", mode)
        .stdin(Stdio::null())
        .stdout(output.try_clone().expect("a second handle"))
        .stderr(output)
        .spawn()
        .expect("the worker starts")
}

/// Waits until the worker's output has a line starting with `line` (or fails after a
/// bound).
fn wait_for_line(child: &mut Child, output: &Path, line: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(output).unwrap_or_default();
        if text.lines().any(|l| l.starts_with(line)) {
            return;
        }
        if let Some(status) = child.try_wait().expect("the worker can be waited for") {
            panic!("the worker exited ({status}) before `{line}`:\n{text}");
        }
        assert!(
            Instant::now() < deadline,
            "no `{line}` from the worker:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn kill(mut child: Child) {
    child.kill().expect("SIGKILL is delivered");
    child.wait().expect("the killed worker is reaped");
}

/// The worker redrives a failed execution, whose redriven run sleeps on a durable
/// timer, and is killed there: a new runtime recovers it, and it succeeds; the task
/// that had succeeded before the failure ran once, the failed one twice.
#[test]
fn a_redrive_killed_during_its_sleep_is_recovered_and_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let (db, log, output) = (
        dir.path().join("wf.sqlite"),
        dir.path().join("calls.log"),
        dir.path().join("worker.out"),
    );
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let id = tokio.block_on(async {
        let rt = runtime(&db, &Svc::logging(false, &log));
        let id = rt.start(nightly, 4).await.unwrap().id().clone();
        assert!(matches!(rt.wait(&id).await.unwrap(), Outcome::Failed(_)));
        rt.shutdown().await;
        id
    });

    let mut worker = spawn_worker(&db, &log, &id, "sleep", &output);
    wait_for_line(&mut worker, &output, "SLEEPING");
    kill(worker);

    tokio.block_on(async {
        let rt = runtime(&db, &Svc::logging(true, &log));
        let record = rt.record(&id).await.unwrap();
        assert_eq!((record.status, record.redrives), (Status::Running, 1));
        let report = rt.recover().await.unwrap();
        assert_eq!(report.resumed, std::slice::from_ref(&id), "{report}");
        assert_eq!(
            rt.wait(&id).await.unwrap(),
            Outcome::Succeeded(json!(53).into())
        );
        let history = rt.history(&id).await.unwrap();
        assert_eq!(
            lifecycle(&history),
            [started(), failed(), redriven(1), succeeded()]
        );
        rt.shutdown().await;
    });
    assert_eq!(
        ["first", "second", "third"].map(|call| logged(&log, call)),
        [1, 2, 1],
        "the first task ran once, the failing one again, the last once"
    );
}

/// A small deterministic generator for the kill moments (xorshift64*).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// The worker redrives a failed map again and again (the service stays down: each run
/// fails), and is killed at random moments. After each kill the parent and the two
/// children it redrives have the same redrive count: reopening them was one write. A
/// last runtime, with the service fixed, recovers (and redrives, if the kill left it
/// ended) and the map succeeds, with the same five children.
#[test]
fn kills_during_redrives_leave_all_of_a_family_reopened_or_none() {
    let dir = tempfile::tempdir().unwrap();
    let (db, log) = (dir.path().join("wf.sqlite"), dir.path().join("calls.log"));
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let id = tokio.block_on(async {
        let rt = runtime(&db, &Svc::logging(false, &log));
        let id = rt
            .start(map, vec![0, 1, 2, 3, 4])
            .await
            .unwrap()
            .id()
            .clone();
        assert!(matches!(rt.wait(&id).await.unwrap(), Outcome::Failed(_)));
        rt.shutdown().await;
        id
    });
    let family: Vec<ExecutionId> = [id.to_string(), format!("{id}/1.1"), format!("{id}/1.2")]
        .map(ExecutionId::from)
        .to_vec();

    let mut rng = Rng(0x5eed_4ed1);
    let mut counts = Vec::new();
    for kill_no in 0..6 {
        let output = dir.path().join(format!("worker-{kill_no}.out"));
        let mut worker = spawn_worker(&db, &log, &id, "loop", &output);
        // Once this worker has redriven the map, at a random moment of a later redrive.
        wait_for_line(&mut worker, &output, "REDRIVEN");
        std::thread::sleep(Duration::from_millis(rng.below(150)));
        kill(worker);
        tokio.block_on(async {
            let rt = runtime(&db, &Svc::new(false));
            let mut redrives = Vec::new();
            for member in &family {
                redrives.push(rt.record(member).await.unwrap().redrives);
            }
            assert!(
                redrives.iter().all(|&r| r == redrives[0]),
                "reopened apart: {redrives:?}"
            );
            counts.push(redrives[0]);
            rt.shutdown().await;
        });
    }
    eprintln!("redrive kill test: the redrive counts at the kills: {counts:?}");
    assert!(counts.iter().all(|&c| c >= 1), "{counts:?}");

    tokio.block_on(async {
        let svc = Svc::logging(true, &log);
        let rt = runtime(&db, &svc);
        rt.recover().await.unwrap();
        let mut outcome = rt.wait(&id).await.unwrap();
        if !matches!(outcome, Outcome::Succeeded(_)) {
            rt.redrive(&id).await.unwrap();
            outcome = rt.wait(&id).await.unwrap();
        }
        assert_eq!(outcome, Outcome::Succeeded(json!([0, 1, 4, 9, 16]).into()));
        let children: Vec<String> = rt
            .tree(&id)
            .await
            .unwrap()
            .children
            .iter()
            .map(|c| c.id.to_string())
            .collect();
        let expected: Vec<String> = (0..5).map(|i| format!("{id}/1.{i}")).collect();
        assert_eq!(children, expected, "no child twice");
        rt.shutdown().await;
    });
    assert_eq!(
        logged(&log, "item-0"),
        1,
        "the child that succeeded ran once"
    );
}
