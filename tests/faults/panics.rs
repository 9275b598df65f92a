//! A panic in a workflow's code (a task, a `poll_until!` predicate, the code between
//! yield points, a child's) faults its execution with `Workflow.Panic`, recorded in the
//! store; a parent gets it as a child failure; a retry policy retries it only if it names
//! it; a restart runs nothing again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use workflow::prelude::*;
use workflow::{EventKind, ExecutionId, Fault, Outcome, Status};

/// Every test ends well within this, or fails instead of hanging.
const BOUND: Duration = Duration::from_secs(20);

/// A service that panics when asked to, and counts every call across runtimes.
#[derive(Clone, Default)]
struct Svc {
    calls: Arc<Mutex<HashMap<String, u32>>>,
}

impl Svc {
    fn count(&self, what: &str) -> u32 {
        let mut calls = self.calls.lock().unwrap();
        let n = calls.entry(what.to_owned()).or_default();
        *n += 1;
        *n
    }

    fn calls(&self, what: &str) -> u32 {
        self.calls.lock().unwrap().get(what).copied().unwrap_or(0)
    }

    /// Panics on a `panic` request; on `panic-N`, panics on the first N calls only.
    async fn work(&self, what: &str) -> Result<u32, JobError> {
        let n = self.count(what);
        match what.strip_prefix("panic") {
            Some("") => panic!("boom in {what}"),
            Some(times) if n <= times.trim_start_matches('-').parse().unwrap_or(0) => {
                panic!("boom {n} in {what}")
            }
            _ => Ok(n),
        }
    }

    /// Answers at once; a task that never ends for `hang`.
    async fn slow(&self, what: &str) -> Result<u32, JobError> {
        let n = self.count(what);
        if what == "hang" {
            std::future::pending::<()>().await;
        }
        Ok(n)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, thiserror::Error, WorkflowError)]
