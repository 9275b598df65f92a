//! Reading a request: which Lambda state it comes from, and what Step Functions added
//! to the document (a caught error, the children's results, a poll's state before the
//! attempt).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{GiveUp, Layout};
use crate::callback::{CallbackError, CallbackResolution, Resolved};
use crate::child::{ChildResult, ChildrenOutcome};
use crate::context::{Caught, STATES_HEARTBEAT_TIMEOUT, STATES_TIMEOUT};
use crate::deps::Fault;
use crate::execution::{ExecutionId, Outcome};
use crate::graph::{NodeKind, StateGraph};
use crate::history::{EventKind, PollOutcome};
use crate::json::Json;
use crate::retry::{Policy, TaskTimeout};
use crate::workflow::ResumePoint;

use super::error::StepError;

/// The role of Lambda state `at`, and whether it is a `…: caught` state (whose
/// document holds the error Step Functions caught).
pub(super) fn role_of(layout: &Layout, graph: &StateGraph, at: &str) -> Option<(Role, bool)> {
    if at == layout.start {
        return Some((Role::Start, false));
    }
    layout.nodes.iter().enumerate().find_map(|(k, n)| {
        let node = &graph.nodes[k];
        let is = |s: &Option<String>| s.as_deref() == Some(at);
        match node.kind {
            NodeKind::Task if n.caught.is_some() && is(&n.main) => Some((Role::Call(k), false)),
            NodeKind::Task if is(&n.caught) => Some((Role::Call(k), true)),
            NodeKind::Task if is(&n.main) => Some((Role::After(k), false)),
            NodeKind::Poll if is(&n.attempt) => Some((Role::Attempt(k), false)),
            NodeKind::Poll if is(&n.caught) => Some((Role::Attempt(k), true)),
            NodeKind::Callback { .. } if is(&n.main) => Some((Role::Send(k), false)),
            NodeKind::Task | NodeKind::Poll => None,
            _ if is(&n.resume) => Some((Role::After(k), false)),
            _ => None,
        }
    })
}

/// How long Step Functions waited between the retries of a call that failed with `error`
/// before its `Catch` took it: every retry's delay (without jitter) if the policy retries
/// that error, else nothing.
pub(super) fn retried_for(policy: &Policy, error: &str) -> Duration {
    let Some(retry) = &policy.retry else {
        return Duration::ZERO;
    };
    let name = if error == STATES_TIMEOUT {
        TaskTimeout::NAME
    } else {
        error
    };
    if !retry.matches(name) {
        return Duration::ZERO;
    }
    let mut total = Duration::ZERO;
    let mut previous = None;
    for n in 1..=retry.max_attempts {
        let delay = retry.base_delay(n);
        if previous == Some(delay) {
            // The delays stopped growing (capped): the remaining ones are all the same.
            let rest = retry.max_attempts - n + 1;
            return total.saturating_add(delay.saturating_mul(rest));
        }
        total = total.saturating_add(delay);
        previous = Some(delay);
    }
    total
}

/// The error a `Catch` put in the document (at `$.caught`).
pub(super) fn caught_of(doc: &Value) -> Result<Caught, String> {
    let caught = doc
        .get("caught")
        .ok_or("the document has no `caught` error")?;
    let error = caught
        .get("Error")
        .and_then(Value::as_str)
        .ok_or("the caught error has no `Error`")?;
    let cause = caught.get("Cause").and_then(Value::as_str).unwrap_or("");
    Ok(Caught {
        error: error.to_owned(),
        cause: decode_cause(cause),
    })
}

/// A caught error's `Cause`: the error's JSON as the handler answered it, which AWS
/// Lambda wraps in its function error (`{"errorType", "errorMessage", …}`).
pub(super) fn decode_cause(cause: &str) -> Value {
    match serde_json::from_str::<Value>(cause) {
        Ok(Value::Object(m)) if m.contains_key("errorType") => match m.get("errorMessage") {
            Some(Value::String(message)) => {
                serde_json::from_str(message).unwrap_or_else(|_| Value::String(message.clone()))
            }
            _ => Value::Object(m),
        },
        Ok(v) => v,
        Err(_) => Value::String(cause.to_owned()),
    }
}

pub(super) fn is_children(kind: &NodeKind) -> bool {
    matches!(
        kind,
        NodeKind::Child { .. } | NodeKind::Parallel { .. } | NodeKind::Map { .. }
    )
}

