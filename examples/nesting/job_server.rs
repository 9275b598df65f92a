//! The job service the example's workflows call: a small axum server, started in-process
//! on 127.0.0.1. Jobs run for a while and then succeed or, if the service is told to
//! reject them, fail. Big batches wait for approval: the service keeps their requests,
//! and an approver's answer (`POST /approvals/{id}/approve` or `…/reject`) completes
//! the request's callback token through the runtime (or, when the workflows run on Step
//! Functions, through `SendTaskSuccess`). Shared with the tests that need the example's
//! service.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use super::workflows::{
    Approval, ApprovalRequest, JobCreated, JobId, JobRequest, JobState, JobStatus,
};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use workflow::asl::TaskCompletion;
use workflow::sfn::StepFunctions;
use workflow::{CompletionError, Runtime};

/// How the service behaves.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// How long a job runs (jobs vary deterministically from 1× to 1.5× this).
    pub delay: Duration,
    /// Jobs whose `parameter2` is a multiple of this fail; 0: none fails.
    pub fail_every: u32,
    /// Jobs whose `parameter2` is a multiple of this are refused when they are started
    /// (`503 Service Unavailable`, no job created); 0: none is.
    pub refuse_every: u32,
}

/// A handle on a running service.
#[derive(Clone)]
pub struct JobServer {
    pub base_url: String,
    board: Board,
    /// What completes the callbacks the approvers answer.
    completer: Arc<OnceLock<Completer>>,
}

/// What completes an approval's callback token: the runtime that holds the waiting
/// executions, or Step Functions, whose task tokens the steps sent.
#[derive(Clone)]
enum Completer {
    Runtime(Runtime),
    StepFunctions(StepFunctions),
}

/// How long a job runs, and why it fails if it does, under `config`.
fn fate(config: Config, request: &JobRequest) -> (Duration, Option<String>) {
    let Config {
        delay, fail_every, ..
    } = config;
    let failure = (fail_every != 0 && request.parameter2 % fail_every == 0).then(|| {
        format!(
            "parameter2 = {} is a multiple of {fail_every}, which this service rejects",
            request.parameter2
        )
    });
    // Rejections come early (half the delay); other jobs take 1×, 1.25× or 1.5× it.
    let runs_for = match failure {
        Some(_) => delay / 2,
        None => delay + delay * (request.parameter2 % 3) / 4,
    };
    (runs_for, failure)
}

impl JobServer {
    /// Changes which jobs are refused from now on.
    pub fn set_refuse_every(&self, refuse_every: u32) {
        lock(&self.board).config.refuse_every = refuse_every;
    }

    /// Changes which jobs fail from now on (jobs already created keep their fate).
    pub fn set_fail_every(&self, fail_every: u32) {
        lock(&self.board).config.fail_every = fail_every;
    }

    /// Answers approvals through `runtime`: it holds the executions that wait on them.
    pub fn answer_approvals_with(&self, runtime: &Runtime) {
        let _ = self.completer.set(Completer::Runtime(runtime.clone()));
    }

    /// Answers approvals on Step Functions (`SendTaskSuccess`), where the executions
    /// that wait on them run.
    #[allow(dead_code)] // Not every program that shares this file runs on Step Functions.
    pub fn answer_approvals_on(&self, sfn: &StepFunctions) {
        let _ = self.completer.set(Completer::StepFunctions(sfn.clone()));
    }
}

/// The service's whole state.
type Board = Arc<Mutex<Jobs>>;

struct Jobs {
    config: Config,
    next_id: u64,
    jobs: HashMap<String, Job>,
    /// Approval requests not answered yet, by id.
    approvals: BTreeMap<u64, ApprovalRequest>,
    next_approval: u64,
}

/// An approval request as `GET /approvals` lists it (its token stays with the service).
#[derive(Debug, Serialize, Deserialize)]
pub struct PendingApproval {
    pub id: u64,
    pub label: String,
    pub jobs: usize,
}

/// The body of an approver's answer (optional).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Answer {
    #[serde(default)]
    pub by: Option<String>,
    #[serde(default)]
    pub comment: Option<String>,
}

struct Job {
    request: JobRequest,
    created: Instant,
    /// When the job ends, counted from `created`.
    runs_for: Duration,
    /// Why it fails, for a job that fails.
    failure: Option<String>,
}

impl Job {
    /// The job's state now: computed from its age, nothing runs in the background.
    fn status(&self, id: &str) -> JobStatus {
        let (state, result) = if self.created.elapsed() < self.runs_for {
            (JobState::Running, None)
        } else if let Some(reason) = &self.failure {
            (JobState::Failed, Some(reason.clone()))
        } else {
            let n = u64::from(self.request.parameter2);
            let output = format!(
                "{}: sum(1..={n}) = {}",
                self.request.parameter1,
                n * (n + 1) / 2
            );
            (JobState::Succeeded, Some(output))
        };
        JobStatus {
            id: JobId(id.to_owned()),
            state,
            result,
        }
    }
}

fn lock(board: &Board) -> MutexGuard<'_, Jobs> {
    // Every update is a single insert or field write: a poisoned lock is still consistent.
    board.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Binds `127.0.0.1:0` and serves the API on a background task.
