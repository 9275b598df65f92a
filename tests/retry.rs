//! Retry policies and timeouts, natively: the exact delays chosen, jitter bounds, error
//! names, non-retryable errors, timeouts that cancel a slow call, the workflow's default
//! policy, polls, and the attempt count surviving a restart on a real SQLite file.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use workflow::prelude::*;
use workflow::store::Wait;
use workflow::{EventKind, Status};

/// A flaky service: `fail_first` calls fail with `error`, the later ones answer. Each
/// call takes `slow` (of tokio time) first, and counts.
struct Flaky {
    calls: AtomicU32,
    fail_first: u32,
    error: SvcError,
    slow: Mutex<Vec<Duration>>,
    /// Further calls that fail (numbers from 1).
    fail_calls: Vec<u32>,
}

impl Flaky {
    fn new(fail_first: u32, error: SvcError) -> Flaky {
        Flaky {
            calls: AtomicU32::new(0),
            fail_first,
            error,
            slow: Mutex::new(Vec::new()),
            fail_calls: Vec::new(),
        }
    }

    /// Call number `n` (from 1) fails too.
    fn failing(mut self, n: u32) -> Flaky {
        self.fail_calls.push(n);
        self
    }

    /// The calls take these durations, in order (then none).
    fn slow(self, durations: &[Duration]) -> Flaky {
        *self.slow.lock().unwrap() = durations.iter().rev().copied().collect();
        self
    }

    async fn fetch(&self, what: &str) -> Result<String, SvcError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let pause = self.slow.lock().unwrap().pop();
        if let Some(pause) = pause {
            tokio::time::sleep(pause).await;
        }
        if n <= self.fail_first || self.fail_calls.contains(&n) {
            Err(self.error.clone())
        } else {
            Ok(format!("{what} #{n}"))
        }
    }

    fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, thiserror::Error, WorkflowError)]
