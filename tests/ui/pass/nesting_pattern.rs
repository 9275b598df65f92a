//! The nesting pattern compiles without a warning, even under `#![deny(warnings)]`.
#![deny(warnings, clippy::all)]
// `tests/asl.rs` includes this file as a module, where `main` is unused.
#![allow(dead_code)]

use serde::{Deserialize, Serialize};
use workflow::prelude::*;

pub struct Svc;

impl Svc {
    pub async fn start(&self, n: u32) -> Result<u64, String> {
        Ok(u64::from(n))
    }
    pub async fn status(&self, job: &u64) -> Result<Status, String> {
        Ok(Status {
            job: *job,
            done: true,
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Status {
    pub job: u64,
    pub done: bool,
}

#[derive(WorkflowError, Debug, Serialize, Deserialize, thiserror::Error)]
pub enum JobError {
    #[error("{0}")]
    Service(String),
    #[error(transparent)]
    #[workflow_error(transparent)]
    Poll(#[from] PollError),
}

impl From<String> for JobError {
    fn from(e: String) -> Self {
        JobError::Service(e)
    }
}

#[derive(WorkflowError, Debug, Serialize, Deserialize, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    #[workflow_error(transparent)]
    Child(#[from] NestedError<JobError>),
}

/// Runs one job and polls it.
#[workflow(name = "Nested")]
pub async fn run_job(svc: &Svc, n: u32) -> Result<u64, JobError> {
    let job: u64 = svc.start(n).await?;
    let status: Polled<Status> = poll_until!(
        svc.status(&job),
        |s| s.done,
        every = 5.millis(),
        max_attempts = 3
    )?;
    Ok(status.value.job + u64::from(status.attempts))
}

#[workflow(name = "Main")]
pub async fn main_flow(mut items: Vec<u32>, label: String) -> Result<String, Error> {
    let first: u64 = call_nested!(run_job(items.remove(0)))?;
    sleep!(1.millis());
    let rest: Vec<u64> = call_nested!(for n in items => run_job(n), max_concurrency = 2)?;
    let (x, y): (u64, u64) = call_nested!(parallel(run_job(1), run_job(2)))?;
    Ok(format!("{label}: {first} {rest:?} {x} {y}"))
}

#[workflow]
pub async fn unit_workflow() {
    sleep!(1.millis());
}

fn main() {
    let _ = (main_flow, unit_workflow);
}
