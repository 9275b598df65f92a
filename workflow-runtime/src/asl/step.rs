//! One step of the step handler: decode the request's document, run the workflow's
//! step from where `at` says, and answer with what [`transition`] decides, as the
//! document the next state of the definition gets.

use std::panic::AssertUnwindSafe;
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::FutureExt;
use serde::Serialize;
use serde_json::Value;

use super::document::{
    callback_resolution, caught_of, children_outcome, find_poll, give_up, is_children, retried_for,
    role_of, CallbackAnswer, Request, Role, StepClock,
};
use super::handler::Config;
use super::sign::{StateKey, SIGNATURE};
use super::{whole_seconds, GiveUp, Layout};
use crate::callback::{CallbackError, CallbackResolution, CallbackStep, CallbackToken};
use crate::child::ChildrenOutcome;
use crate::context::StepCx;
use crate::deps::Fault;
use crate::graph::NodeKind;
use crate::graph::StateGraph;
use crate::history::EventKind;
use crate::json::Json;
use crate::store::{PendingBatch, PendingChild};
use crate::time::Timestamp;
use crate::transition::{batch_again, transition, End, Transition};
use crate::workflow::{ResumePoint, Workflow};

use super::error::StepError;

/// The handler's own fault: the request cannot go on for a reason of the runtime's.
fn fault(message: impl Into<String>) -> StepError {
    StepError::Fault(Fault::new(message))
}

/// Guards against a step function that keeps continuing without ever yielding; the
/// generated code never does, but the handler must not spin on a bad state.
const MAX_SILENT_STEPS: usize = 10_000;