enum SvcError {
    #[error("unavailable")]
    Unavailable,
    #[error("bad request")]
    #[workflow_error(non_retryable)]
    BadRequest,
    #[error("throttled")]
    #[workflow_error(name = "Svc.Throttled")]
    Throttled,
    #[error("timed out")]
    #[workflow_error(transparent)]
    Timeout(#[from] TaskTimeout),
    #[error(transparent)]
    #[workflow_error(transparent)]
    Poll(#[from] PollError),
}

#[workflow]
async fn fetch_with_backoff(svc: &Flaky, what: String) -> Result<String, SvcError> {
    #[retry(on = ["Unavailable", "Svc.Throttled"], interval = 1.secs(), max_attempts = 3, backoff = 2.0)]
    let got: String = svc.fetch(&what).await?;
    Ok(got)
}

#[workflow]
async fn fetch_with_jitter(svc: &Flaky, what: String) -> Result<String, SvcError> {
    #[retry(interval = 10.secs(), max_attempts = 5, backoff = 3, max_delay = 60.secs(), jitter = full)]
    let got: String = svc.fetch(&what).await?;
    Ok(got)
}

#[workflow]
async fn fetch_with_timeout(svc: &Flaky, what: String) -> Result<String, SvcError> {
    #[retry(on = ["Workflow.Timeout"], interval = 1.secs(), max_attempts = 2)]
    #[timeout(5.secs())]
    let got: String = svc.fetch(&what).await?;
    Ok(got)
}

/// A `match` on the call's result catches the error once retries are exhausted.
#[workflow]
async fn fetch_or_default(svc: &Flaky, what: String) -> String {
    #[retry(max_attempts = 1, interval = 2.secs())]
    let got: Result<String, SvcError> = svc.fetch(&what).await;
    match got {
        Ok(v) => v,
        Err(e) => format!("default after {e}"),
    }
}

#[workflow(retry(on = ["Unavailable"], interval = 1.secs(), max_attempts = 1))]
async fn with_default_policy(svc: &Flaky, what: String) -> Result<(String, String), SvcError> {
    let a: String = svc.fetch(&what).await?;
    #[retry(none)]
    let b: String = svc.fetch(&what).await?;
    Ok((a, b))
}

#[workflow]
async fn poll_flaky(svc: &Flaky, what: String) -> Result<String, SvcError> {
    #[retry(on = ["Unavailable"], interval = 100.millis(), max_attempts = 2, backoff = 1)]
    let got: Polled<String> = poll_until!(
        svc.fetch(&what),
        |s| s.ends_with("#4"),
        every = 1.secs(),
        max_attempts = 10,
    )?;
    Ok(got.value)
}

/// A runtime serving `w`, with `svc` kept by the test to count its calls.
fn shared(w: impl Workflow, svc: &Arc<Flaky>) -> Runtime {
    Runtime::builder()
        .register(w)
        .dependency_arc(Arc::clone(svc))
        .build()
        .unwrap()
}

fn runtime(w: impl Workflow, svc: Flaky) -> Runtime {
    Runtime::builder()
        .register(w)
        .dependency(svc)
        .build()
        .unwrap()
}

async fn run<W: Workflow<Input = String>>(
    w: W,
    svc: Flaky,
) -> (
    Result<W::Output, RunError<W::Error>>,
    Vec<workflow::Event>,
    Duration,
) {
    let rt = runtime(w, svc);
    let t0 = tokio::time::Instant::now();
    let exec = rt.start(w, "job".to_owned()).await.unwrap();
    let id = exec.id().clone();
    let result = exec.result().await;
    let took = t0.elapsed();
    let history = rt.history(&id).await.unwrap();
    (result, history, took)
}

/// (attempt, error, delay) of each `RetryScheduled`.
fn retries(history: &[workflow::Event]) -> Vec<(u32, String, Duration)> {
    history
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::RetryScheduled {
                attempt,
                error,
                delay,
            } => Some((*attempt, error.clone(), *delay)),
            _ => None,
        })
        .collect()
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[tokio::test(start_paused = true)]
async fn a_task_failing_twice_is_retried_with_exact_backoff_delays() {
    let svc = Flaky::new(2, SvcError::Unavailable);
    let (result, history, took) = run(fetch_with_backoff, svc).await;
    assert_eq!(result.unwrap(), "job #3");
    assert_eq!(
        retries(&history),
        [
            (1, "Unavailable".to_owned(), secs(1)),
            (2, "Unavailable".to_owned(), secs(2)),
        ]
    );
    assert_eq!(
        took,
        secs(3),
        "the retries waited 1 s then 2 s of virtual time"
    );
    let scheduled = history
        .iter()
        .filter(|e| matches!(e.kind, EventKind::TaskScheduled))
        .count();
    assert_eq!(scheduled, 3, "one TaskScheduled per attempt");
}

#[tokio::test(start_paused = true)]
async fn exhausted_retries_give_the_error_to_the_code() {
    let svc = Flaky::new(10, SvcError::Throttled);
    let (result, history, _) = run(fetch_with_backoff, svc).await;
    assert_eq!(result.unwrap_err(), RunError::Failed(SvcError::Throttled));
    let delays: Vec<Duration> = retries(&history).into_iter().map(|r| r.2).collect();
    assert_eq!(delays, [secs(1), secs(2), secs(4)]);
    // The history names the errors.
    let names: Vec<&str> = history
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::TaskFailed { name, .. } | EventKind::ExecutionFailed { name, .. } => {
                name.as_deref()
            }
            _ => None,
        })
        .collect();
    assert_eq!(names, ["Svc.Throttled", "Svc.Throttled"]);
}

