//! The nesting example's service client, its API types and its two workflows, shared by
//! the example (`main.rs`) and the step-handler binary (`examples/step_handler.rs`).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use workflow::prelude::*;
// =======================================================================================
// The job service's API: what goes over the wire.
// =======================================================================================

/// What a job is asked to do (the body of `POST /jobs`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JobRequest {
    /// A free-form label.
    pub parameter1: String,
    /// The job's size; it also decides whether the service rejects it (see `--fail-every`).
    pub parameter2: u32,
}

/// A job's id, as the service hands it out (`job-1`, `job-2`, …).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub String);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The answer to `POST /jobs`.
#[derive(Debug, Serialize, Deserialize)]
pub struct JobCreated {
    pub id: JobId,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Running,
    Succeeded,
    Failed,
}

/// The answer to `GET /jobs/{id}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JobStatus {
    pub id: JobId,
    pub state: JobState,
    /// The output of a succeeded job, or why a failed one failed.
    pub result: Option<String>,
}

impl JobStatus {
    pub fn is_finished(&self) -> bool {
        self.state != JobState::Running
    }
}

// =======================================================================================
// The client the workflows use: a dependency, injected into `&JobService` parameters.
// =======================================================================================

/// Why a job did not produce a result. Workflow errors are persisted, so this is
/// `Serialize + Deserialize`; errors of other libraries are kept as their messages.
#[derive(WorkflowError, Clone, Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
pub enum JobError {
    /// The HTTP call failed (connection, status code, body).
    #[error("HTTP: {0}")]
    Http(String),
    /// The service does not know the job.
    #[error("the service does not know job {id}")]
    UnknownJob { id: JobId },
    /// The job ran and failed.
    #[error("job {id} failed: {reason}")]
    JobFailed { id: JobId, reason: String },
    /// Polling gave up (timeout, or too many errors in a row).
    #[error(transparent)]
    #[workflow_error(transparent)]
    Poll(#[from] PollError),
}

impl From<reqwest::Error> for JobError {
    fn from(e: reqwest::Error) -> Self {
        JobError::Http(e.to_string())
    }
}

/// A batch that waits for approval: the body of `POST /approvals`. The token is what
/// the approver's answer completes (`runtime.complete`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ApprovalRequest {
    pub label: String,
    /// How many jobs the batch would run in parallel.
    pub jobs: usize,
    pub token: CallbackToken,
}

/// What an approver decided about a batch: the value the approval's token is completed
/// with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    pub approved: bool,
    /// Who decided.
    pub by: String,
    #[serde(default)]
    pub comment: Option<String>,
}

/// What the workflows need from a job service. The example talks to it over HTTP
/// ([`JobService::new`]); tests and benchmarks answer in process
/// ([`JobService::with_api`]), so every one of them runs these very workflows.
pub trait JobApi: Send + Sync + 'static {
    /// Starts a job.
    fn start<'a>(&'a self, req: &'a JobRequest) -> ApiFuture<'a, JobId>;
    /// Tells how a job is doing.
    fn status<'a>(&'a self, id: &'a JobId) -> ApiFuture<'a, JobStatus>;
    /// Asks for a batch to be approved; the answer completes the request's token. By
    /// default the service has nobody to ask: the token is not sent.
    fn request_approval<'a>(&'a self, _request: &'a ApprovalRequest) -> ApiFuture<'a, ()> {
        Box::pin(async {
            Err(JobError::Http(
                "this job service takes no approval requests".into(),
            ))
        })
    }
}

/// The future a [`JobApi`] call returns.
pub type ApiFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, JobError>> + Send + 'a>>;

/// The dependency of the workflows: a job service, how they poll it, and which batches
/// wait for approval.
pub struct JobService {
    api: Box<dyn JobApi>,
    pub poll_every: Duration,
    pub poll_timeout: Duration,
    /// Batches with more parallel jobs than this wait for approval.
    pub approval_over: usize,
    /// How long a batch waits for its approval.
    pub approval_timeout: Duration,
}

impl JobService {
    /// The job service at `base_url`, over HTTP.
    pub fn new(base_url: impl Into<String>) -> Self {
        Self::with_api(HttpJobs {
            http: reqwest::Client::new(),
            base_url: base_url.into(),
        })
    }

    /// A job service answered by `api`.
    pub fn with_api(api: impl JobApi) -> Self {
        JobService {
            api: Box::new(api),
            poll_every: Duration::from_millis(100),
            poll_timeout: Duration::from_secs(10),
            approval_over: usize::MAX,
            approval_timeout: Duration::from_secs(3600),
        }
    }

    /// How often `run_job` asks for a job's status, and for how long at most.
    pub fn polling(mut self, every: Duration, timeout: Duration) -> Self {
        self.poll_every = every;
        self.poll_timeout = timeout;
        self
    }

    pub async fn start(&self, req: &JobRequest) -> Result<JobId, JobError> {
        self.api.start(req).await
    }

    /// Batches with more than `jobs` parallel jobs wait for approval, for `timeout` at
    /// most (none does unless this is set).
    pub fn approvals(mut self, jobs: usize, timeout: Duration) -> Self {
        self.approval_over = jobs;
        self.approval_timeout = timeout;
        self
    }

    pub async fn status(&self, id: &JobId) -> Result<JobStatus, JobError> {
        self.api.status(id).await
    }