pub(super) async fn run<W: Workflow>(
    request: Request,
    config: &Config,
) -> Result<Value, StepError> {
    let (deps, clock_mode, key) = (&config.deps, config.clock, config.key.as_ref());
    let graph = W::graph();
    let layout = Layout::of(graph);
    let invalid = |message: String| StepError::InvalidState {
        workflow: W::NAME,
        message,
    };
    let (role, caught) = role_of(&layout, graph, &request.at).ok_or_else(|| {
        StepError::InvalidRequest(format!(
            "`{}` is not a Lambda state of `{}`",
            request.at,
            W::NAME
        ))
    })?;
    // `$$.Execution.Id`: what signatures are bound to, and a top-level execution's id.
    let context = request.execution.filter(|e| !e.is_empty()).ok_or_else(|| {
        StepError::InvalidRequest(
            "the request has no `execution` (the Task state passes `$$.Execution.Id`)".into(),
        )
    })?;
    let mut doc = request.document;
    if role != Role::Start {
        check_document::<W>(&doc, role, &request.at, &layout, &context, key)?;
        // A document of an earlier build of this definition: its state in today's
        // encoding (the answer carries today's fingerprint).
        let found = doc.get("fingerprint").and_then(Value::as_str);
        let legacy = W::LEGACY
            .iter()
            .find(|l| found == Some(&l.fingerprint.to_string()));
        if let (Some(legacy), Some(state)) = (legacy, doc.get_mut("state")) {
            *state = legacy.upgrade(state.take()).map_err(invalid)?;
        }
    }
    let mut caught = if caught {
        Some(caught_of(&doc).map_err(invalid)?)
    } else {
        None
    };
    if let Some(c) = caught.as_ref().filter(|c| StepError::is_own(&c.error)) {
        // A fault that Step Functions caught (the call panicked as often as its policy
        // allows, or a Lambda refused): the execution's fault, as natively; the call's
        // code never sees it.
        let message = match &c.cause {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        return Err(StepError::Fault(Fault::named(&c.error, message)));
    }
    let wall = || {
        Timestamp(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
                .unwrap_or(0),
        )
    };
    let doc_clock = doc.get("clock").and_then(Value::as_u64).map(Timestamp);
    let mut clock = doc_clock.unwrap_or_else(wall);
    // What the step of a callback gets: at its Task, the token to send; at its resume
    // Lambda, how it was resolved.
    let mut callback = match role {
        Role::Send(_) => {
            let token = request
                .token
                .as_deref()
                .filter(|t| !t.is_empty())
                .ok_or_else(|| {
                    StepError::InvalidRequest(
                        "the request has no `token` (the callback's Task passes `$$.Task.Token`)"
                            .into(),
                    )
                })?;
            Some(CallbackStep::Send(CallbackToken::step_functions(token)))
        }
        Role::After(k) if matches!(graph.nodes[k].kind, NodeKind::Callback { .. }) => {
            let resolved = callback_resolution(&doc, graph.nodes[k].name)
                .map_err(|e| invalid(e.to_owned()))?
                .map_err(StepError::Fault)?;
            // Step Functions waited for the timeout without telling the handler.
            match resolved.resolution {
                CallbackResolution::TimedOut => clock = clock.after(resolved.timeout),
                CallbackResolution::HeartbeatTimedOut => {
                    clock = clock.after(resolved.heartbeat.unwrap_or_default());
                }
                _ => {}
            }
            Some(CallbackStep::Resolved(resolved))
        }
        _ => None,
    };
    if let (Some(c), Role::Call(k) | Role::Attempt(k)) = (&caught, role) {
        // Step Functions waited between its retries without telling the handler; if it
        // retried at all, it retried as often as the policy allows.
        clock = clock.after(retried_for(&graph.nodes[k].policy(), &c.error));
    }

    let (mut state, execution, mut batches, mut children): (W::State, String, u64, _) =
        if role == Role::Start {
            let input = doc.get("input").cloned().unwrap_or(Value::Null);
            let input: W::Input =
                serde_json::from_value(input).map_err(|e| StepError::InvalidInput {
                    workflow: W::NAME,
                    message: e.to_string(),
                })?;
            let execution = start_id(W::NAME, &doc, &context, key)?;
            (W::start(input), execution, 0, None)
        } else {
            let state: W::State = doc
                .get("state")
                .cloned()
                .ok_or_else(|| invalid("the document has no `state`".into()))
                .and_then(|s| crate::persist::from_value(s).map_err(|e| invalid(e.to_string())))?;
            // The root check: the state's variant is the one the code of `at` resumes.
            let resumes = W::resumes_at(&state);
            if role.resumes(graph) != Some(resumes) {
                return Err(invalid(format!(
                    "the state resumes {}, but `{}` runs the code {}",
                    describe(graph, Some(resumes)),
                    request.at,
                    describe(graph, role.resumes(graph)),
                )));
            }
            let execution = doc
                .get("execution")
                .and_then(Value::as_str)
                .filter(|e| !e.is_empty())
                .ok_or_else(|| invalid("the document has no `execution`".into()))?
                .to_owned();
            if key.is_none() && execution.contains('/') {
                // Only a child's id has a `/`, and without a key no id is a child's.
                return Err(StepError::InvalidRequest(format!(
                    "execution id `{execution}` contains `/`, which only a child's id given \
                     by a signed answer may"
                )));
            }
            let batches = doc.get("batches").and_then(Value::as_u64).unwrap_or(0);
            let children = match role {
                Role::After(k) if is_children(&graph.nodes[k].kind) => {
                    Some(children_outcome(&doc).map_err(invalid)?)
                }
                _ => None,
            };
            (state, execution, batches, children)
        };
    let poll_before = match role {
        Role::Attempt(_) => doc.get("state").and_then(find_poll).cloned(),
        _ => None,
    };
    // A retried batch's attempt count, as natively `Wait::Retry`'s `attempt`.
    let batch_retries = match role {
        Role::After(k) if is_children(&graph.nodes[k].kind) => doc
            .get("retries")
            .and_then(Value::as_u64)
            .map_or(0, |r| u32::try_from(r).unwrap_or(u32::MAX)),
        _ => 0,
    };

    // Every answer names the execution; `clock` only with the virtual clock.
    let answer = |next: String, clock: Timestamp| Answer {
        workflow: W::NAME,
        fingerprint: W::FINGERPRINT.to_string(),
        execution: execution.clone(),
        next,
        clock: (clock_mode == StepClock::Virtual).then_some(clock.0),
        ..Answer::default()
    };
    // An answer that goes on from `state`.
    let going_on = |next: String, state: &W::State, batches: u64, clock: Timestamp| {
        let state = serde_json::to_value(crate::persist::Saved(state))
            .map_err(|e| fault(format!("the state does not serialize: {e}")))?;
        Ok::<Answer, StepError>(Answer {
            batches: Some(batches),
            state: Some(state),
            ..answer(next, clock)
        })
    };
    let children_of = |batch: &PendingBatch| -> Vec<ChildCall> {
        batch
            .calls
            .iter()
            .enumerate()
            .map(|(i, c)| {
                // The native child id: `{parent}/{batch}.{index}`, which the child may
                // take with the ticket (see `start_id`).
                let id = format!("{execution}/{}.{i}", batch.batch);
                ChildCall {
                    ticket: key.map(|k| k.sign_child(&c.workflow, &id, &c.input.to_value())),
                    workflow: c.workflow.clone(),
                    input: c.input.clone(),
                    id,
                }
            })
            .collect()
    };

    let mut first = true;
    for _ in 0..MAX_SILENT_STEPS {
        let now = match clock_mode {
            StepClock::Virtual => clock,
            StepClock::Wall => wall(),
        };
        let mut cx = StepCx::at_time(now, graph, children.take());
        if first {
            cx.retries = batch_retries;
            cx.callback = callback.take();
        }
        if let Some(c) = caught.take() {
            cx.caught = Some(c);
            // Step Functions retried the call as often as the policy allows.
            cx.retries = u32::MAX;
        }
        // Otherwise `retries` stays 0: the handler cannot know how often Step Functions
        // already retried, so it asks for a retry whenever the policy would retry at all
        // and the state's `MaxAttempts` decides when to give up.
        // A panic answers this request with the fault, as natively; the handler (a
        // Lambda, a JSON-lines server) goes on serving.
        // As natively: a step span (its tasks' spans under it), in the invocation's span.
        let span = crate::telemetry::step_span(graph, W::resumes_at(&state).node());
        let step = match AssertUnwindSafe(crate::telemetry::instrument(
            W::step(state, deps, &mut cx),
            span,
        ))
        .catch_unwind()
        .await
        {
            Ok(step) => crate::workflow::Step::from_result(step),
            Err(payload) => return Err(StepError::Fault(Fault::panic(W::NAME, &*payload))),
        };
        let events = std::mem::take(&mut cx.events);
        let at = if first { role } else { Role::Start };
        first = false;
        let answer = match transition::<W>(step, now, &mut batches) {
            Transition::Continue(next) if matches!(at, Role::Call(_)) => {
                // This state's own call returned: it goes on with the code after it.
                state = next;
                continue;
            }
            Transition::Continue(next) => {
                let ran = events.iter().rev().find_map(|e| match e.kind {
                    EventKind::TaskSucceeded { .. } => e.state.as_deref(),
                    _ => None,
                });
                let Some(ran) = ran else {
                    // A poll that was ready or children that were decoded: nothing
                    // happened that a state stands for, so run on to the next yield.
                    state = next;
                    continue;
                };
                let k = graph
                    .nodes
                    .iter()
                    .position(|n| n.name == ran)
                    .ok_or_else(|| fault(format!("task at unknown node `{ran}`")))?;
                going_on(layout.main(k).to_owned(), &next, batches, clock)?
            }
            Transition::BeforeCall { node, state: next } => {
                going_on(layout.main(node).to_owned(), &next, batches, clock)?
            }
            Transition::Retry(retry) if matches!(at, Role::After(k) if k == retry.node && is_children(&graph.nodes[k].kind)) =>
            {
                // A `call_nested!` retries its whole batch, as natively: the state that
                // waited for the batch (the document's, as the step consumed it), the
                // same calls as a new batch, after the delay in `N: retry`.
                let retry_state = layout.nodes[retry.node].retry.clone().ok_or_else(|| {
                    fault(format!(
                        "`{}` retried a batch but has no retry state",
                        request.at
                    ))
                })?;
                let calls: Vec<PendingChild> = doc
                    .get("children")
                    .cloned()
                    .and_then(|c| serde_json::from_value(c).ok())
                    .ok_or_else(|| invalid("the document has no `children`".into()))?;
                let batch = PendingBatch {
                    batch: batches,
                    node: retry.node,
                    max_concurrency: None,
                    calls,
                    deadline: None,
                };
                clock = clock.after(retry.delay);
                let batch = batch_again(graph, batch, &mut batches, clock);
                Answer {
                    batches: Some(batches),
                    state: Some(doc.get("state").cloned().unwrap_or(Value::Null)),
                    wait_seconds: Some(whole_seconds(retry.delay)),
                    children: Some(children_of(&batch)),
                    retries: Some(retry.attempt),
                    ..answer(retry_state, clock)
                }
            }
            Transition::Retry(retry) => {
                // Only the state that makes the call has the `Retry` that matches it.
                if !matches!(at, Role::Call(k) | Role::Attempt(k) if k == retry.node) {
                    return Err(fault(format!(
                        "a retry of the call at `{}` asked for in state `{}`",
                        layout.main(retry.node),
                        request.at
                    )));
                }
                return Err(StepError::Task {
                    name: retry.error,
                    cause: retry.cause.to_string(),
                });
            }
            Transition::Wait {
                node,
                until,
                duration,
                state: next,
            } => {
                clock = until;
                Answer {
                    wait_seconds: Some(whole_seconds(duration)),
                    ..going_on(layout.main(node).to_owned(), &next, batches, clock)?
                }
            }
            Transition::Children { state: next, batch } => {
                if batch.calls.is_empty() {
                    // Natively an empty batch starts nothing and records nothing; a Map
                    // state over no items would be a state the native run never has.
                    children = Some(ChildrenOutcome {
                        results: Vec::new(),
                        failure: None,
                    });
                    state = next;
                    continue;
                }
                Answer {
                    children: Some(children_of(&batch)),
                    ..going_on(layout.main(batch.node).to_owned(), &next, batches, clock)?
                }
            }
            Transition::End(End::Succeeded(output)) => Answer {
                output: Some(output),
                ..answer(layout.succeed().to_owned(), clock)
            },
            Transition::End(End::Failed { name, error }) => {
                let next = match at {
                    Role::Attempt(k) => {
                        let g = give_up(poll_before.as_ref(), &events);
                        let i = GiveUp::ALL.iter().position(|x| *x == g).unwrap_or(0);
                        layout.nodes[k].give_up.get(i).cloned()
                    }
                    _ => None,
                };
                let next = next
                    .or_else(|| layout.fail().map(str::to_owned))
                    .ok_or_else(|| fault("the workflow cannot fail"))?;
                Answer {
                    error: Some(ErrorAnswer {
                        name,
                        cause: error.into_string(),
                    }),
                    ..answer(next, clock)
                }
            }
            Transition::Callback {
                node,
                state: next,
                timeout,
                heartbeat,
                ..
            } => Answer {
                callback: Some(CallbackAnswer {
                    timeout_seconds: whole_seconds(timeout).max(1),
                    heartbeat_seconds: heartbeat.map(|h| whole_seconds(h).max(1)),
                    timeout,
                    heartbeat,
                }),
                ..going_on(layout.main(node).to_owned(), &next, batches, clock)?
            },
            // The token is out: `.waitForTaskToken` ignores the Lambda's answer and waits
            // for the token to be completed.
            Transition::CallbackSent { sent, .. } if matches!(at, Role::Send(_)) => {
                return match sent {
                    Ok(()) => Ok(serde_json::json!({
                        "workflow": W::NAME,
                        "execution": execution,
                        "sent": true,
                    })),
                    // The Task's `Catch` hands it to the resume Lambda, as the error
                    // the workflow gets.
                    Err(message) => Err(StepError::Task {
                        name: CallbackError::NOT_SENT.to_owned(),
                        cause: Value::String(message).to_string(),
                    }),
                };
            }
            Transition::CallbackSent { .. } => {
                return Err(fault(format!(
                    "a callback's token was sent at `{}`, which is not its Task",
                    request.at
                )));
            }
            Transition::End(End::Faulted(fault)) => return Err(StepError::Fault(fault)),
        };
        let mut answer = serde_json::to_value(answer)
            .map_err(|e| fault(format!("the answer does not serialize: {e}")))?;
        if let Some(key) = key {
            let signature = key.sign_document(&context, &answer);
            answer[SIGNATURE] = Value::String(signature);
        }
        return Ok(answer);
    }
    Err(fault(format!(
        "the workflow ran {MAX_SILENT_STEPS} steps without reaching a yield point"
    )))
}

/// Checks a document that is not the start's before any of it is used: its signature
/// (with a key), that it is this workflow's at this definition, and that its `next`
/// leads to `at`.
fn check_document<W: Workflow>(
    doc: &Value,
    role: Role,
    at: &str,
    layout: &Layout,
    context: &str,
    key: Option<&StateKey>,
) -> Result<(), StepError> {
    let invalid = |message: String| StepError::InvalidState {
        workflow: W::NAME,
        message,
    };
    if let Some(key) = key {
        key.verify_document(context, doc).map_err(invalid)?;
    }
    if doc.get("workflow").and_then(Value::as_str) != Some(W::NAME) {
        return Err(invalid(
            "the document is not a state of this workflow".into(),
        ));
    }
    let found = doc.get("fingerprint").and_then(Value::as_str).unwrap_or("");
    let legacy = W::LEGACY.iter().any(|l| found == l.fingerprint.to_string());
    if found != W::FINGERPRINT.to_string() && !legacy {
        return Err(StepError::IncompatibleState {
            workflow: W::NAME,
            found: found.to_owned(),
            expected: W::FINGERPRINT,
        });
    }
    let next = doc
        .get("next")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("the document has no `next`".into()))?;
    if !role.follows(layout, next) {
        return Err(invalid(format!(
            "the document was answered for `{next}`, which does not lead to `{at}`"
        )));
    }
    Ok(())
}