#[tokio::test(start_paused = true)]
async fn an_error_the_policy_does_not_name_or_that_is_non_retryable_is_not_retried() {
    for error in [
        SvcError::BadRequest,
        SvcError::Timeout(TaskTimeout { timeout: secs(1) }),
    ] {
        let svc = Arc::new(Flaky::new(1, error.clone()));
        let rt = shared(fetch_with_backoff, &svc);
        let exec = rt.start(fetch_with_backoff, "job".into()).await.unwrap();
        let id = exec.id().clone();
        assert_eq!(exec.result().await.unwrap_err(), RunError::Failed(error));
        assert_eq!(svc.calls(), 1);
        assert!(retries(&rt.history(&id).await.unwrap()).is_empty());
    }
}

#[tokio::test(start_paused = true)]
async fn full_jitter_keeps_each_delay_between_zero_and_the_backoff() {
    let svc = Flaky::new(5, SvcError::Unavailable);
    let (result, history, _) = run(fetch_with_jitter, svc).await;
    assert_eq!(result.unwrap(), "job #6");
    let delays: Vec<Duration> = retries(&history).into_iter().map(|r| r.2).collect();
    // 10 s × 3^(n-1), capped at 60 s: 10, 30, 60, 60, 60.
    let bounds = [10, 30, 60, 60, 60];
    assert_eq!(delays.len(), 5);
    for (d, max) in delays.iter().zip(bounds) {
        assert!(*d <= secs(max), "{d:?} > {max} s");
    }
    // Five draws are not all the full delay.
    assert!(delays.iter().zip(bounds).any(|(d, max)| *d < secs(max)));
}

#[tokio::test(start_paused = true)]
async fn a_slow_call_is_cancelled_at_its_timeout_and_retried() {
    // The first call would take a minute, the second 10 s: both are cut at 5 s; the
    // third answers at once.
    let svc = Flaky::new(0, SvcError::Unavailable).slow(&[secs(60), secs(10)]);
    let (result, history, took) = run(fetch_with_timeout, svc).await;
    assert_eq!(result.unwrap(), "job #3");
    let r = retries(&history);
    assert_eq!(r.len(), 2);
    assert!(r.iter().all(|(_, e, _)| e == "Workflow.Timeout"));
    // 5 s + 1 s + 5 s + 1 s (backoff 2: the second delay is 2 s) …
    assert_eq!(took, secs(5 + 1 + 5 + 2));
}

#[tokio::test(start_paused = true)]
async fn a_timeout_that_is_not_retried_fails_with_the_timeout_error() {
    let svc = Flaky::new(0, SvcError::Unavailable).slow(&[secs(60), secs(60), secs(60)]);
    let (result, _, took) = run(fetch_with_timeout, svc).await;
    assert_eq!(
        result.unwrap_err(),
        RunError::Failed(SvcError::Timeout(TaskTimeout { timeout: secs(5) }))
    );
    assert_eq!(took, secs(5 + 1 + 5 + 2 + 5));
}