    /// Sends the approval request of batch `label` (`jobs` parallel jobs) with `token`.
    pub async fn request_approval(
        &self,
        label: &str,
        jobs: usize,
        token: CallbackToken,
    ) -> Result<(), JobError> {
        let request = ApprovalRequest {
            label: label.to_owned(),
            jobs,
            token,
        };
        self.api.request_approval(&request).await
    }
}

/// The job service's HTTP API.
struct HttpJobs {
    http: reqwest::Client,
    base_url: String,
}

impl JobApi for HttpJobs {
    /// `POST /jobs`.
    fn start<'a>(&'a self, req: &'a JobRequest) -> ApiFuture<'a, JobId> {
        Box::pin(async move {
            let created: JobCreated = self
                .http
                .post(format!("{}/jobs", self.base_url))
                .timeout(Duration::from_secs(5))
                .json(req)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            Ok(created.id)
        })
    }

    /// `POST /approvals`: the service shows the request to its approvers, whose answer
    /// (`POST /approvals/{id}/approve` or `…/reject`) completes the token.
    fn request_approval<'a>(&'a self, request: &'a ApprovalRequest) -> ApiFuture<'a, ()> {
        Box::pin(async move {
            self.http
                .post(format!("{}/approvals", self.base_url))
                .timeout(Duration::from_secs(5))
                .json(request)
                .send()
                .await?
                .error_for_status()?;
            Ok(())
        })
    }

    /// `GET /jobs/{id}`.
    fn status<'a>(&'a self, id: &'a JobId) -> ApiFuture<'a, JobStatus> {
        Box::pin(async move {
            let response = self
                .http
                .get(format!("{}/jobs/{id}", self.base_url))
                .timeout(Duration::from_secs(5))
                .send()
                .await?;
            if response.status() == reqwest::StatusCode::NOT_FOUND {
                return Err(JobError::UnknownJob { id: id.clone() });
            }
            Ok(response.error_for_status()?.json().await?)
        })
    }
}

// =======================================================================================
// The workflows.
// =======================================================================================

/// What one `run_job` execution reports.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JobReport {
    pub job_id: JobId,
    /// Status calls made, the one that saw the job finished included.
    pub polls: u32,
    /// From the start of polling to the finished answer.
    pub runtime_ms: u64,
    /// The job's output.
    pub result: String,
}

/// The child workflow: one job, from start to result.
///
/// Every yield point is checkpointed: the `start` call's result, each wait, each status
/// call. `svc` is a dependency (given to `Builder::dependency`), `req` the input. The
/// poll's `every` and `timeout` are read once, when the poll starts, and persisted with it.
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

/// The parent workflow's input.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Batch {
    /// Prefix of the sequential jobs' `parameter1`.
    pub label: String,
    /// `parameter2` of the three sequential jobs.
    pub steps: [u32; 3],
    /// One job each, run in parallel.
    pub parallel: Vec<JobRequest>,
}

impl Batch {
    /// Jobs with parameter2 = 1, 2, 3 in sequence, then 4, 5, … (`parallel` of them) in
    /// parallel, named after `label`.
    pub fn numbered(label: &str, parallel: u32) -> Batch {
        Batch {
            label: label.to_owned(),
            steps: [1, 2, 3],
            parallel: (0..parallel)
                .map(|i| JobRequest {
                    parameter1: format!("{label}-p{}", i + 1),
                    parameter2: 4 + i,
                })
                .collect(),
        }
    }
}

/// What the parent workflow returns.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Summary {
    /// The three sequential jobs, in order.
    pub sequential: Vec<JobReport>,
    /// The parallel jobs, in input order.
    pub parallel: Vec<JobReport>,
}

/// The parent workflow's error: a child did not succeed, or the batch was not approved.
#[derive(WorkflowError, Clone, Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
pub enum MainError {
    #[error(transparent)]
    #[workflow_error(transparent)]
    Child(#[from] NestedError<JobError>),
    /// Nobody approved in time, or the request could not be sent.
    #[error("approval: {0}")]
    #[workflow_error(transparent)]
    Approval(#[from] CallbackError),
    /// An approver said no.
    #[error("{by} did not approve the batch{}", comment.as_ref().map(|c| format!(": {c}")).unwrap_or_default())]
    #[workflow_error(name = "Batch.NotApproved")]
    NotApproved { by: String, comment: Option<String> },
}

/// The parent workflow: a big batch first waits for approval; then three children one
/// after the other, then a bounded fan-out.
///
/// The approval is a callback: the job service gets a token and shows the request to a
/// person, whose answer completes the token (`runtime.complete`); the execution waits,
/// durably, until then or its timeout, without polling anything. Each `call_nested!`
/// suspends this execution until its children end; their results come back typed
/// (`JobReport`), their errors as `NestedError<JobError>`, which `?` turns into
/// `MainError`. Registering this workflow registers `run_job` too.
#[workflow(name = "NestingPatternMainStateMachine")]
pub async fn main_flow(svc: &JobService, batch: Batch) -> Result<Summary, MainError> {
    let jobs: usize = batch.parallel.len();
    if jobs > svc.approval_over {
        let approval: Approval = wait_for_callback!(
            |token| svc.request_approval(&batch.label, jobs, token),
            timeout = svc.approval_timeout,
        )?;
        if !approval.approved {
            let Approval { by, comment, .. } = approval;
            return Err(MainError::NotApproved { by, comment });
        }
    }
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
