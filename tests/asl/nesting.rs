//! The workflows of the nesting example (`examples/nesting/workflows.rs`, included as
//! they are) against a scripted job service instead of HTTP, so that every scenario
//! (success, poll timeout, too many poll errors, a rejected or failed job, a failing
//! child, fail-fast) is a deterministic input.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

#[path = "../../examples/nesting/workflows.rs"]
#[allow(dead_code)]
pub mod workflows;

pub use workflows::{main_flow, run_job, JobService};
use workflows::{
    ApiFuture, ApprovalRequest, JobApi, JobError, JobId, JobRequest, JobState, JobStatus,
};

/// The example's service, scripted by the job's `parameter1`: `reject` refuses to start,
/// `flaky` fails every status call, `slow` never finishes, `broken` fails; otherwise the
/// job is done at the status call number `parameter2`. A batch of more than 4 parallel
/// jobs asks for approval, which nobody gives: it times out after an hour.
pub fn scripted() -> JobService {
    JobService::with_api(Scripted::default())
        .polling(Duration::from_secs(10), Duration::from_secs(60))
        .approvals(4, Duration::from_secs(3600))
}

#[derive(Default)]
struct Scripted {
    polls: Mutex<HashMap<String, u32>>,
}

impl JobApi for Scripted {
    /// Taken, and never answered.
    fn request_approval<'a>(&'a self, _request: &'a ApprovalRequest) -> ApiFuture<'a, ()> {
        Box::pin(async { Ok(()) })
    }

    fn start<'a>(&'a self, req: &'a JobRequest) -> ApiFuture<'a, JobId> {
        Box::pin(async move {
            if req.parameter1.contains("reject") {
                return Err(JobError::Http(format!("400: {} rejected", req.parameter1)));
            }
            Ok(JobId(format!("{}#{}", req.parameter1, req.parameter2)))
        })
    }

    fn status<'a>(&'a self, id: &'a JobId) -> ApiFuture<'a, JobStatus> {
        Box::pin(async move {
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
                id: id.clone(),
                state,
                result: (state != JobState::Running).then(|| format!("result of {id}")),
            })
        })
    }
}
