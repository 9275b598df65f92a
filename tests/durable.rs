//! Durability on a real SQLite file: restarts resume timers, polls and children; versions,
//! corrupted rows, size limits, a second runtime and a full disk are handled.
//!
//! A "restart" is [`Runtime::shutdown`] (every driver stops where it is, nothing is
//! recorded, the file is released: to the store, the same as a killed process) and a new
//! runtime on the same file. The crash test (`tests/crash.rs`) does it with real `kill -9`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::watch;
use workflow::prelude::*;
use workflow::store::Wait;
use workflow::{
    BuildError, EventKind, Execution, ExecutionFilter, ExecutionId, OpenError, Outcome, Payload,
    SqliteStore, StartError, Status, StoreError,
};

// ---------------------------------------------------------------------------------------
// A job service whose status calls can be held (to stop a runtime with tasks in flight),
// and that counts every call, across runtimes.

#[derive(Default)]
struct Counts {
    starts: HashMap<String, u32>,
    status: HashMap<u32, u32>,
}

struct Svc {
    counts: Arc<Mutex<Counts>>,
    next: Arc<AtomicU32>,
    /// Status calls wait until this is true.
    open: watch::Receiver<bool>,
    /// Status calls waiting on `open`.
    held: Arc<AtomicU32>,
}

impl Svc {
    fn new(open: bool) -> (Svc, watch::Sender<bool>) {
        let (tx, rx) = watch::channel(open);
        let svc = Svc {
            counts: Arc::default(),
            next: Arc::default(),
            open: rx,
            held: Arc::default(),
        };
        (svc, tx)
    }

    /// The same counters, with status calls let through.
    fn reopened(&self) -> Svc {
        Svc {
            counts: Arc::clone(&self.counts),
            next: Arc::clone(&self.next),
            open: watch::channel(true).1,
            held: Arc::default(),
        }
    }

    async fn start(&self, job: &Job) -> Result<u32, String> {
        *self
            .counts
            .lock()
            .unwrap()
            .starts
            .entry(job.name.clone())
            .or_default() += 1;
        Ok(self.next.fetch_add(1, Ordering::SeqCst))
    }

    async fn status(&self, id: &u32) -> Result<u32, String> {
        let calls = {
            let mut counts = self.counts.lock().unwrap();
            let calls = counts.status.entry(*id).or_default();
            *calls += 1;
            *calls
        };
        self.held.fetch_add(1, Ordering::SeqCst);
        let mut open = self.open.clone();
        let _ = open.wait_for(|open| *open).await;
        self.held.fetch_sub(1, Ordering::SeqCst);
        Ok(calls)
    }

    fn starts(&self) -> HashMap<String, u32> {
        self.counts.lock().unwrap().starts.clone()
    }