pub async fn start(config: Config) -> std::io::Result<JobServer> {
    let board: Board = Arc::new(Mutex::new(Jobs {
        config,
        next_id: 1,
        jobs: HashMap::new(),
        approvals: BTreeMap::new(),
        next_approval: 1,
    }));
    let completer: Arc<OnceLock<Completer>> = Arc::default();
    let approvals = Router::new()
        .route("/approvals", post(request_approval).get(pending_approvals))
        .route("/approvals/{id}/{decision}", post(answer_approval))
        .with_state((Arc::clone(&board), Arc::clone(&completer)));
    let app = Router::new()
        .route("/jobs", post(create_job))
        .route("/jobs/{id}", get(job_status))
        .with_state(Arc::clone(&board))
        .merge(approvals);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base_url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("job service stopped: {e}");
        }
    });
    Ok(JobServer {
        base_url,
        board,
        completer,
    })
}

async fn create_job(
    State(board): State<Board>,
    Json(request): Json<JobRequest>,
) -> Result<(StatusCode, Json<JobCreated>), (StatusCode, String)> {
    let mut jobs = lock(&board);
    let refuse_every = jobs.config.refuse_every;
    if refuse_every != 0 && request.parameter2 % refuse_every == 0 {
        let why = format!("parameter2 = {} is refused for now", request.parameter2);
        return Err((StatusCode::SERVICE_UNAVAILABLE, why));
    }
    let id = format!("job-{}", jobs.next_id);
    jobs.next_id += 1;
    let (runs_for, failure) = fate(jobs.config, &request);
    let job = Job {
        request,
        created: Instant::now(),
        runs_for,
        failure,
    };
    jobs.jobs.insert(id.clone(), job);
    Ok((StatusCode::CREATED, Json(JobCreated { id: JobId(id) })))
}

async fn job_status(
    State(board): State<Board>,
    Path(id): Path<String>,
) -> Result<Json<JobStatus>, StatusCode> {
    let jobs = lock(&board);
    let job = jobs.jobs.get(&id).ok_or(StatusCode::NOT_FOUND)?;
    Ok(Json(job.status(&id)))
}

/// `POST /approvals`: a batch asks for approval; its request waits for an approver.
async fn request_approval(
    State((board, _)): State<(Board, Arc<OnceLock<Completer>>)>,
    Json(request): Json<ApprovalRequest>,
) -> (StatusCode, Json<PendingApproval>) {
    let mut jobs = lock(&board);
    let id = jobs.next_approval;
    jobs.next_approval += 1;
    let pending = PendingApproval {
        id,
        label: request.label.clone(),
        jobs: request.jobs,
    };
    jobs.approvals.insert(id, request);
    (StatusCode::CREATED, Json(pending))
}

/// `GET /approvals`: the requests waiting for an answer.
async fn pending_approvals(
    State((board, _)): State<(Board, Arc<OnceLock<Completer>>)>,
) -> Json<Vec<PendingApproval>> {
    let jobs = lock(&board);
    Json(
        jobs.approvals
            .iter()
            .map(|(&id, r)| PendingApproval {
                id,
                label: r.label.clone(),
                jobs: r.jobs,
            })
            .collect(),
    )
}

/// `POST /approvals/{id}/approve` or `…/reject` (a JSON body `{"by", "comment"}` is
/// optional): completes the request's token with the decision, through the runtime.
/// `409 Conflict` if the callback was answered already, timed out, or its execution
/// ended; the request is forgotten either way.
async fn answer_approval(
    State((board, completer)): State<(Board, Arc<OnceLock<Completer>>)>,
    Path((id, decision)): Path<(u64, String)>,
    answer: Option<Json<Answer>>,
) -> Result<StatusCode, (StatusCode, String)> {
    let approved = match decision.as_str() {
        "approve" => true,
        "reject" => false,
        _ => return Err((StatusCode::NOT_FOUND, format!("no decision `{decision}`"))),
    };
    let completer = completer.get().ok_or((
        StatusCode::SERVICE_UNAVAILABLE,
        "no runtime answers approvals yet".to_owned(),
    ))?;
    let request = lock(&board)
        .approvals
        .remove(&id)
        .ok_or((StatusCode::NOT_FOUND, format!("no approval request {id}")))?;
    let Answer { by, comment } = answer.map(|Json(a)| a).unwrap_or_default();
    let approval = Approval {
        approved,
        by: by.unwrap_or_else(|| "an approver".to_owned()),
        comment,
    };
    let runtime = match completer {
        Completer::Runtime(runtime) => runtime,
        Completer::StepFunctions(sfn) => {
            let done = TaskCompletion::success(&request.token, &approval)
                .map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?;
            return match sfn.send(&done).await {
                Ok(()) => Ok(StatusCode::NO_CONTENT),
                Err(e) => Err((StatusCode::CONFLICT, e.to_string())),
            };
        }
    };
    match runtime.complete(&request.token, approval).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(e @ (CompletionError::AlreadyResolved { .. } | CompletionError::Ended { .. })) => {
            Err((StatusCode::CONFLICT, e.to_string()))
        }
        Err(e) => Err((StatusCode::BAD_REQUEST, e.to_string())),
    }
}