/// What a callback's resume Lambda is given: how the callback was resolved, from what
/// its `.waitForTaskToken` Task added to the document (`callback_result`, or
/// `callback_error` for `SendTaskFailure`, a timeout, or a failed send), with the limits
/// the answer that entered the callback carried (`callback`). `Err` for a fault that the
/// Task's `Catch` took: the send's Lambda refused or panicked.
pub(super) fn callback_resolution(
    doc: &Value,
    node: &'static str,
) -> Result<Result<Resolved, Fault>, String> {
    let limits: CallbackAnswer = doc
        .get("callback")
        .cloned()
        .ok_or("the document has no `callback`")
        .and_then(|c| {
            serde_json::from_value(c)
                .map_err(|_| "the document's `callback` is not what the handler answered")
        })?;
    let resolution = if let Some(value) = doc.get("callback_result") {
        CallbackResolution::Completed {
            value: Json::from(value.clone()),
        }
    } else {
        let error = doc
            .get("callback_error")
            .ok_or("the document has neither `callback_result` nor `callback_error`")?;
        let name = error.get("Error").and_then(Value::as_str).unwrap_or("");
        let cause = error.get("Cause").and_then(Value::as_str).unwrap_or("");
        match name {
            STATES_TIMEOUT => CallbackResolution::TimedOut,
            STATES_HEARTBEAT_TIMEOUT => CallbackResolution::HeartbeatTimedOut,
            CallbackError::NOT_SENT => CallbackResolution::NotSent {
                message: match decode_cause(cause) {
                    Value::String(message) => message,
                    other => other.to_string(),
                },
            },
            // The send's Lambda refused the request or panicked: the execution's fault,
            // as natively.
            own if StepError::is_own(own) => {
                let message = match decode_cause(cause) {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                return Ok(Err(Fault::named(own, message)));
            }
            _ => CallbackResolution::Failed {
                error: name.to_owned(),
                cause: cause.to_owned(),
            },
        }
    };
    Ok(Ok(Resolved {
        resolution,
        timeout: limits.timeout,
        heartbeat: limits.heartbeat,
        node,
    }))
}

/// The limits of a callback, as the answer that enters it carries them: whole seconds
/// for the `.waitForTaskToken` Task's `TimeoutSecondsPath` and `HeartbeatSecondsPath`,
/// and the durations themselves for the errors the resume Lambda makes of a timeout.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct CallbackAnswer {
    pub(crate) timeout_seconds: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) heartbeat_seconds: Option<u64>,
    pub(crate) timeout: Duration,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) heartbeat: Option<Duration>,
}

/// Whether the code after node `k` resumes the state that waited in it (the children's
/// or the callback's resume Lambda) rather than the state after it.
pub(super) fn waits_in_node(kind: &NodeKind) -> bool {
    is_children(kind) || matches!(kind, NodeKind::Callback { .. })
}

/// The `PollState` inside a serialized state enum, which the step of a poll's attempt
/// receives: the poll's waiting variant, `[tag, field, …, poll]` (see
/// `persist::variant`), holds it last.
pub(super) fn find_poll(v: &Value) -> Option<&Value> {
    match v.as_array()?.as_slice() {
        [_tag, .., poll] => Some(poll),
        _ => None,
    }
}

/// Why the attempt in `events` made the poll give up, from its state before the attempt
/// (the same rules as `PollState::attempt`, in the same order).
pub(super) fn give_up(before: Option<&Value>, events: &[crate::history::Event]) -> GiveUp {
    let errored = events.iter().any(|e| {
        matches!(
            e.kind,
            EventKind::PollAttempt {
                outcome: PollOutcome::Error { .. },
                ..
            }
        )
    });
    let n = |v: Option<&Value>| v.and_then(Value::as_u64).unwrap_or(0);
    let Some(p) = before else {
        return GiveUp::TimedOut;
    };
    // `PollState` is written as `[config, started_at, attempts, errors, last_error]`, its
    // config as `[every, timeout, max_attempts, max_errors]` (see `poll.rs`).
    let config = p.get(0);
    let errors = n(p.get(3)) + u64::from(errored);
    let attempts = n(p.get(2)) + 1;
    let max_errors = n(config.and_then(|c| c.get(3)));
    let max_attempts = config.and_then(|c| c.get(2)).and_then(Value::as_u64);
    if errors > max_errors {
        GiveUp::TooManyErrors
    } else if max_attempts.is_some_and(|m| attempts >= m) {
        GiveUp::AttemptsExhausted
    } else {
        GiveUp::TimedOut
    }
}

