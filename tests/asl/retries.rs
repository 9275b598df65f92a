//! Workflows with retry policies and timeouts, against a service scripted by the key it
//! is called with, so that "fails twice then answers", "never answers", "too slow" and
//! "refuses" are deterministic inputs of the differential runs.
//!
//! A key is `<script>:<name>`; each key counts its own calls (the native run and the ASL
//! run each have their own service, and every scenario uses its own keys):
//!
//! - `failN` — the first `N` calls fail with `Unavailable`, later ones answer;
//! - `bad` — every call fails with the non-retryable `BadRequest`;
//! - `panicN` — the first `N` calls panic;
//! - `slowN` — the first `N` calls take 2 s (more than the 1 s timeouts below; in real
//!   time for the step handler, so keep `N` small), later ones answer at once;
//! - anything else answers at once.
//!
//! An answer is `"<key> #<call number>"`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use workflow::prelude::*;

/// The scripted service.
#[derive(Default)]
pub struct Flaky {
    calls: Mutex<HashMap<String, u32>>,
}

impl Flaky {
    pub async fn fetch(&self, key: &str) -> Result<String, SvcError> {
        let n = {
            let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
            let n = calls.entry(key.to_owned()).or_default();
            *n += 1;
            *n
        };
        let script = key.split(':').next().unwrap_or("");
        let count = |prefix: &str| -> u32 {
            script
                .strip_prefix(prefix)
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        if script == "bad" {
            return Err(SvcError::BadRequest);
        }
        if n <= count("panic") {
            panic!("{key} panicked at call {n}");
        }
        if n <= count("fail") {
            return Err(SvcError::Unavailable);
        }
        if n <= count("slow") {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        Ok(format!("{key} #{n}"))
    }
}

#[derive(WorkflowError, Clone, Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
pub enum SvcError {
    #[error("unavailable")]
    Unavailable,
    #[error("bad request")]
    #[workflow_error(non_retryable)]
    BadRequest,
    #[error(transparent)]
    #[workflow_error(transparent)]
    Timeout(#[from] TaskTimeout),
    #[error(transparent)]
    #[workflow_error(transparent)]
    Poll(#[from] PollError),
}

/// A task without a policy, one with a policy (retried, then `?`), another without.
#[workflow]
pub async fn retried(svc: &Flaky, key: String) -> Result<(String, String, String), SvcError> {
    let before: String = svc.fetch(&format!("ok:{key}/before")).await?;
    #[retry(on = ["Unavailable"], interval = 1.secs(), max_attempts = 3, backoff = 2.0, max_delay = 3.secs())]
    let got: String = svc.fetch(&key).await?;
    let after: String = svc.fetch(&format!("ok:{key}/after")).await?;
    Ok((before, got, after))
}

/// A `match` catches the error once the retries (every error, full jitter) are used up.
#[workflow]
pub async fn caught(svc: &Flaky, key: String) -> String {
    #[retry(interval = 2.secs(), max_attempts = 2, jitter = full)]
    let got: Result<String, SvcError> = svc.fetch(&key).await;
    match got {
        Ok(v) => v,
        Err(e) => format!("default after {e}"),
    }
}

/// A 1 s timeout, retried once; a timeout that is not retried again fails the workflow.
#[workflow]
pub async fn timed(svc: &Flaky, key: String) -> Result<String, SvcError> {
    #[retry(on = ["Workflow.Timeout"], interval = 1.secs(), max_attempts = 1)]
    #[timeout(1.secs())]
    let got: String = svc.fetch(&key).await?;
    Ok(got)
}

/// A policy that names `Workflow.Panic`: a panicking call is retried once.
#[workflow]
pub async fn panicky(svc: &Flaky, key: String) -> Result<String, SvcError> {
    #[retry(on = ["Workflow.Panic", "Unavailable"], interval = 1.secs(), max_attempts = 1)]
    let got: String = svc.fetch(&key).await?;
    Ok(got)
}

/// A poll whose failed calls are retried before they count as poll errors.
#[workflow]
pub async fn polled(svc: &Flaky, key: String) -> Result<String, SvcError> {
    #[retry(on = ["Unavailable"], interval = 500.millis(), max_attempts = 2, backoff = 1)]
    let got: Polled<String> = poll_until!(
        svc.fetch(&key),
        |s| s.ends_with("#4"),
        every = 1.secs(),
        max_attempts = 5,
    )?;
    Ok(got.value)
}

/// The workflow's default policy on every task of a loop; a task that opts out of it and
/// has only a timeout.
#[workflow(retry(on = ["Unavailable"], interval = 1.secs(), max_attempts = 1))]
pub async fn looped(svc: &Flaky, keys: Vec<String>) -> Result<Vec<String>, SvcError> {
    let mut out: Vec<String> = Vec::new();
    for k in keys {
        let v: String = svc.fetch(&k).await?;
        out.push(v);
    }
    #[retry(none)]
    #[timeout(5.secs())]
    let last: String = svc.fetch("ok:last").await?;
    out.push(last);
    Ok(out)
}

/// The child of the nested scenarios: one call, its error is the child's.
#[workflow]
pub async fn fetch_child(svc: &Flaky, key: String) -> Result<String, SvcError> {
    let got: String = svc.fetch(&key).await?;
    Ok(got)
}

/// A `call_nested!` whose batch runs again (new child) while the child fails with
/// `Unavailable` or times out (1 s).
#[workflow]
pub async fn nested_retried(key: String) -> Result<String, NestedError<SvcError>> {
    #[retry(on = ["Unavailable", "Workflow.Timeout"], interval = 1.secs(), max_attempts = 2)]
    #[timeout(1.secs())]
    let got: String = call_nested!(fetch_child(key))?;
    Ok(got)
}

/// A `call_nested!` with a timeout and no retry: a slow child fails the parent with
/// `Workflow.Timeout`.
#[workflow]
pub async fn nested_timed(key: String) -> Result<String, NestedError<SvcError>> {
    #[timeout(1.secs())]
    let got: String = call_nested!(fetch_child(key))?;
    Ok(got)
}

/// A workflow with an execution timeout (1 s): a slow call ends it timed out.
#[workflow(timeout = 1.secs())]
pub async fn bounded_child(svc: &Flaky, key: String) -> Result<String, SvcError> {
    let got: String = svc.fetch(&key).await?;
    Ok(got)
}

/// Its parent, which sees the child's timeout as `NestedError::TimedOut`.
#[workflow]
pub async fn calls_bounded(key: String) -> Result<String, NestedError<SvcError>> {
    let got: String = call_nested!(bounded_child(key))?;
    Ok(got)
}

/// The same policy on a Map: its timeout is on the Map's child Task, a retry runs every
/// item again as a new batch.
#[workflow]
pub async fn nested_map(keys: Vec<String>) -> Result<Vec<String>, NestedError<SvcError>> {
    #[retry(on = ["Unavailable"], interval = 1.secs(), max_attempts = 1)]
    #[timeout(2.secs())]
    let got: Vec<String> = call_nested!(for k in keys => fetch_child(k), max_concurrency = 2)?;
    Ok(got)
}