/// A start's execution id: the id its parent chose for a child, with a valid ticket
/// (only with a key), else `$$.Execution.Id`. An `id` in the input alone is not
/// believed; an id with `/` (a child's) that did not come with its ticket is refused.
fn start_id(
    workflow: &str,
    doc: &Value,
    context: &str,
    key: Option<&StateKey>,
) -> Result<String, StepError> {
    let ticket = doc.get("ticket").and_then(Value::as_str);
    if let (Some(key), Some(ticket)) = (key, ticket) {
        let id = doc.get("id").and_then(Value::as_str).unwrap_or("");
        let input = doc.get("input").unwrap_or(&Value::Null);
        if id.is_empty() || !key.verify_child(workflow, id, input, ticket) {
            return Err(StepError::InvalidRequest(format!(
                "the input's `id` and `ticket` do not match: not a child that this \
                 handler's answer started as `{workflow}` with this input"
            )));
        }
        return Ok(id.to_owned());
    }
    if context.contains('/') {
        return Err(StepError::InvalidRequest(format!(
            "execution id `{context}` contains `/`, which only a child's id given by a \
             signed answer may"
        )));
    }
    Ok(context.to_owned())
}

/// A resume point in words, for errors.
fn describe(graph: &StateGraph, at: Option<ResumePoint>) -> String {
    let name = |k: usize| graph.nodes.get(k).map_or("?", |n| n.name);
    match at {
        None | Some(ResumePoint::Start) => "from the start".to_owned(),
        Some(ResumePoint::Waiting(k)) => format!("waiting in `{}`", name(k)),
        Some(ResumePoint::After(k)) => format!("after `{}`", name(k)),
    }
}

/// The step handler's answer: the execution's JSON until the next Lambda state (see the
/// module docs for each field).
#[derive(Debug, Default, Serialize)]
pub(crate) struct Answer {
    workflow: &'static str,
    fingerprint: String,
    execution: String,
    next: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    batches: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    wait_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    children: Option<Vec<ChildCall>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retries: Option<u32>,
    /// For a callback's Task: its limits.
    #[serde(skip_serializing_if = "Option::is_none")]
    callback: Option<CallbackAnswer>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<Json>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorAnswer>,
    #[serde(skip_serializing_if = "Option::is_none")]
    clock: Option<u64>,
}

/// A child for a child Task, Parallel or Map state to start.
#[derive(Debug, Serialize)]
struct ChildCall {
    workflow: String,
    input: Json,
    id: String,
    /// The MAC that lets the child take `id` (`null` without a key: the child Task's
    /// `Input` reads the field, so it is always there).
    ticket: Option<String>,
}

/// The workflow's error, for the Fail state.
#[derive(Debug, Serialize)]
struct ErrorAnswer {
    /// Its [name](crate::WorkflowError::error_name), the Fail state's `Error`.
    name: String,
    /// The error as JSON text, its `Cause`.
    cause: String,
}