/// The children's results as the generated code expects them, from what the child
/// Task / Parallel / Map state added to the document.
pub(super) fn children_outcome(doc: &Value) -> Result<ChildrenOutcome, String> {
    let calls = doc
        .get("children")
        .and_then(Value::as_array)
        .ok_or("the document has no `children`")?;
    let ids: Vec<ExecutionId> = calls
        .iter()
        .enumerate()
        .map(|(i, c)| {
            c.get("id")
                .and_then(Value::as_str)
                .map(ExecutionId::from)
                .unwrap_or_else(|| ExecutionId::from(format!("child-{i}")))
        })
        .collect();
    if let Some(err) = doc.get("children_error") {
        let error = err.get("Error").and_then(Value::as_str).unwrap_or("");
        let cause = err.get("Cause").and_then(Value::as_str).unwrap_or("");
        // `startExecution.sync:2` fails with the child's description as the cause.
        let described: Option<Value> = serde_json::from_str(cause).ok();
        let input_id = described.as_ref().and_then(|d| {
            let input = d.get("Input")?;
            let input = match input {
                Value::String(s) => serde_json::from_str(s).ok()?,
                v => v.clone(),
            };
            input.get("id")?.as_str().map(str::to_owned)
        });
        let index = input_id
            .and_then(|id| ids.iter().position(|x| x.as_str() == id))
            .unwrap_or(0);
        let outcome = match described.as_ref() {
            // The child ran past its own `#[workflow(timeout)]` (its execution's
            // `TimeoutSeconds`): `.sync:2` fails with `States.TaskFailed` and describes it
            // as `TIMED_OUT`; natively the child's outcome is `TimedOut`.
            Some(d) if d.get("Status").and_then(Value::as_str) == Some("TIMED_OUT") => {
                Outcome::TimedOut
            }
            Some(d) if d.get("Error").is_some() => {
                let child_error = d.get("Error").and_then(Value::as_str).unwrap_or("");
                let child_cause = d.get("Cause").and_then(Value::as_str).unwrap_or("");
                match Json::parse(child_cause.to_owned()) {
                    Ok(v) if !StepError::is_fault(child_error) => Outcome::Failed(v),
                    _ => Outcome::Faulted(Fault::named(child_error, child_cause)),
                }
            }
            // The child Task's `TimeoutSeconds` (the `call_nested!`'s `#[timeout]`).
            _ if error == STATES_TIMEOUT => Outcome::TimedOut,
            _ => Outcome::Faulted(Fault::named(error, cause)),
        };
        let results = ids
            .into_iter()
            .enumerate()
            .map(|(i, id)| ChildResult {
                id,
                // Fail-fast: the siblings were stopped.
                outcome: if i == index {
                    outcome.clone()
                } else {
                    Outcome::Cancelled
                },
            })
            .collect();
        return Ok(ChildrenOutcome {
            results,
            failure: Some(index),
        });
    }
    let result = doc
        .get("children_result")
        .ok_or("the document has neither `children_result` nor `children_error`")?;
    let outputs: Vec<&Value> = match result {
        Value::Array(a) => a.iter().collect(),
        v => vec![v],
    };
    if outputs.len() != ids.len() {
        return Err(format!(
            "{} children were started and {} results came back",
            ids.len(),
            outputs.len()
        ));
    }
    let results = ids
        .into_iter()
        .zip(outputs)
        .map(|(id, r)| ChildResult {
            id,
            outcome: Outcome::Succeeded(r.get("output").map_or_else(Json::null, Json::from)),
        })
        .collect();
    Ok(ChildrenOutcome {
        results,
        failure: None,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Request {
    pub(super) workflow: String,
    pub(super) at: String,
    #[serde(default)]
    pub(super) execution: Option<String>,
    #[serde(default)]
    pub(super) document: Value,
    /// `$$.Task.Token`, for the Lambda of a callback's `.waitForTaskToken` Task.
    #[serde(default)]
    pub(super) token: Option<String>,
}

/// Which clock a step reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StepClock {
    /// The wall clock at the start of each invocation (production: Wait states really
    /// wait).
    #[default]
    Wall,
    /// Time carried in the document (`clock`, µs) and moved forward by exactly each
    /// requested wait: for local runs whose Wait states are overridden to not wait, so
    /// that poll timeouts fire as they do natively under virtual time.
    ///
    /// Retry delays are Step Functions' to wait and are not reported to the handler: a
    /// call whose retries were exhausted moves the clock by every retry's delay (without
    /// jitter), but a call that succeeded after some retries does not move it, since the
    /// handler cannot know how many there were. Nor does the time a call takes.
    Virtual,
}

/// Which Lambda state of the definition invoked the handler.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Role {
    Start,
    /// After a task without a policy, a wait, or a batch of children (whose results
    /// are in the document).
    After(usize),
    /// The call of a task with a policy, then the code after it.
    Call(usize),
    /// One call of a poll.
    Attempt(usize),
    /// The send of a callback's token (`$$.Task.Token`, in the request), in the
    /// callback's `.waitForTaskToken` Task.
    Send(usize),
}

impl Role {
    /// The resume point of the state a Lambda state in this role is given: the state
    /// after the task or wait it follows, or the state waiting in its node (a task with
    /// a policy before its call, a poll between attempts, a batch of children running).
    /// `None` for the start, which is given the input.
    pub(super) fn resumes(self, graph: &StateGraph) -> Option<ResumePoint> {
        match self {
            Role::Start => None,
            Role::After(k) if waits_in_node(&graph.nodes[k].kind) => Some(ResumePoint::Waiting(k)),
            Role::After(k) => Some(ResumePoint::After(k)),
            Role::Call(k) | Role::Attempt(k) | Role::Send(k) => Some(ResumePoint::Waiting(k)),
        }
    }

    /// Whether an answer whose `next` is `next` leads to a Lambda state in this role:
    /// the Lambdas of node `k` come after its own state (the task's Lambda, a Wait, a
    /// child Task, Parallel or Map) or after its `N: retry` Wait, and no other answer is
    /// routed there.
    pub(super) fn follows(self, layout: &Layout, next: &str) -> bool {
        match self {
            Role::Start => false,
            Role::After(k) | Role::Call(k) | Role::Attempt(k) | Role::Send(k) => {
                layout.main(k) == next || layout.nodes[k].retry.as_deref() == Some(next)
            }
        }
    }
}