#[tokio::test(start_paused = true)]
async fn a_match_catches_the_error_after_the_retries() {
    let svc = Flaky::new(5, SvcError::Unavailable);
    let (result, history, _) = run(fetch_or_default, svc).await;
    assert_eq!(result.unwrap(), "default after unavailable");
    assert_eq!(retries(&history).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_workflow_default_applies_unless_a_statement_opts_out() {
    let svc = Arc::new(Flaky::new(1, SvcError::Unavailable));
    let rt = shared(with_default_policy, &svc);
    let result = rt
        .start(with_default_policy, "a".into())
        .await
        .unwrap()
        .result()
        .await;
    assert_eq!(result.unwrap(), ("a #2".to_owned(), "a #3".to_owned()));

    // The second call opted out: its one failure is not retried.
    let svc = Arc::new(Flaky::new(0, SvcError::Unavailable).failing(2));
    let rt = shared(with_default_policy, &svc);
    let result = rt
        .start(with_default_policy, "b".into())
        .await
        .unwrap()
        .result()
        .await;
    assert_eq!(result.unwrap_err(), RunError::Failed(SvcError::Unavailable));
    assert_eq!(svc.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_poll_retries_a_failed_attempt_before_counting_it() {
    // Calls 1 and 2 fail (retried, 100 ms each), 3 is not ready, 4 is.
    let svc = Flaky::new(2, SvcError::Unavailable);
    let (result, history, took) = run(poll_flaky, svc).await;
    assert_eq!(result.unwrap(), "job #4");
    assert_eq!(retries(&history).len(), 2);
    let errors = history
        .iter()
        .filter(|e| {
            matches!(
                &e.kind,
                EventKind::PollAttempt {
                    outcome: workflow::PollOutcome::Error { .. },
                    ..
                }
            )
        })
        .count();
    assert_eq!(errors, 0, "retried errors do not count as failed attempts");
    assert_eq!(took, Duration::from_millis(1000 + 200 + 1000));
}

/// Starts `w` on the SQLite file `db`, stops the runtime once the execution waits as
/// `stop_at` says (what a crash then leaves), and recovers it in a new runtime. Also
/// returns the service's call count at the stop.
async fn restarted<W: Workflow<Input = String>>(
    w: W,
    svc: &Arc<Flaky>,
    db: &std::path::Path,
    stop_at: impl Fn(&Option<Wait>) -> bool,
) -> (Runtime, workflow::ExecutionId, u32) {
    let build = || {
        Runtime::builder()
            .register(w)
            .dependency_arc(Arc::clone(svc))
            .sqlite(db)
            .build()
            .unwrap()
    };
    let rt = build();
    let id = rt.start(w, "job".into()).await.unwrap().id().clone();
    for _ in 0..400 {
        if stop_at(&rt.record(&id).await.unwrap().waiting) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let waiting = rt.record(&id).await.unwrap().waiting;
    assert!(stop_at(&waiting), "never reached: {waiting:?}");
    rt.shutdown().await;
    // Counted before the new runtime can fire a timer that fell due meanwhile.
    let calls = svc.calls();
    let rt = build();
    rt.recover().await.unwrap();
    (rt, id, calls)
}

/// A restart during a backoff resumes it: the attempt count goes on from where it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_during_a_backoff_keeps_the_attempt_count() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("retry.sqlite");
    #[workflow]
    async fn slow_backoff(svc: &Flaky, what: String) -> Result<String, SvcError> {
        #[retry(interval = 1.secs(), max_attempts = 3, backoff = 1)]
        let got: String = svc.fetch(&what).await?;
        Ok(got)
    }
    let svc = Arc::new(Flaky::new(2, SvcError::Unavailable));
    let (rt, id, calls) = restarted(slow_backoff, &svc, &db, |w| {
        matches!(w, Some(Wait::Retry { attempt: 1, .. }))
    })
    .await;
    assert_eq!(calls, 1, "stopped during the first backoff");
    let outcome = rt.wait(&id).await.unwrap();
    assert!(
        matches!(outcome, workflow::Outcome::Succeeded(_)),
        "{outcome:?}"
    );
    assert_eq!(svc.calls(), 3);
    let attempts: Vec<u32> = retries(&rt.history(&id).await.unwrap())
        .into_iter()
        .map(|r| r.0)
        .collect();
    assert_eq!(attempts, [1, 2], "the count went on after the restart");
    assert_eq!(rt.record(&id).await.unwrap().status, Status::Succeeded);
}

/// Not a literal, so the macro cannot check it: `build()` does.
const SHRINKING: f64 = 0.5;

#[workflow]
async fn shrinking_backoff(svc: &Flaky, what: String) -> Result<String, SvcError> {
    #[retry(backoff = SHRINKING)]
    let got: String = svc.fetch(&what).await?;
    Ok(got)
}

#[test]
fn a_policy_the_macro_cannot_check_is_refused_by_build() {
    let err = Runtime::builder()
        .register(shrinking_backoff)
        .dependency(Flaky::new(0, SvcError::Unavailable))
        .build()
        .unwrap_err();
    match &err {
        workflow::BuildError::InvalidPolicy {
            workflow,
            node,
            message,
        } => {
            assert_eq!(*workflow, "shrinking_backoff");
            assert_eq!(*node, "svc.fetch");
            assert!(message.contains("below 1"), "{message}");
        }
        other => panic!("expected InvalidPolicy, got {other:?}"),
    }
    assert!(err.to_string().contains("svc.fetch"), "{err}");
}

#[workflow]
async fn napping_child(nap: u64) -> u64 {
    sleep!(Duration::from_secs(nap));
    nap
}

#[workflow]
async fn parent_with_timeout(naps: Vec<u64>) -> Result<Vec<u64>, NestedError<NoError>> {
    #[timeout(5.secs())]
    let slept: Vec<u64> = call_nested!(for n in naps => napping_child(n), max_concurrency = 2)?;
    Ok(slept)
}

#[tokio::test(start_paused = true)]
async fn a_nested_call_times_out_and_its_children_are_cancelled() {
    let rt = Runtime::builder()
        .register(parent_with_timeout)
        .build()
        .unwrap();
    let fast = rt.start(parent_with_timeout, vec![1, 2, 3]).await.unwrap();
    assert_eq!(fast.result().await.unwrap(), [1, 2, 3]);

    let t0_slow = tokio::time::Instant::now();
    let slow = rt
        .start(parent_with_timeout, vec![1, 30, 2, 40])
        .await
        .unwrap();
    let id = slow.id().clone();
    let err = slow.result().await.unwrap_err();
    assert_eq!(
        t0_slow.elapsed(),
        secs(5),
        "the batch gave up at its timeout"
    );
    let RunError::Failed(NestedError::TimedOut { child }) = &err else {
        panic!("expected a timeout, got {err:?}");
    };
    assert!(err
        .to_string()
        .ends_with(&format!("child execution {child} timed out")));
    assert_eq!(
        workflow::WorkflowError::error_name(&NestedError::<NoError>::TimedOut {
            child: child.clone()
        }),
        "Workflow.Timeout"
    );
    // Two at a time: child 0 (1 s) finished, then 2 (2 s) in its place, then 3 (40 s);
    // at 5 s, 1 (30 s) and 3 were cancelled.
    let tree = rt.tree(&id).await.unwrap();
    let statuses: Vec<Status> = tree.children.iter().map(|c| c.status).collect();
    use Status::{Cancelled, Succeeded};
    assert_eq!(statuses, [Succeeded, Cancelled, Succeeded, Cancelled]);
}

#[workflow]
async fn flaky_child(svc: &Flaky, what: String) -> Result<String, SvcError> {
    let got: String = svc.fetch(&what).await?;
    Ok(got)
}

#[workflow]
async fn parent_retrying_child(what: String) -> Result<String, NestedError<SvcError>> {
    #[retry(on = ["Unavailable"], interval = 1.secs(), max_attempts = 2)]
    let got: String = call_nested!(flaky_child(what))?;
    Ok(got)
}

#[tokio::test(start_paused = true)]
async fn a_failed_child_is_run_again_as_a_new_child() {
    let svc = Arc::new(Flaky::new(2, SvcError::Unavailable));
    let rt = shared(parent_retrying_child, &svc);
    let t0 = tokio::time::Instant::now();
    let exec = rt.start(parent_retrying_child, "job".into()).await.unwrap();
    let id = exec.id().clone();
    assert_eq!(exec.result().await.unwrap(), "job #3");
    assert_eq!(t0.elapsed(), secs(1 + 2));
    let tree = rt.tree(&id).await.unwrap();
    let children: Vec<(String, Status)> = tree
        .children
        .iter()
        .map(|c| {
            (
                c.id.as_str().rsplit('/').next().unwrap().to_owned(),
                c.status,
            )
        })
        .collect();
    use Status::{Failed, Succeeded};
    assert_eq!(
        children,
        [
            ("1.0".into(), Failed),
            ("2.0".into(), Failed),
            ("3.0".into(), Succeeded)
        ],
        "each retry is a new batch, so a new child"
    );
    let r = retries(&rt.history(&id).await.unwrap());
    assert_eq!(
        r,
        [
            (1, "Unavailable".into(), secs(1)),
            (2, "Unavailable".into(), secs(2))
        ]
    );

    // Exhausted: the child's error, through `NestedError::Failed`.
    let svc = Arc::new(Flaky::new(9, SvcError::Unavailable));
    let rt = shared(parent_retrying_child, &svc);
    let err = rt
        .start(parent_retrying_child, "job".into())
        .await
        .unwrap()
        .result()
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            RunError::Failed(NestedError::Failed {
                error: SvcError::Unavailable,
                ..
            })
        ),
        "{err:?}"
    );
    assert_eq!(svc.calls(), 3);
}

/// A restart while a `call_nested!` waits to retry: the retried batch runs once, as the
/// next batch, and the attempt count goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_during_a_nested_retry_runs_the_new_batch_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nested-retry.sqlite");
    #[workflow]
    async fn slow_retrying_parent(what: String) -> Result<String, NestedError<SvcError>> {
        #[retry(interval = 1.secs(), max_attempts = 2, backoff = 1)]
        let got: String = call_nested!(flaky_child(what))?;
        Ok(got)
    }
    let svc = Arc::new(Flaky::new(1, SvcError::Unavailable));
    let (rt, id, _) = restarted(
        slow_retrying_parent,
        &svc,
        &db,
        |w| matches!(w, Some(Wait::Retry { attempt: 1, batch: Some(b), .. }) if b.batch == 2),
    )
    .await;
    let outcome = rt.wait(&id).await.unwrap();
    assert!(
        matches!(outcome, workflow::Outcome::Succeeded(_)),
        "{outcome:?}"
    );
    assert_eq!(svc.calls(), 2, "one failed child, one retried child");
    let statuses: Vec<Status> = rt
        .tree(&id)
        .await
        .unwrap()
        .children
        .iter()
        .map(|c| c.status)
        .collect();
    assert_eq!(statuses, [Status::Failed, Status::Succeeded]);
}

#[workflow(timeout = 10.secs())]
async fn bounded(naps: u64) -> u64 {
    let mut slept: u64 = 0;
    while slept < naps {
        sleep!(4.secs());
        slept += 4;
    }
    slept
}

#[workflow]
async fn calls_bounded(naps: u64) -> Result<u64, NestedError<NoError>> {
    let slept: u64 = call_nested!(bounded(naps))?;
    Ok(slept)
}

#[tokio::test(start_paused = true)]
async fn an_execution_past_its_workflow_timeout_times_out() {
    let rt = Runtime::builder().register(calls_bounded).build().unwrap();
    assert_eq!(
        rt.start(bounded, 8).await.unwrap().result().await.unwrap(),
        8
    );

    let t0 = tokio::time::Instant::now();
    let exec = rt.start(bounded, 20).await.unwrap();
    let id = exec.id().clone();
    assert_eq!(exec.result().await.unwrap_err(), RunError::TimedOut);
    assert_eq!(t0.elapsed(), secs(10));
    assert_eq!(rt.record(&id).await.unwrap().status, Status::TimedOut);
    let history = rt.history(&id).await.unwrap();
    assert_eq!(history.last().unwrap().kind, EventKind::ExecutionTimedOut);

    // A parent sees its child's timeout as `NestedError::TimedOut`.
    let exec = rt.start(calls_bounded, 20).await.unwrap();
    let err = exec.result().await.unwrap_err();
    assert!(
        matches!(err, RunError::Failed(NestedError::TimedOut { .. })),
        "{err:?}"
    );
    assert_eq!(
        bounded::graph().timeout.map(|t| t()),
        Some(secs(10)),
        "the graph carries the timeout, for the ASL's TimeoutSeconds"
    );
}
