//! The workflows of `examples/nesting.rs`, with the same bodies (and so the same state
//! graphs and ASL), against a scripted job service instead of HTTP, so that every
//! scenario (success, poll timeout, too many poll errors, a rejected or failed job, a
//! failing child, fail-fast) is a deterministic input.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use workflow::prelude::*;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JobRequest {
    /// Says how the scripted service behaves: `slow` never finishes, `flaky` always
    /// errors, `reject` is refused, `broken` finishes failed; else it finishes after
    /// `parameter2` status calls.
    pub parameter1: String,
    pub parameter2: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobId(String);

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobState {
    Running,
    Succeeded,
    Failed,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JobStatus {
    pub state: JobState,
    pub result: Option<String>,
}

impl JobStatus {
    fn is_finished(&self) -> bool {
        self.state != JobState::Running
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
pub enum JobError {
    #[error("rejected: {0}")]
    Rejected(String),
    #[error("http: {0}")]
    Http(String),
    #[error("job {id} failed: {reason}")]
    JobFailed { id: JobId, reason: String },
    #[error(transparent)]
    Poll(#[from] PollError),
}

/// Counts status calls per job, so "finished after n calls" needs no clock.
pub struct JobService {
    pub poll_every: Duration,
    pub poll_timeout: Duration,
    polls: Mutex<HashMap<String, u32>>,
}

impl Default for JobService {
    fn default() -> Self {
        JobService {
            poll_every: Duration::from_secs(10),
            poll_timeout: Duration::from_secs(60),
            polls: Mutex::default(),
        }
    }
}

impl JobService {
    async fn start(&self, req: &JobRequest) -> Result<JobId, JobError> {
        if req.parameter1.contains("reject") {
            return Err(JobError::Rejected(req.parameter1.clone()));
        }
        Ok(JobId(format!("{}#{}", req.parameter1, req.parameter2)))
    }

    async fn status(&self, id: &JobId) -> Result<JobStatus, JobError> {
        let n = {
            let mut polls = self.polls.lock().unwrap_or_else(|e| e.into_inner());
            let n = polls.entry(id.0.clone()).or_default();
            *n += 1;
            *n
        };
        let needed: u32 =
            id.0.rsplit('#')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(1);
        if id.0.contains("flaky") {
            return Err(JobError::Http(format!("503 on call {n}")));
        }
        let state = if id.0.contains("slow") || n < needed {
            JobState::Running
        } else if id.0.contains("broken") {
            JobState::Failed
        } else {
            JobState::Succeeded
        };
        Ok(JobStatus {
            state,
            result: (state != JobState::Running).then(|| format!("result of {id}")),
        })
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JobReport {
    job_id: JobId,
    polls: u32,
    runtime_ms: u64,
    result: String,
}

#[workflow(name = "NestingPatternAnotherStateMachine")]
pub async fn run_job(svc: &JobService, req: JobRequest) -> Result<JobReport, JobError> {
    let job: JobId = svc.start(&req).await?;
    let status: Polled<JobStatus> = poll_until!(
        svc.status(&job),
        |s| s.is_finished(),
        every = svc.poll_every,
        timeout = svc.poll_timeout,
        max_errors = 3,
    )?;
    if status.value.state == JobState::Failed {
        let reason = status.value.result.unwrap_or_default();
        return Err(JobError::JobFailed { id: job, reason });
    }
    Ok(JobReport {
        job_id: job,
        polls: status.attempts,
        runtime_ms: u64::try_from(status.elapsed.as_millis()).unwrap_or(u64::MAX),
        result: status.value.result.unwrap_or_default(),
    })
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Batch {
    pub label: String,
    pub steps: [u32; 3],
    pub parallel: Vec<JobRequest>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Summary {
    sequential: Vec<JobReport>,
    parallel: Vec<JobReport>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
pub enum MainError {
    #[error(transparent)]
    Child(#[from] NestedError<JobError>),
}

#[workflow(name = "NestingPatternMainStateMachine")]
pub async fn main_flow(batch: Batch) -> Result<Summary, MainError> {
    let first: JobReport = call_nested!(run_job(JobRequest {
        parameter1: format!("{}-1", batch.label),
        parameter2: batch.steps[0],
    }))?;
    let second: JobReport = call_nested!(run_job(JobRequest {
        parameter1: format!("{}-2", batch.label),
        parameter2: batch.steps[1],
    }))?;
    let third: JobReport = call_nested!(run_job(JobRequest {
        parameter1: format!("{}-3", batch.label),
        parameter2: batch.steps[2],
    }))?;
    let parallel: Vec<JobReport> =
        call_nested!(for r in batch.parallel => run_job(r), max_concurrency = 8)?;
    Ok(Summary {
        sequential: vec![first, second, third],
        parallel,
    })
}
