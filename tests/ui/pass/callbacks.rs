//! Callbacks in a workflow body: bound with `?`, discarded, bound without `?`, in a loop
//! and after a branch; with and without a heartbeat. Compiles without a warning.
#![deny(warnings, clippy::all)]
// `tests/asl.rs` includes this file as a module, where `main` is unused.
#![allow(dead_code)]

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};
use workflow::prelude::*;

/// Someone to ask: what they answer is scripted by the request's `id` (`approve`,
/// `reject`, `yes`, `no`, `fail`: completed or failed at once; `silent`: never answered;
/// `unsendable`: the token cannot be sent).
pub struct Approver {
    answer: Box<dyn Answer>,
}

/// How an answer reaches the runtime (natively) or Step Functions (as ASL).
pub trait Answer: Send + Sync + 'static {
    /// Completes or fails `token` as `reply` says.
    fn send(&self, token: CallbackToken, reply: Reply) -> AnswerFuture<'_>;
}

pub type AnswerFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// What the approver does with a token.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    Complete(serde_json::Value),
    Fail { error: String, cause: String },
}

impl Approver {
    pub fn new(answer: impl Answer) -> Self {
        Approver {
            answer: Box::new(answer),
        }
    }

    pub async fn ask(&self, request: &Request, token: CallbackToken) -> Result<(), String> {
        let reply = match request.id.split('-').next().unwrap_or("") {
            "approve" => Reply::Complete(serde_json::json!("Approve")),
            "reject" => Reply::Complete(serde_json::json!({"Reject": {"reason": "too much"}})),
            "yes" => Reply::Complete(serde_json::json!(true)),
            "no" => Reply::Complete(serde_json::json!(false)),
            "fail" => Reply::Fail {
                error: "Approval.Withdrawn".into(),
                cause: format!("{} was withdrawn", request.id),
            },
            "unsendable" => return Err(format!("no approver for {}", request.id)),
            _ => return Ok(()),
        };
        self.answer.send(token, reply).await
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Request {
    pub id: String,
    pub amount: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Decision {
    Approve,
    Reject { reason: String },
}

#[derive(WorkflowError, Clone, Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
pub enum RequestError {
    #[error("rejected: {0}")]
    Rejected(String),
    #[error(transparent)]
    #[workflow_error(transparent)]
    Callback(#[from] CallbackError),
}

/// Small amounts pass; larger ones wait for a decision, with a heartbeat interval.
#[workflow]
pub async fn approve_request(
    approver: &Approver,
    request: Request,
) -> Result<String, RequestError> {
    if request.amount <= 100 {
        return Ok(format!("{} passed", request.id));
    }
    let decision: Decision = wait_for_callback!(
        |token| approver.ask(&request, token),
        timeout = 2.hours(),
        heartbeat = 10.mins(),
    )?;
    match decision {
        Decision::Approve => Ok(format!("{} approved", request.id)),
        Decision::Reject { reason } => Err(RequestError::Rejected(reason)),
    }
}

/// One vote per voter (a vote that does not come is not counted), then a closing
/// acknowledgement whose value is discarded.
#[workflow]
pub async fn collect_votes(approver: &Approver, voters: Vec<Request>) -> Result<u32, RequestError> {
    let mut yes: u32 = 0;
    for voter in voters {
        let vote: Result<bool, CallbackError> =
            wait_for_callback!(|token| approver.ask(&voter, token), timeout = 30.mins(),);
        if vote == Ok(true) {
            yes += 1;
        }
    }
    let closing: Request = Request {
        id: format!("{}-close", if yes > 0 { "approve" } else { "silent" }),
        amount: yes,
    };
    wait_for_callback!(|token| approver.ask(&closing, token), timeout = 1.mins())?;
    Ok(yes)
}

/// The approver of `main`: it completes nothing.
struct Nobody;

impl Answer for Nobody {
    fn send(&self, _: CallbackToken, _: Reply) -> AnswerFuture<'_> {
        Box::pin(async { Ok(()) })
    }
}

fn main() {
    let _ = Runtime::builder()
        .register(approve_request)
        .register(collect_votes)
        .dependency(Approver::new(Nobody))
        .build();
}