enum JobError {
    #[error("{0}")]
    Service(String),
    #[error(transparent)]
    #[workflow_error(transparent)]
    Poll(#[from] PollError),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, thiserror::Error, WorkflowError)]
enum ParentError {
    #[error(transparent)]
    #[workflow_error(transparent)]
    Child(#[from] NestedError<JobError>),
}

#[workflow(name = "PanicTask")]
async fn panic_task(svc: &Svc, what: String) -> Result<u32, JobError> {
    let n: u32 = svc.work(&what).await?;
    Ok(n)
}

#[workflow(name = "PanicPredicate")]
async fn panic_predicate(svc: &Svc, what: String) -> Result<u32, JobError> {
    let polled: Polled<u32> = poll_until!(
        svc.slow(&what),
        |n| if *n == 2 {
            panic!("predicate gave up at {n}")
        } else {
            false
        },
        every = 1.millis(),
        max_attempts = 5,
    )?;
    Ok(polled.value)
}

#[workflow(name = "PanicBetween")]
async fn panic_between(svc: &Svc, what: String) -> Result<u32, JobError> {
    let n: u32 = svc.slow(&what).await?;
    let doubled = n.checked_mul(2).filter(|d| *d != 2);
    let d: u32 = doubled.expect("the code between yield points panicked");
    sleep!(1.millis());
    Ok(d)
}

#[workflow(name = "PanicRetried")]
async fn panic_retried(svc: &Svc, what: String) -> Result<u32, JobError> {
    #[retry(on = ["Workflow.Panic"], interval = 1.millis(), max_attempts = 2)]
    let n: u32 = svc.work(&what).await?;
    Ok(n)
}

#[workflow(name = "PanicNotRetried")]
async fn panic_not_retried(svc: &Svc, what: String) -> Result<u32, JobError> {
    // A policy for every error: a panic is not one of them.
    #[retry(interval = 1.millis(), max_attempts = 3)]
    let n: u32 = svc.work(&what).await?;
    Ok(n)
}

#[workflow(name = "PanicParent")]
async fn panic_parent(what: String) -> Result<u32, ParentError> {
    let n: u32 = call_nested!(panic_task(what))?;
    Ok(n)
}

#[workflow(name = "PanicFanOut")]
async fn panic_fan_out(whats: Vec<String>) -> Result<Vec<u32>, ParentError> {
    let ns: Vec<u32> = call_nested!(for w in whats => panic_task(w))?;
    Ok(ns)
}

#[workflow(name = "Hang")]
async fn hang(svc: &Svc, what: String) -> Result<u32, JobError> {
    let n: u32 = svc.slow(&what).await?;
    Ok(n)
}

#[workflow(name = "PanicSibling")]
async fn panic_sibling(what: String) -> Result<(u32, u32), ParentError> {
    let both: (u32, u32) = call_nested!(parallel(panic_task(what), hang("hang".to_owned())))?;
    Ok(both)
}

fn runtime(db: &Path, svc: &Svc) -> Runtime {
    Runtime::builder()
        .register(panic_task)
        .register(panic_predicate)
        .register(panic_between)
        .register(panic_retried)
        .register(panic_not_retried)
        .register(panic_parent)
        .register(panic_fan_out)
        .register(panic_sibling)
        .dependency(svc.clone())
        .sqlite(db)
        .build()
        .expect("the file opens")
}

/// A runtime on a new SQLite file, with a new service: the directory (kept alive by
/// the caller), the file, the service and the runtime.
fn fresh() -> (tempfile::TempDir, PathBuf, Svc, Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wf.sqlite");
    let svc = Svc::default();
    let rt = runtime(&db, &svc);
    (dir, db, svc, rt)
}

async fn bounded<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(BOUND, f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not end within {BOUND:?}"))
}

/// The execution faulted with a panic, in the store and in its history.
async fn assert_panicked(rt: &Runtime, id: &ExecutionId, says: &str) -> Fault {
    let outcome = bounded("wait", rt.wait(id)).await.expect("it ended");
    let Outcome::Faulted(fault) = outcome else {
        panic!("{id} ended with {outcome:?}, not a fault");
    };
    assert_eq!(fault.name(), Fault::PANIC, "{fault}");
    assert!(fault.is_panic());
    assert!(fault.message().contains(says), "{fault}");
    let record = rt.record(id).await.unwrap();
    assert_eq!(record.status, Status::Faulted);
    let history = rt.history(id).await.unwrap();
    let last = history.last().expect("a history");
    assert!(
        matches!(&last.kind, EventKind::ExecutionFaulted { name, message }
            if name == Fault::PANIC && message.contains(says)),
        "{last:?}"
    );
    fault
}

/// Stops `rt` and recovers the file in a new runtime: nothing is resumed.
async fn restart_resumes_nothing(db: &Path, rt: Runtime, svc: &Svc) -> Runtime {
    rt.shutdown().await;
    let rt = runtime(db, svc);
    let report = rt.recover().await.unwrap();
    assert!(report.resumed.is_empty(), "{report}");
    rt
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_task_faults_its_execution_and_a_restart_does_not_run_it_again() {
    let (_dir, db, svc, rt) = fresh();
    let exec = rt.start(panic_task, "panic".to_owned()).await.unwrap();
    let id = exec.id().clone();
    assert_panicked(&rt, &id, "boom in panic").await;
    let err = bounded("result", exec.result()).await.unwrap_err();
    assert!(
        matches!(&err, RunError::Faulted(f) if f.is_panic()),
        "{err:?}"
    );
    // Ended: a cancel has nothing to cancel, and the status stays.
    assert!(!rt.cancel(&id).await.unwrap());
    assert_eq!(rt.record(&id).await.unwrap().status, Status::Faulted);
    // The runtime goes on with other executions.
    let ok = rt.start(panic_task, "fine".to_owned()).await.unwrap();
    assert_eq!(bounded("result", ok.result()).await.unwrap(), 1);

    let _rt = restart_resumes_nothing(&db, rt, &svc).await;
    assert_eq!(svc.calls("panic"), 1, "the panicking task ran again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_predicate_faults_its_execution() {
    let (_dir, db, svc, rt) = fresh();
    let exec = rt.start(panic_predicate, "poll".to_owned()).await.unwrap();
    assert_panicked(&rt, exec.id(), "predicate gave up at 2").await;
    let _rt = restart_resumes_nothing(&db, rt, &svc).await;
    assert_eq!(svc.calls("poll"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_between_yield_points_faults_its_execution() {
    let (_dir, db, svc, rt) = fresh();
    let exec = rt.start(panic_between, "x".to_owned()).await.unwrap();
    assert_panicked(&rt, exec.id(), "the code between yield points panicked").await;
    // The task's result was checkpointed before the code after it panicked.
    let history = rt.history(exec.id()).await.unwrap();
    let tasks = history.iter().filter(|e| e.kind.name() == "TaskSucceeded");
    assert_eq!(tasks.count(), 1);
    let _rt = restart_resumes_nothing(&db, rt, &svc).await;
    assert_eq!(svc.calls("x"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_that_names_workflow_panic_retries_a_panic_and_no_other_does() {
    let (_dir, _db, svc, rt) = fresh();

    // Two panics, two retries: the third call answers.
    let exec = rt.start(panic_retried, "panic-2".to_owned()).await.unwrap();
    let id = exec.id().clone();
    assert_eq!(bounded("result", exec.result()).await.unwrap(), 3);
    let retries: Vec<_> = rt
        .history(&id)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::RetryScheduled { error, .. } => Some(error),
            _ => None,
        })
        .collect();
    assert_eq!(retries, [Fault::PANIC, Fault::PANIC]);

    // Three panics exhaust the policy: the execution faults, after three calls.
    let exec = rt.start(panic_retried, "panic-3".to_owned()).await.unwrap();
    assert_panicked(&rt, exec.id(), "boom 3 in panic-3").await;
    assert_eq!(svc.calls("panic-3"), 3);

    // A policy for every error does not retry a panic.
    let exec = rt
        .start(panic_not_retried, "panic".to_owned())
        .await
        .unwrap();
    assert_panicked(&rt, exec.id(), "boom in panic").await;
    assert_eq!(svc.calls("panic"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_gets_its_childs_panic_as_a_child_failure() {
    let (_dir, db, svc, rt) = fresh();

    let exec = rt.start(panic_parent, "panic".to_owned()).await.unwrap();
    let parent = exec.id().clone();
    let err = bounded("the parent", exec.result()).await.unwrap_err();
    let RunError::Failed(ParentError::Child(NestedError::Faulted { child, message })) = err else {
        panic!("{err:?}");
    };
    assert!(message.contains("boom in panic"), "{message}");
    assert_panicked(&rt, &child, "boom in panic").await;
    assert_eq!(rt.record(&parent).await.unwrap().status, Status::Failed);

    // A fan-out fails fast on the panicking child; the others end too.
    let whats = vec!["a".to_owned(), "panic".to_owned(), "b".to_owned()];
    let exec = rt.start(panic_fan_out, whats).await.unwrap();
    let parent = exec.id().clone();
    let err = bounded("the fan-out", exec.result()).await.unwrap_err();
    assert!(
        matches!(
            &err,
            RunError::Failed(ParentError::Child(NestedError::Faulted { .. }))
        ),
        "{err:?}"
    );
    let tree = rt.tree(&parent).await.unwrap();
    assert!(
        tree.children.iter().all(|c| c.status.is_terminal()),
        "{tree:?}"
    );

    let _rt = restart_resumes_nothing(&db, rt, &svc).await;
    assert_eq!(
        svc.calls("panic"),
        2,
        "one call per panicking child, no more"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_child_cancels_its_hanging_sibling_and_cancelling_a_parent_ends_its_children() {
    let (_dir, _db, svc, rt) = fresh();

    // The sibling hangs forever: the panic must still end the batch, and the sibling.
    let exec = rt.start(panic_sibling, "panic".to_owned()).await.unwrap();
    let parent = exec.id().clone();
    let err = bounded("the parent", exec.result()).await.unwrap_err();
    assert!(
        matches!(
            &err,
            RunError::Failed(ParentError::Child(NestedError::Faulted { .. }))
        ),
        "{err:?}"
    );
    let tree = rt.tree(&parent).await.unwrap();
    let statuses: Vec<Status> = tree.children.iter().map(|c| c.status).collect();
    assert_eq!(statuses, [Status::Faulted, Status::Cancelled], "{tree:?}");

    // With no panic the sibling hangs; cancelling the parent ends both.
    let before = svc.calls("hang");
    let exec = rt.start(panic_sibling, "fine".to_owned()).await.unwrap();
    let parent = exec.id().clone();
    for _ in 0..2_000 {
        if svc.calls("hang") > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(rt.cancel(&parent).await.unwrap());
    let outcome = bounded("the cancelled parent", rt.wait(&parent))
        .await
        .unwrap();
    assert_eq!(outcome, Outcome::Cancelled);
    let tree = rt.tree(&parent).await.unwrap();
    assert!(
        tree.children.iter().all(|c| c.status.is_terminal()),
        "{tree:?}"
    );
}