    fn status_calls(&self) -> u32 {
        self.counts.lock().unwrap().status.values().sum()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Job {
    name: String,
    /// Ready at this status call.
    ready_at: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Done {
    name: String,
    polls: u32,
}

#[derive(WorkflowError, Clone, Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
enum JobError {
    #[error("{0}")]
    Service(String),
    #[error(transparent)]
    #[workflow_error(transparent)]
    Poll(#[from] PollError),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, thiserror::Error, WorkflowError)]
enum FanError {
    #[error(transparent)]
    #[workflow_error(transparent)]
    Child(#[from] NestedError<JobError>),
}

impl From<String> for JobError {
    fn from(e: String) -> Self {
        JobError::Service(e)
    }
}

#[workflow(name = "RunJob")]
async fn run_job(svc: &Svc, job: Job) -> Result<Done, JobError> {
    let id: u32 = svc.start(&job).await?;
    let ready_at: u32 = job.ready_at;
    let polled: Polled<u32> = poll_until!(
        svc.status(&id),
        |calls| *calls >= ready_at,
        every = 5.millis(),
        max_attempts = 1_000,
    )?;
    Ok(Done {
        name: job.name,
        polls: polled.attempts,
    })
}

#[workflow(name = "FanOut")]
async fn fan_out(jobs: Vec<Job>) -> Result<Vec<Done>, FanError> {
    let done: Vec<Done> = call_nested!(for j in jobs => run_job(j), max_concurrency = 2)?;
    Ok(done)
}

#[workflow(name = "Nap")]
async fn nap(ms: u64) -> u64 {
    sleep!(ms.millis());
    ms
}

fn jobs(n: u32, ready_at: u32) -> Vec<Job> {
    (0..n)
        .map(|i| Job {
            name: format!("job-{i}"),
            ready_at,
        })
        .collect()
}

fn runtime(db: &Path, svc: Svc) -> Runtime {
    Runtime::builder()
        .register(fan_out)
        .register(nap)
        .dependency(svc)
        .sqlite(db)
        .build()
        .expect("the file opens")
}

/// Polls the store until `ready` holds for the execution's record (or panics after a
/// generous bound, so a broken build fails instead of hanging).
async fn until(rt: &Runtime, id: &ExecutionId, ready: impl Fn(&workflow::ExecutionRecord) -> bool) {
    for _ in 0..2_000 {
        if rt.record(id).await.is_ok_and(|r| ready(&r)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("execution {id} never reached the expected state");
}

async fn until_true(what: &str, check: impl Fn() -> bool) {
    for _ in 0..2_000 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("never happened: {what}");
}

fn kinds(history: &[workflow::Event], name: &str) -> usize {
    history.iter().filter(|e| e.kind.name() == name).count()
}

/// Leaves `db` as a crash would in the middle of a fan-out of four children: two
/// children in their first status call (held), two not started yet. Returns the parent's
/// handle, whose result the stop ended, and the service to reopen the file with (the
/// same counters, status calls let through).
async fn stopped_mid_fan_out(db: &Path) -> (Execution<fan_out>, Svc) {
    let (svc, _gate) = Svc::new(false);
    let held = Arc::clone(&svc.held);
    let reopened = svc.reopened();
    let rt = runtime(db, svc);
    let exec = rt.start(fan_out, jobs(4, 3)).await.unwrap();
    until_true("two status calls in flight", || {
        held.load(Ordering::SeqCst) == 2
    })
    .await;
    rt.shutdown().await;
    (exec, reopened)
}

// ---------------------------------------------------------------------------------------

/// The parent waits on a batch with two children polling (their status calls in flight)
/// and two never started: after a restart the parent waits for the same two children,
/// which re-run their status call, and starts the other two. No child twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resumes_children_and_polls_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wf.sqlite");
    let (exec, reopened) = stopped_mid_fan_out(&db).await;
    let id = exec.id().clone();
    let stopped = exec.result().await.unwrap_err();
    assert!(matches!(stopped, RunError::Faulted(_)), "{stopped:?}");

    let probe = reopened.reopened();
    let rt = runtime(&db, reopened);
    let report = rt.recover().await.unwrap();
    assert_eq!(report.resumed.len(), 3, "{report}");
    assert_eq!(report.waiting_on_children, 1, "{report}");
    // The children's last checkpoint is their poll interval, now due.
    assert_eq!(report.timers_due, 2, "{report}");
    assert!(report.unregistered.is_empty() && report.parked.is_empty());

    let outcome = rt.wait(&id).await.unwrap();
    let Outcome::Succeeded(value) = outcome else {
        panic!("{outcome:?}");
    };
    let done: Vec<Done> = value.decode().unwrap();
    assert_eq!(
        done.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(),
        ["job-0", "job-1", "job-2", "job-3"]
    );
    // The service counts calls: for the two children whose call was in flight, the re-run
    // call was its second, so they saw the job ready one attempt earlier.
    let polls: Vec<u32> = done.iter().map(|d| d.polls).collect();
    assert_eq!(polls, [2, 2, 3, 3]);

    // Each job was started once: the start task had been checkpointed.
    assert!(
        probe.starts().values().all(|&n| n == 1),
        "{:?}",
        probe.starts()
    );
    // Each job became ready at its third status call; the workflows recorded 10 attempts:
    // the two calls in flight at the stop were made, lost, and made again.
    assert_eq!(probe.status_calls(), 4 * 3);
    assert_eq!(polls.iter().sum::<u32>(), 4 * 3 - 2);

    let tree = rt.tree(&id).await.unwrap();
    assert_eq!(tree.children.len(), 4);
    let history = rt.history(&id).await.unwrap();
    assert_eq!(kinds(&history, "ChildStarted"), 4);
    assert_eq!(kinds(&history, "ChildSucceeded"), 4);
    for (child, done) in tree.children.iter().zip(&done) {
        let history = rt.history(&child.id).await.unwrap();
        assert_eq!(kinds(&history, "ExecutionStarted"), 1, "{}", child.id);
        // One PollAttempt per attempt the workflow counted: the lost one left none.
        let attempts = usize::try_from(done.polls).unwrap();
        assert_eq!(kinds(&history, "PollAttempt"), attempts, "{}", child.id);
    }
    rt.shutdown().await;
}

/// A due timer fires at once, a future one is re-armed with its stored deadline; a
/// cancellation is recorded and survives a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_survive_a_restart_and_cancellation_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wf.sqlite");
    let rt = runtime(&db, Svc::new(true).0);
    // Long enough not to fire before the shutdown below, even on a loaded machine.
    let short = rt.start(nap, 400).await.unwrap().id().clone();
    let long = rt.start(nap, 3_600_000).await.unwrap().id().clone();
    for id in [&short, &long] {
        until(&rt, id, |r| matches!(r.waiting, Some(Wait::Timer { .. }))).await;
    }
    let long_deadline = rt.record(&long).await.unwrap().wake_at;
    rt.shutdown().await;
    // Past the short timer's deadline while no runtime runs.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let rt = runtime(&db, Svc::new(true).0);
    let report = rt.recover().await.unwrap();
    assert_eq!((report.timers_due, report.timers_armed), (1, 1), "{report}");
    assert_eq!(
        rt.wait(&short).await.unwrap(),
        Outcome::Succeeded(json!(400).into())
    );
    let history = rt.history(&short).await.unwrap();
    assert_eq!(kinds(&history, "WaitStarted"), 1);
    assert_eq!(kinds(&history, "WaitEnded"), 1);
    assert_eq!(rt.record(&long).await.unwrap().wake_at, long_deadline);

    assert!(rt.cancel(&long).await.unwrap());
    assert_eq!(rt.wait(&long).await.unwrap(), Outcome::Cancelled);
    rt.shutdown().await;

    let rt = runtime(&db, Svc::new(true).0);
    let report = rt.recover().await.unwrap();
    assert!(report.resumed.is_empty(), "{report}");
    let record = rt.record(&long).await.unwrap();
    assert_eq!(record.status, Status::Cancelled);
    assert_eq!(record.wake_at, None);
    let history = rt.history(&long).await.unwrap();
    assert_eq!(
        history.last().map(|e| e.kind.name()),
        Some("ExecutionCancelled")
    );
    // Listing by workflow and status reads the same file.
    let naps = rt
        .list(ExecutionFilter::new().workflow("Nap"))
        .await
        .unwrap()
        .executions;
    assert_eq!(naps.len(), 2);
    let cancelled = rt
        .list(ExecutionFilter::new().status(Status::Cancelled))
        .await
        .unwrap()
        .executions;
    assert_eq!(cancelled.len(), 1);
    assert_eq!(cancelled[0].id, long);
    rt.shutdown().await;
}

/// Two definitions under one name, with different state graphs.
mod v1 {
    use super::*;

    #[workflow(name = "Versioned")]
    pub async fn versioned(n: u64) -> u64 {
        sleep!(n.millis());
        n + 1
    }
}

mod v2 {
    use super::*;

    #[workflow(name = "Versioned")]
    pub async fn versioned(n: u64) -> u64 {
        sleep!(n.millis());
        sleep!(n.millis());
        n + 2
    }
}

fn versioned_runtime<W: Workflow>(db: &Path, w: W) -> Runtime {
    Runtime::builder().register(w).sqlite(db).build().unwrap()
}

/// A state written by another definition is parked with both fingerprints named and its
/// data untouched; registering the old definition again resumes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_mismatch_parks_the_execution_until_its_definition_returns() {
    let old = <v1::versioned as Workflow>::FINGERPRINT;
    let new = <v2::versioned as Workflow>::FINGERPRINT;
    assert_ne!(old, new);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wf.sqlite");

    let rt = versioned_runtime(&db, v1::versioned);
    // Long enough not to end before the shutdown below, even on a loaded machine.
    let id = rt.start(v1::versioned, 1_500).await.unwrap().id().clone();
    until(&rt, &id, |r| r.waiting.is_some()).await;
    let before = rt.record(&id).await.unwrap();
    let history_before = rt.history(&id).await.unwrap();
    rt.shutdown().await;

    let rt = versioned_runtime(&db, v2::versioned);
    let report = rt.recover().await.unwrap();
    assert!(report.resumed.is_empty(), "{report}");
    assert_eq!(report.parked.len(), 1);
    let parked = &report.parked[0];
    assert_eq!(
        (&parked.id, parked.stored, parked.registered),
        (&id, old, new)
    );
    let message = parked.to_string();
    assert!(message.contains(&format!("{old:#018x}")), "{message}");
    assert!(message.contains(&format!("{new:#018x}")), "{message}");
    let after = rt.record(&id).await.unwrap();
    assert_eq!(after.status, Status::VersionMismatch);
    assert_eq!(
        (&after.state, &after.waiting, after.fingerprint),
        (&before.state, &before.waiting, before.fingerprint)
    );
    assert_eq!(rt.history(&id).await.unwrap(), history_before);
    assert!(matches!(
        rt.wait(&id).await,
        Err(StoreError::NotEnded {
            status: Status::VersionMismatch,
            ..
        })
    ));
    // A second recover with the same definition changes nothing.
    assert_eq!(rt.recover().await.unwrap().parked.len(), 1);
    rt.shutdown().await;

    let rt = versioned_runtime(&db, v1::versioned);
    let report = rt.recover().await.unwrap();
    assert_eq!(report.resumed, std::slice::from_ref(&id), "{report}");
    assert_eq!(
        rt.wait(&id).await.unwrap(),
        Outcome::Succeeded(json!(1_501).into())
    );
    rt.shutdown().await;
}

/// The fingerprint is written by the macro, not printed by rustc: the same value as the
/// macro's own tests compute for this definition outside the compiler
/// (`workflow-macros/src/expand.rs`, `the_fingerprint_is_the_same_in_and_out_of_rustc`),
/// so a toolchain upgrade parks nothing.
#[test]
fn the_fingerprint_does_not_depend_on_the_compiler() {
    assert_eq!(<v1::versioned as Workflow>::FINGERPRINT, V1_FINGERPRINT);
}

/// `v1::versioned`'s fingerprint. Changing it parks every execution stored by the build
/// before: only on purpose, with the old one accepted as a `Workflow::LEGACY`.
const V1_FINGERPRINT: u64 = 17220131047152888656;

/// Rewrites an execution's row as an earlier build would have left it: stored under
/// `fingerprint`, with `state` (its bytes then) if given.
fn stored_by_an_earlier_build(db: &Path, id: &ExecutionId, fingerprint: u64, state: Option<&[u8]>) {
    let conn = rusqlite::Connection::open(db).unwrap();
    let changed = conn
        .execute(
            "UPDATE executions SET fingerprint = ?1, state = coalesce(?2, state) WHERE id = ?3",
            rusqlite::params![
                i64::from_ne_bytes(fingerprint.to_ne_bytes()),
                state,
                id.as_str()
            ],
        )
        .unwrap();
    assert_eq!(changed, 1);
}

/// An execution stored by a build whose fingerprint was rustc's printed text (its state
/// in today's encoding) resumes, with `legacy-fingerprints` (which the tests turn on).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_stored_under_the_printed_fingerprint_resumes() {
    let legacy = <v1::versioned as Workflow>::LEGACY;
    let printed = legacy
        .iter()
        .find(|l| l.derived.is_none())
        .expect("generated by #[workflow] with `legacy-fingerprints`");
    assert_ne!(
        printed.fingerprint,
        <v1::versioned as Workflow>::FINGERPRINT
    );
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wf.sqlite");
    let rt = versioned_runtime(&db, v1::versioned);
    let id = rt.start(v1::versioned, 1_500).await.unwrap().id().clone();
    until(&rt, &id, |r| r.waiting.is_some()).await;
    rt.shutdown().await;

    stored_by_an_earlier_build(&db, &id, printed.fingerprint, None);

    let rt = versioned_runtime(&db, v1::versioned);
    let report = rt.recover().await.unwrap();
    assert_eq!(report.resumed, std::slice::from_ref(&id), "{report}");
    assert_eq!(
        rt.wait(&id).await.unwrap(),
        Outcome::Succeeded(json!(1_501).into())
    );
    rt.shutdown().await;
}

/// An execution stored before issue 22 (its state written by serde's derive, under the
/// definition's fingerprint of then) resumes after the upgrade, its state converted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_stored_before_issue_22_resumes() {
    let legacy = <v1::versioned as Workflow>::LEGACY
        .iter()
        .find(|l| l.derived.is_some())
        .expect("generated by #[workflow] with `legacy-fingerprints`");
    assert_ne!(legacy.fingerprint, <v1::versioned as Workflow>::FINGERPRINT);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wf.sqlite");
    let rt = versioned_runtime(&db, v1::versioned);
    let id = rt.start(v1::versioned, 1_500).await.unwrap().id().clone();
    until(&rt, &id, |r| r.waiting.is_some()).await;
    let state = rt.record(&id).await.unwrap().state;
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&state).unwrap(),
        json!([1, 1_500]),
        "`AfterSleep` (variant 1) with `n`"
    );
    rt.shutdown().await;

    // What the previous version had stored for the same execution.
    stored_by_an_earlier_build(
        &db,
        &id,
        legacy.fingerprint,
        Some(br#"{"AfterSleep":{"n":1500}}"#),
    );

    let rt = versioned_runtime(&db, v1::versioned);
    let report = rt.recover().await.unwrap();
    assert_eq!(report.resumed, std::slice::from_ref(&id), "{report}");
    assert_eq!(
        rt.wait(&id).await.unwrap(),
        Outcome::Succeeded(json!(1_501).into())
    );
    rt.shutdown().await;

    // Under another fingerprint, the same state is parked, not misread.
    let rt = versioned_runtime(&db, v2::versioned);
    let other = rt.start(v2::versioned, 1_500).await.unwrap().id().clone();
    until(&rt, &other, |r| r.waiting.is_some()).await;
    rt.shutdown().await;
    stored_by_an_earlier_build(&db, &other, legacy.fingerprint, None);
    let rt = versioned_runtime(&db, v2::versioned);
    let report = rt.recover().await.unwrap();
    assert_eq!(report.parked.len(), 1, "{report}");
    assert_eq!(report.parked[0].id, other);
    rt.shutdown().await;
}

/// A state that does not decode, or a row whose columns do not, fails that execution
/// alone, with an error naming it; the others resume; unregistered ones stay untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_rows_fail_only_their_execution_and_unregistered_ones_are_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wf.sqlite");
    let rt = runtime(&db, Svc::new(true).0);
    for name in ["good", "bad-state", "bad-row"] {
        let id = rt
            .start_with_id(nap, name, 3_600_000)
            .await
            .unwrap()
            .id()
            .clone();
        until(&rt, &id, |r| r.waiting.is_some()).await;
    }
    let other = rt
        .start_with_id(v1::versioned, "other", 3_600_000)
        .await
        .unwrap_err();
    assert!(matches!(other, StartError::NotRegistered { .. }));
    rt.shutdown().await;
    // An execution of a workflow the next runtime does not register.
    let rt = versioned_runtime(&db, v1::versioned);
    let foreign = rt
        .start_with_id(v1::versioned, "foreign", 3_600_000)
        .await
        .unwrap()
        .id()
        .clone();
    until(&rt, &foreign, |r| r.waiting.is_some()).await;
    rt.shutdown().await;

    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute(
        "UPDATE executions SET state = x'00ff' WHERE id = 'bad-state'",
        [],
    )
    .unwrap();
    conn.execute(
        "UPDATE executions SET waiting = 'not json' WHERE id = 'bad-row'",
        [],
    )
    .unwrap();
    drop(conn);

    let rt = runtime(&db, Svc::new(true).0);
    let foreign_before = rt.record(&foreign).await.unwrap();
    let report = rt.recover().await.unwrap();
    assert_eq!(report.resumed, [ExecutionId::from("good")], "{report}");
    let failed: Vec<&str> = report.failed.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(failed, ["bad-state", "bad-row"]);
    for f in &report.failed {
        assert!(f.to_string().contains(f.id.as_str()), "{f}");
        let record = rt.record(&f.id).await.unwrap();
        assert_eq!(record.status, Status::Faulted);
        let Some(Outcome::Faulted(message)) = record.outcome else {
            panic!("{:?}", record.outcome);
        };
        assert!(
            message.message().contains(f.id.as_str()) || f.id.as_str() == "bad-row",
            "{message}"
        );
    }
    assert_eq!(report.unregistered.len(), 1);
    assert_eq!(report.unregistered[0].id, foreign);
    assert_eq!(report.unregistered[0].workflow, "Versioned");
    assert_eq!(rt.record(&foreign).await.unwrap(), foreign_before);
    assert!(rt.cancel(&"good".into()).await.unwrap());
    rt.shutdown().await;
}

#[workflow(name = "Grow")]
async fn grow(svc: &Svc, size: usize) -> usize {
    let blob: String = svc.blob(size).await;
    sleep!(1.millis());
    blob.len()
}

impl Svc {
    async fn blob(&self, size: usize) -> String {
        "x".repeat(size)
    }
}

/// Inputs and states over the payload limit are refused with the execution and the size
/// named, and nothing of them is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_over_the_limit_are_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::builder()
        .register(grow)
        .register(fan_out)
        .dependency(Svc::new(true).0)
        .payload_limit(4 * 1024)
        .sqlite(dir.path().join("wf.sqlite"))
        .build()
        .unwrap();
    let big = jobs(200, 1);
    match rt.start_with_id(fan_out, "too-big", big).await.unwrap_err() {
        StartError::TooLarge(e) => {
            assert_eq!(e.execution, ExecutionId::from("too-big"));
            assert_eq!(e.what, Payload::Input);
            assert!(e.size > 4 * 1024 && e.limit == 4 * 1024, "{e}");
            assert!(e.to_string().contains("too-big"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert!(rt
        .list(ExecutionFilter::new())
        .await
        .unwrap()
        .executions
        .is_empty());

    let exec = rt.start(grow, 10_000).await.unwrap();
    let id = exec.id().clone();
    let err = exec.result().await.unwrap_err();
    let RunError::Faulted(message) = err else {
        panic!("{err:?}");
    };
    assert!(
        message.message().contains(id.as_str()) && message.message().contains("bytes"),
        "{message}"
    );
    let record = rt.record(&id).await.unwrap();
    assert_eq!(record.status, Status::Faulted);
    assert!(
        record.state.len() < 100,
        "the oversized state was not written"
    );
    rt.shutdown().await;
}

/// One file, one runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_runtime_on_the_same_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wf.sqlite");
    let first = runtime(&db, Svc::new(true).0);
    let err = Runtime::builder().sqlite(&db).build().unwrap_err();
    assert!(
        matches!(err, BuildError::Open(OpenError::Locked { .. })),
        "{err:?}"
    );
    assert!(err.to_string().contains("in use"), "{err}");
    first.shutdown().await;
    Runtime::builder().sqlite(&db).build().unwrap();
}

/// A full disk (a size cap on the file, which SQLite reports as `SQLITE_FULL`) stops
/// checkpoints without failing the execution; it goes on when there is room again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_pauses_executions_until_there_is_room() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("wf.sqlite")).unwrap();
    let rt = Runtime::builder()
        .register(fan_out)
        .dependency(Svc::new(true).0)
        .store(store.clone())
        .build()
        .unwrap();
    let exec = rt.start(fan_out, jobs(3, 40)).await.unwrap();
    let id = exec.id().clone();
    until(&rt, &id, |r| matches!(r.waiting, Some(Wait::Children(_)))).await;
    store.set_max_size(Some(1)).await.unwrap();
    let failed = store.stats().failed_transactions;
    until_true("checkpoints failing", || {
        store.stats().failed_transactions >= failed + 3
    })
    .await;
    let record = rt.record(&id).await.unwrap();
    assert_eq!(
        record.status,
        Status::Running,
        "not failed by the full disk"
    );
    store.set_max_size(None).await.unwrap();
    let done = exec.result().await.unwrap();
    assert_eq!(done.len(), 3);
    assert!(done.iter().all(|d| d.polls == 40), "{done:?}");
    let tree = rt.tree(&id).await.unwrap();
    assert!(tree.children.iter().all(|c| c.status == Status::Succeeded));
    for child in &tree.children {
        let history = rt.history(&child.id).await.unwrap();
        assert_eq!(
            kinds(&history, "PollAttempt"),
            40,
            "no attempt lost or doubled"
        );
        assert!(history
            .iter()
            .all(|e| !matches!(e.kind, EventKind::ExecutionFaulted { .. })));
    }
    rt.shutdown().await;
}

/// Turns a file of this version into the one the release with schema version 1 would
/// have written for the same executions: its tables (as released), rows keyed by text id,
/// events with their time, type and node beside the JSON.
const DOWNGRADE_TO_VERSION_1: &str = "
    DROP INDEX executions_call_site;
    DROP INDEX executions_unfinished;
    DROP INDEX events_by_execution;
    ALTER TABLE events RENAME TO events_v2;
    ALTER TABLE executions RENAME TO executions_v2;
    CREATE TABLE executions (
        id          TEXT PRIMARY KEY NOT NULL,
        workflow    TEXT NOT NULL,
        fingerprint INTEGER NOT NULL,
        parent_id   TEXT REFERENCES executions (id),
        call_node   TEXT,
        call_batch  INTEGER,
        call_index  INTEGER,
        status      TEXT NOT NULL,
        input       TEXT NOT NULL,
        state       BLOB NOT NULL,
        waiting     TEXT,
        batches     INTEGER NOT NULL DEFAULT 0,
        outcome     TEXT,
        wake_at     INTEGER,
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL
    );
    CREATE UNIQUE INDEX executions_call_site
        ON executions (parent_id, call_batch, call_index);
    CREATE INDEX executions_by_status ON executions (status, workflow);
    CREATE INDEX executions_by_workflow ON executions (workflow, status);
    CREATE INDEX executions_by_wake_at ON executions (wake_at) WHERE wake_at IS NOT NULL;
    CREATE TABLE events (
        execution_id TEXT NOT NULL REFERENCES executions (id),
        seq          INTEGER NOT NULL,
        at           INTEGER NOT NULL,
        type         TEXT NOT NULL,
        state        TEXT,
        body         TEXT NOT NULL,
        PRIMARY KEY (execution_id, seq)
    ) WITHOUT ROWID;
    INSERT INTO executions
    SELECT e.id, e.workflow, e.fingerprint, p.id, e.call_node, e.call_batch, e.call_index,
        e.status, e.input, e.state, e.waiting, e.batches, e.outcome, e.wake_at, e.created_at,
        e.updated_at
    FROM executions_v2 e LEFT JOIN executions_v2 p ON p.key = e.parent
    ORDER BY e.key;
    INSERT INTO events
    SELECT x.id, v.seq, json_extract(v.body, '$.at'), json_extract(v.body, '$.kind.type'),
        json_extract(v.body, '$.state'), v.body
    FROM events_v2 v JOIN executions_v2 x ON x.key = v.execution;
    DROP TABLE events_v2;
    DROP TABLE executions_v2;
    PRAGMA user_version = 1;
";

/// Everything a runtime reads of the file: listings, records, histories, trees.
async fn everything(rt: &Runtime) -> Vec<String> {
    let all = rt.list(ExecutionFilter::new()).await.unwrap();
    let top = rt.list(ExecutionFilter::new().top_level()).await.unwrap();
    let running = rt
        .list(ExecutionFilter::new().status(Status::Running))
        .await
        .unwrap();
    let mut seen = vec![
        format!("{all:?}"),
        format!("{top:?}"),
        format!("{running:?}"),
    ];
    for summary in &all.executions {
        let id = &summary.id;
        seen.push(format!("{:?}", rt.record(id).await.unwrap()));
        seen.push(format!("{:?}", rt.history(id).await.unwrap()));
        seen.push(format!("{:?}", rt.tree(id).await.unwrap()));
    }
    seen
}

/// A file written by the release with schema version 1, with a parent waiting on its
/// children mid-poll, is upgraded when it is opened: the runtime reads the same
/// executions, and recovery resumes them as it would have.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_file_is_upgraded_and_its_executions_resume() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wf.sqlite");
    let (exec, reopened) = stopped_mid_fan_out(&db).await;
    let id = exec.id().clone();
    drop(exec);
    // Read by a runtime that does not recover, so that nothing changes.
    let rt = runtime(&db, reopened.reopened());
    let before = everything(&rt).await;
    assert_eq!(
        before.len(),
        3 + 3 * 3,
        "the parent and its two running children"
    );
    rt.shutdown().await;

    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(DOWNGRADE_TO_VERSION_1).unwrap();
    drop(conn);

    let rt = runtime(&db, reopened);
    assert_eq!(everything(&rt).await, before);
    let report = rt.recover().await.unwrap();
    assert_eq!(report.resumed.len(), 3, "{report}");
    assert_eq!(report.waiting_on_children, 1, "{report}");
    let Outcome::Succeeded(value) = rt.wait(&id).await.unwrap() else {
        panic!("the fan-out did not succeed");
    };
    let done: Vec<Done> = value.decode().unwrap();
    assert_eq!(done.len(), 4);
    let history = rt.history(&id).await.unwrap();
    assert_eq!(kinds(&history, "ChildStarted"), 4, "no child twice");
    assert_eq!(kinds(&history, "ChildSucceeded"), 4);
    rt.shutdown().await;

    let conn = rusqlite::Connection::open(&db).unwrap();
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, 5, "upgraded to the current schema");
}
