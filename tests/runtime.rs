//! End-to-end behaviour of generated workflows on the runtime, under virtual time
//! (`start_paused`): every wait is real tokio time, auto-advanced when the runtime idles.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use workflow::prelude::*;
use workflow::{BuildError, EventKind, ExecutionId, PollOutcome, StartError, Status};

// ---------------------------------------------------------------------------------------
// A stub job service: jobs become ready after a number of status calls; some calls fail.

#[derive(Default)]
struct Jobs {
    next: AtomicU32,
    /// job id → (status calls so far, calls needed, calls that fail first)
    jobs: Mutex<HashMap<u32, (u32, u32, u32)>>,
    in_flight: AtomicU32,
    peak: AtomicU32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Spec {
    ready_after: u32,
    fail_first: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct JobStatus {
    id: u32,
    done: bool,
}

#[derive(WorkflowError, Clone, Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
enum JobError {
    #[error("service error: {0}")]
    Service(String),
    #[error(transparent)]
    #[workflow_error(transparent)]
    Poll(#[from] PollError),
    #[error("rejected {0}")]
    Rejected(u32),
}

impl Jobs {
    async fn start(&self, spec: &Spec) -> Result<u32, String> {
        let id = self.next.fetch_add(1, Ordering::SeqCst);
        self.jobs
            .lock()
            .unwrap()
            .insert(id, (0, spec.ready_after, spec.fail_first));
        Ok(id)
    }

    async fn status(&self, id: &u32) -> Result<JobStatus, String> {
        let mut jobs = self.jobs.lock().unwrap();
        let (calls, needed, fail_first) = jobs.get_mut(id).ok_or("unknown job")?;
        *calls += 1;
        if *calls <= *fail_first {
            return Err(format!("status of {id} unavailable"));
        }
        Ok(JobStatus {
            id: *id,
            done: *calls >= *needed,
        })
    }

    async fn enter(&self) {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
    }

    async fn leave(&self) {
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl From<String> for JobError {
    fn from(e: String) -> Self {
        JobError::Service(e)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Report {
    job: u32,
    polls: u32,
    elapsed_ms: u128,
}

// ---------------------------------------------------------------------------------------
// Workflows.

#[workflow(name = "PollJob")]
async fn poll_job(jobs: &Jobs, spec: Spec) -> Result<Report, JobError> {
    let job: u32 = jobs.start(&spec).await?;
    let status: Polled<JobStatus> = poll_until!(
        jobs.status(&job),
        |s| s.done,
        every = 10.secs(),
        timeout = 1.mins(),
        max_errors = 2,
    )?;
    Ok(Report {
        job: status.value.id,
        polls: status.attempts,
        elapsed_ms: status.elapsed.as_millis(),
    })
}

#[workflow]
async fn fine_poll(jobs: &Jobs, spec: Spec) -> Result<Report, JobError> {
    let job: u32 = jobs.start(&spec).await?;
    let status: Polled<JobStatus> = poll_until!(
        jobs.status(&job),
        |s| s.done,
        every = 1.millis(),
        max_attempts = 100
    )?;
    Ok(Report {
        job,
        polls: status.attempts,
        elapsed_ms: status.elapsed.as_millis(),
    })
}

/// Fails with its own error when `reject` is set, else sleeps `ms` and echoes `n`.
#[workflow]
async fn echo(jobs: &Jobs, n: u32, ms: u64, reject: bool) -> Result<u32, JobError> {
    jobs.enter().await;
    sleep!(ms.millis());
    jobs.leave().await;
    if reject {
        return Err(JobError::Rejected(n));
    }
    Ok(n)
}

#[derive(WorkflowError, Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
enum MainError {
    #[error(transparent)]
    #[workflow_error(transparent)]
    Child(#[from] NestedError<JobError>),
}

#[workflow]
async fn sequential(first: Spec, second: Spec) -> Result<(Report, Report), MainError> {
    let a: Report = call_nested!(poll_job(first))?;
    let b: Report = call_nested!(poll_job(second))?;
    Ok((a, b))
}

#[workflow]
async fn fan_out(items: Vec<(u32, u64, bool)>) -> Result<Vec<u32>, MainError> {
    let out: Vec<u32> =
        call_nested!(for (n, ms, reject) in items => echo(n, ms, reject), max_concurrency = 3)?;
    Ok(out)
}

#[workflow]
async fn pair(spec: Spec, n: u32) -> Result<(Report, u32), MainError> {
    let both: (Report, u32) = call_nested!(parallel(poll_job(spec), echo(n, 5, false)))?;
    Ok(both)
}

#[workflow]
async fn race(slow_ms: u64, fail_ms: u64) -> Result<(u32, u32, u32), MainError> {
    let all: (u32, u32, u32) = call_nested!(parallel(
        echo(1, slow_ms, false),
        echo(2, fail_ms, true),
        echo(3, slow_ms, false)
    ))?;
    Ok(all)
}

fn spec(ready_after: u32, fail_first: u32) -> Spec {
    Spec {
        ready_after,
        fail_first,
    }
}

fn runtime() -> Runtime {
    Runtime::builder()
        .register(sequential)
        .register(fan_out)
        .register(pair)
        .register(race)
        .register(fine_poll)
        .register(peak)
        .dependency(Jobs::default())
        .build()
        .expect("every dependency is provided")
}

async fn kinds(rt: &Runtime, id: &ExecutionId) -> Vec<String> {
    rt.history(id)
        .await
        .unwrap()
        .iter()
        .map(|e| match &e.state {
            Some(s) => format!("{} {s}", e.kind.name()),
            None => e.kind.name().to_owned(),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Tests.

#[tokio::test(start_paused = true)]
async fn success_path_checkpoints_every_yield_and_reports_polls() {
    let rt = runtime();
    let exec = rt.start(poll_job, spec(3, 0)).await.unwrap();
    let id = exec.id().clone();
    let report = exec.result().await.unwrap();
    assert_eq!(report.polls, 3);
    assert_eq!(
        report.elapsed_ms, 30_000,
        "three waits of 10 s on virtual time"
    );
    assert_eq!(
        kinds(&rt, &id).await,
        [
            "ExecutionStarted",
            "TaskScheduled svc.start",
            "TaskSucceeded svc.start",
            "WaitStarted poll svc.status",
            "WaitEnded poll svc.status",
            "PollAttempt poll svc.status",
            "WaitStarted poll svc.status",
            "WaitEnded poll svc.status",
            "PollAttempt poll svc.status",
            "WaitStarted poll svc.status",
            "WaitEnded poll svc.status",
            "PollAttempt poll svc.status",
            "ExecutionSucceeded",
        ]
        .map(|s| s.replace("svc.", "jobs."))
    );
    let record = rt.record(&id).await.unwrap();
    assert_eq!(record.status, Status::Succeeded);
    let graph = <poll_job as Workflow>::graph();
    assert_eq!(
        graph.names().collect::<Vec<_>>(),
        ["jobs.start", "poll jobs.status", "Succeed", "Fail"]
    );
}

#[tokio::test(start_paused = true)]
async fn poll_timeout_becomes_the_workflows_error() {
    let rt = runtime();
    let err = rt
        .start(poll_job, spec(1_000, 0))
        .await
        .unwrap()
        .result()
        .await
        .unwrap_err();
    // every = 10 s, timeout = 1 min: attempts at 10..=60 s, none may start past the deadline.
    match err {
        RunError::Failed(JobError::Poll(PollError::TimedOut {
            attempts,
            elapsed,
            last_error,
        })) => {
            assert_eq!(attempts, 6);
            assert_eq!(elapsed, Duration::from_secs(60));
            assert_eq!(last_error, None);
        }
        other => panic!("expected a poll timeout, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn too_many_poll_errors_fail_with_the_last_error() {
    let rt = runtime();
    let exec = rt.start(poll_job, spec(10, 5)).await.unwrap();
    let id = exec.id().clone();
    let err = exec.result().await.unwrap_err();
    assert_eq!(
        err,
        RunError::Failed(JobError::Poll(PollError::TooManyErrors {
            attempts: 3,
            errors: 3,
            elapsed: Duration::from_secs(30),
            last_error: "status of 0 unavailable".into(),
        }))
    );
    let history = rt.history(&id).await.unwrap();
    let errors = history
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                EventKind::PollAttempt {
                    outcome: PollOutcome::Error { .. },
                    ..
                }
            )
        })
        .count();
    assert_eq!(errors, 3);
}

#[tokio::test(start_paused = true)]
async fn poll_errors_below_the_limit_are_retried() {
    let rt = runtime();
    let report = rt
        .start(poll_job, spec(4, 2))
        .await
        .unwrap()
        .result()
        .await
        .unwrap();
    assert_eq!(report.polls, 4);
}

#[tokio::test(start_paused = true)]
async fn millisecond_intervals_work() {
    let rt = runtime();
    let report = rt
        .start(fine_poll, spec(25, 0))
        .await
        .unwrap()
        .result()
        .await
        .unwrap();
    assert_eq!(report.polls, 25);
    assert_eq!(report.elapsed_ms, 25);
}

#[tokio::test(start_paused = true)]
async fn sequential_children_are_linked_to_their_parent() {
    let rt = runtime();
    let exec = rt
        .start(sequential, (spec(1, 0), spec(2, 0)))
        .await
        .unwrap();
    let id = exec.id().clone();
    let (a, b) = exec.result().await.unwrap();
    assert_eq!((a.polls, b.polls), (1, 2));
    let tree = rt.tree(&id).await.unwrap();
    assert_eq!(tree.children.len(), 2);
    for child in &tree.children {
        assert_eq!(child.workflow, "PollJob");
        assert_eq!(child.status, Status::Succeeded);
        assert!(child.id.as_str().starts_with(id.as_str()));
        let record = rt.record(&child.id).await.unwrap();
        assert_eq!(record.parent.as_ref(), Some(&id));
    }
    let kinds = kinds(&rt, &id).await;
    assert_eq!(
        kinds,
        [
            "ExecutionStarted",
            "ChildStarted poll_job",
            "ChildSucceeded poll_job",
            "ChildStarted poll_job #2",
            "ChildSucceeded poll_job #2",
            "ExecutionSucceeded",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn child_failure_propagates_as_the_typed_error() {
    let rt = runtime();
    let exec = rt
        .start(sequential, (spec(1, 0), spec(1, 9)))
        .await
        .unwrap();
    let id = exec.id().clone();
    let err = exec.result().await.unwrap_err();
    let RunError::Failed(MainError::Child(NestedError::Failed { child, error })) = err else {
        panic!("expected the child's error, got {err:?}");
    };
    assert!(matches!(
        error,
        JobError::Poll(PollError::TooManyErrors { .. })
    ));
    assert_eq!(rt.record(&child).await.unwrap().status, Status::Failed);
    assert_eq!(rt.record(&id).await.unwrap().status, Status::Failed);
}

#[tokio::test(start_paused = true)]
async fn map_returns_results_in_input_order_and_bounds_concurrency() {
    let rt = runtime();
    // Later items finish first; ten items, at most three at once.
    let items: Vec<(u32, u64, bool)> = (0..10)
        .map(|n| (n, 100 - u64::from(n) * 10, false))
        .collect();
    let out = rt
        .start(fan_out, items)
        .await
        .unwrap()
        .result()
        .await
        .unwrap();
    assert_eq!(out, (0..10).collect::<Vec<_>>());
    let jobs = dependency_probe(&rt).await;
    assert_eq!(jobs, 3, "peak of children in flight");
}

/// The peak concurrency seen by the shared `Jobs` dependency, read through a workflow.
async fn dependency_probe(rt: &Runtime) -> u32 {
    rt.start(peak, ()).await.unwrap().result().await.unwrap()
}

#[workflow]
async fn peak(jobs: &Jobs) -> u32 {
    jobs.peak.load(Ordering::SeqCst)
}

#[tokio::test(start_paused = true)]
async fn parallel_fixed_set_returns_a_typed_tuple() {
    let rt = Runtime::builder()
        .register(pair)
        .dependency(Jobs::default())
        .build()
        .unwrap();
    let (report, n) = rt
        .start(pair, (spec(2, 0), 7))
        .await
        .unwrap()
        .result()
        .await
        .unwrap();
    assert_eq!((report.polls, n), (2, 7));
}

#[tokio::test(start_paused = true)]
async fn parallel_fails_fast_and_cancels_siblings() {
    let rt = runtime();
    let exec = rt.start(race, (60_000, 10)).await.unwrap();
    let id = exec.id().clone();
    let err = exec.result().await.unwrap_err();
    let RunError::Failed(MainError::Child(NestedError::Failed { child, error })) = err else {
        panic!("expected the failing child's error, got {err:?}");
    };
    assert_eq!(error, JobError::Rejected(2));
    let tree = rt.tree(&id).await.unwrap();
    let statuses: Vec<Status> = tree.children.iter().map(|c| c.status).collect();
    assert_eq!(
        statuses,
        [Status::Cancelled, Status::Failed, Status::Cancelled]
    );
    assert_eq!(tree.children[1].id, child);
    let kinds = kinds(&rt, &id).await;
    assert_eq!(
        kinds
            .iter()
            .filter(|k| k.starts_with("ChildCancelled"))
            .count(),
        2
    );
    // Cancelled long before the slow siblings' minute was up.
    let took = tree.updated_at.since(tree.created_at);
    assert!(took < Duration::from_secs(1), "{took:?}");
}

#[tokio::test(start_paused = true)]
async fn map_fails_fast_and_starts_no_more_children() {
    let rt = runtime();
    let mut items: Vec<(u32, u64, bool)> = (0..10).map(|n| (n, 1_000, false)).collect();
    items[1] = (1, 10, true);
    let exec = rt.start(fan_out, items).await.unwrap();
    let id = exec.id().clone();
    let err = exec.result().await.unwrap_err();
    assert!(matches!(
        err,
        RunError::Failed(MainError::Child(NestedError::Failed {
            error: JobError::Rejected(1),
            ..
        }))
    ));
    let tree = rt.tree(&id).await.unwrap();
    // Three were running when item 1 failed; the other seven never started.
    assert_eq!(tree.children.len(), 3);
}

#[tokio::test(start_paused = true)]
async fn cancelling_a_parent_cancels_its_children() {
    let rt = runtime();
    let exec = rt
        .start(fan_out, vec![(1, 60_000, false), (2, 60_000, false)])
        .await
        .unwrap();
    let id = exec.id().clone();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(rt.cancel(&id).await.unwrap());
    // Over when `cancel` returns: the children have ended too.
    let tree = rt.tree(&id).await.unwrap();
    assert_eq!(tree.status, Status::Cancelled);
    assert_eq!(tree.children.len(), 2);
    assert!(tree.children.iter().all(|c| c.status == Status::Cancelled));
    assert!(!rt.cancel(&id).await.unwrap(), "already ended");
    assert_eq!(exec.result().await.unwrap_err(), RunError::Cancelled);
}

#[tokio::test(start_paused = true)]
async fn start_by_name_rejects_input_of_the_wrong_shape() {
    let rt = runtime();
    let err = rt
        .start_json("PollJob", json!({"ready_after": "soon"}))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StartError::InvalidInput {
                workflow: "PollJob",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("invalid type"), "{err}");
    let err = rt
        .start_json("NoSuchWorkflow", json!(null))
        .await
        .unwrap_err();
    assert!(matches!(err, StartError::NotRegistered { .. }));

    let id = rt
        .start_json("PollJob", json!({"ready_after": 1, "fail_first": 0}))
        .await
        .unwrap();
    let outcome = rt.wait(&id).await.unwrap();
    assert!(
        matches!(outcome, workflow::Outcome::Succeeded(_)),
        "{outcome:?}"
    );
}

#[test]
fn a_missing_dependency_is_a_build_error() {
    let err = Runtime::builder().register(sequential).build().unwrap_err();
    match err {
        BuildError::MissingDependency {
            workflow,
            type_name,
        } => {
            assert_eq!(workflow, "PollJob");
            assert!(type_name.ends_with("Jobs"), "{type_name}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn starting_an_unregistered_workflow_is_refused() {
    let rt = Runtime::builder().build().unwrap();
    let err = rt.start(peak, ()).await.unwrap_err();
    assert!(matches!(err, StartError::NotRegistered { .. }));
}

/// Whether a task spawned beside an execution has run yet.
#[derive(Default)]
struct Probe {
    ran: AtomicBool,
}

impl Probe {
    async fn ran(&self) -> bool {
        self.ran.load(Ordering::SeqCst)
    }
}

/// A loop of tasks that answer at once, on a store that answers at once: nothing it
/// awaits ever waits. Returns the iteration that first saw the probe run (0 if none did).
#[workflow]
async fn busy(probe: &Probe, n: u32) -> u32 {
    let mut i: u32 = 0;
    while i < n {
        let ran: bool = probe.ran().await;
        i += 1;
        if ran {
            return i;
        }
    }
    0
}

#[tokio::test]
async fn an_execution_that_never_waits_still_lets_other_tasks_run() {
    // One thread: if the driver never yielded, the probe would run only after the
    // execution's 10,000 transitions.
    let probe = Arc::new(Probe::default());
    let rt = Runtime::builder()
        .register(busy)
        .dependency_arc(Arc::clone(&probe))
        .build()
        .unwrap();
    let execution = rt.start(busy, 10_000).await.unwrap();
    let spawned = Arc::clone(&probe);
    tokio::spawn(async move { spawned.ran.store(true, Ordering::SeqCst) });
    let seen_at = execution.result().await.unwrap();
    assert!(
        (1..1_000).contains(&seen_at),
        "the probe ran at iteration {seen_at} of 10,000 (0: only after the end)"
    );
}

// ---------------------------------------------------------------------------------------
// An `async` block awaited as a statement is one task: its own `.await`s are not yield
// points, and its value is checkpointed once, when it ends.

#[workflow(name = "AsyncBlock")]
async fn async_block(jobs: &Jobs, specs: Vec<Spec>) -> Result<Vec<u32>, JobError> {
    let ids: Vec<u32> = async {
        let mut ids = Vec::new();
        for s in &specs {
            ids.push(jobs.start(s).await?);
        }
        Ok::<_, String>(ids)
    }
    .await?;
    Ok(ids)
}

#[tokio::test(start_paused = true)]
async fn an_async_block_awaited_as_a_statement_is_one_task() {
    let rt = Runtime::builder()
        .register(async_block)
        .dependency(Jobs::default())
        .build()
        .unwrap();
    let exec = rt
        .start(async_block, vec![spec(1, 0), spec(1, 0), spec(1, 0)])
        .await
        .unwrap();
    let id = exec.id().clone();
    assert_eq!(exec.result().await.unwrap(), [0, 1, 2]);
    let tasks = kinds(&rt, &id)
        .await
        .into_iter()
        .filter(|k| k.starts_with("TaskSucceeded"))
        .count();
    assert_eq!(tasks, 1, "three calls inside one async block: one task");
}
