//! The step handler: the function behind the Lambda Task states of the emitted ASL.
//!
//! # Protocol
//!
//! Request (the Lambda event, built by the Task state's `Parameters`):
//!
//! ```json
//! {"workflow": "Name", "at": "<the Task state's name>", "execution": "<$$.Execution.Id>",
//!  "document": <the execution's JSON: {"input": …} at `Start`, else the last answer>}
//! ```
//!
//! Answer (it becomes the execution's JSON):
//!
//! ```json
//! {"workflow": "Name", "fingerprint": "<u64 as a string>", "execution": "<id>",
//!  "batches": 0, "state": <the state enum>, "next": "<state to go to>",
//!  "wait_seconds": 10,                                  // for a Wait
//!  "children": [{"workflow": "…", "input": …, "id": "…"}], // for a child/Parallel/Map
//!  "retries": 1,                // a `call_nested!`'s batch run again: the attempt count
//!  "output": …,                                         // for Succeed
//!  "error": {"name": "Workflow.PollTimedOut", "cause": "<the error as JSON>"}, // for Fail
//!  "clock": 1700000000000000}                           // virtual clock only
//! ```
//!
//! A child Task, Parallel or Map adds its result as `children_result` (`{"output": …}`,
//! or a list of them) or its failure as `children_error` (`{"Error", "Cause"}`, the
//! `Cause` being the `startExecution.sync:2` description of the failed child, whose
//! `Input.id` says which child it was; a child that timed out is described with
//! `"Status": "TIMED_OUT"`); the resume Lambda decodes them. When the code retries the
//! batch (a `call_nested!` with a retry policy), the resume Lambda answers the same
//! `state`, the same calls as the next batch (new ids), `wait_seconds` (the delay,
//! rounded up), `retries` (read back into the attempt count when the new batch is
//! decoded) and `next` = the node's `N: retry` Wait.
//!
//! A task or poll with a policy adds, in the Lambda that its `Catch` leads to, the
//! error Step Functions caught as `caught` (`{"Error", "Cause"}`); the call is not made
//! again, the error is its result.
//!
//! Bad requests are answered with a [`StepError`], whose [`name`](StepError::name)
//! (`Workflow.InvalidRequest`, `Workflow.UnknownWorkflow`, …) a `Catch` can match. A
//! call that its policy retries is answered with [`StepError::Task`], named as the
//! call's error, which the Task state's `Retry` matches.
//! Fingerprints are strings because JavaScript numbers (and so the JSON of some
//! interpreters) cannot hold every `u64`.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{emit, whole_seconds, GiveUp, Layout, StateMachine};
use crate::child::{ChildResult, ChildrenOutcome};
use crate::context::{Caught, Deps, StepCx, STATES_TIMEOUT};
use crate::error::BuildError;
use crate::execution::{ExecutionId, Outcome};
use crate::graph::{NodeKind, StateGraph};
use crate::history::{EventKind, PollOutcome};
use crate::json::Json;
use crate::registry::{self, WorkflowRef};
use crate::retry::{Policy, TaskTimeout};
use crate::store::{PendingBatch, PendingChild};
use crate::time::Timestamp;
use crate::transition::{batch_again, transition, End, Transition};
use crate::workflow::{BoxFuture, Workflow};

/// Why the step handler refused a request. Answered to Step Functions as a Lambda error
/// whose type is [`name`](Self::name).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StepError {
    /// The request is not the JSON the Task states send.
    #[error("invalid step request: {0}")]
    InvalidRequest(String),
    /// No workflow of that name is registered with the handler.
    #[error("no workflow named `{0}` is registered with the step handler")]
    UnknownWorkflow(String),
    /// The execution's input does not deserialize into the workflow's input type.
    #[error("invalid input for workflow `{workflow}`: {message}")]
    InvalidInput {
        /// The workflow.
        workflow: &'static str,
        /// Why.
        message: String,
    },
    /// The document's state does not decode, or is not where `at` says.
    #[error("invalid state for workflow `{workflow}`: {message}")]
    InvalidState {
        /// The workflow.
        workflow: &'static str,
        /// Why.
        message: String,
    },
    /// The state was written by another version of the workflow.
    #[error("the state of `{workflow}` has fingerprint {found}, this handler's definition has {expected}; deploy the matching handler")]
    IncompatibleState {
        /// The workflow.
        workflow: &'static str,
        /// The fingerprint in the document.
        found: String,
        /// This handler's.
        expected: u64,
    },
    /// The runtime could not go on (a missing dependency, an input that does not
    /// serialize), as `ExecutionFaulted` natively.
    #[error("{0}")]
    Fault(String),
    /// The call of a task or poll failed with an error its retry policy retries: the
    /// Task state's `Retry` (with the same error names) runs the step again, and once
    /// it gives up, its `Catch` hands the error to the code. Not a problem of the
    /// request: the handler's way to say "retry me".
    #[error("{cause}")]
    Task {
        /// The error's name ([`WorkflowError::error_name`]).
        ///
        /// [`WorkflowError::error_name`]: crate::WorkflowError::error_name
        name: String,
        /// The error as JSON text (what a `Catch` gets as `Cause`).
        cause: String,
    },
}

impl StepError {
    /// The names of the handler's own errors, which are never a workflow's.
    const OWN: [&'static str; 6] = [
        "Workflow.InvalidRequest",
        "Workflow.UnknownWorkflow",
        "Workflow.InvalidInput",
        "Workflow.InvalidState",
        "Workflow.IncompatibleState",
        "Workflow.Fault",
    ];

    /// The ASL error name (`Workflow.InvalidState`, …; a call's own error name for
    /// [`StepError::Task`]).
    pub fn name(&self) -> &str {
        match self {
            StepError::InvalidRequest(_) => Self::OWN[0],
            StepError::UnknownWorkflow(_) => Self::OWN[1],
            StepError::InvalidInput { .. } => Self::OWN[2],
            StepError::InvalidState { .. } => Self::OWN[3],
            StepError::IncompatibleState { .. } => Self::OWN[4],
            StepError::Fault(_) => Self::OWN[5],
            StepError::Task { name, .. } => name,
        }
    }

    /// Whether an ASL error of this name says the execution could not go on (the
    /// handler refused a request, or Step Functions' own `States.…` errors) rather than
    /// that the workflow failed with one of its errors.
    pub(crate) fn is_fault(name: &str) -> bool {
        Self::OWN.contains(&name) || name.starts_with(crate::retry::RESERVED_PREFIX)
    }
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

/// Builds a [`StepHandler`].
#[derive(Default)]
pub struct StepHandlerBuilder {
    entries: Vec<WorkflowRef>,
    deps: Deps,
    clock: StepClock,
}

impl StepHandlerBuilder {
    /// Serves workflow `W`, and every workflow it calls with `call_nested!` (each child
    /// execution invokes the same handler).
    pub fn register<W: Workflow>(mut self, _workflow: W) -> Self {
        self.entries.push(WorkflowRef::of::<W>());
        self
    }

    /// Provides the value injected into every `&T` workflow parameter.
    pub fn dependency<T: Send + Sync + 'static>(self, value: T) -> Self {
        self.dependency_arc(Arc::new(value))
    }

    /// Like [`dependency`](Self::dependency), for a value that is already shared.
    pub fn dependency_arc<T: Send + Sync + 'static>(mut self, value: Arc<T>) -> Self {
        self.deps.insert_arc(value);
        self
    }

    /// Which clock steps read; [`StepClock::Wall`] by default.
    pub fn clock(mut self, clock: StepClock) -> Self {
        self.clock = clock;
        self
    }

    /// Checks that every dependency is there (the same checks as
    /// [`Builder::build`](crate::Builder::build)).
    pub fn build(self) -> Result<StepHandler, BuildError> {
        let workflows = registry::link(self.entries, &self.deps)?
            .into_iter()
            .map(|(name, w)| (name, (w.entry)()))
            .collect();
        Ok(StepHandler {
            workflows,
            deps: self.deps,
            clock: self.clock,
        })
    }
}

/// Runs one step of a registered workflow per request; see the module docs for the
/// JSON it takes and gives.
///
/// ```no_run
/// # async fn f(request: serde_json::Value) {
/// use workflow_runtime::asl::StepHandler;
/// let handler = StepHandler::builder() /* .register(run_job).dependency(svc) */
///     .build()
///     .unwrap();
/// match handler.handle(request).await {
///     Ok(document) => { /* the next execution JSON */ }
///     Err(e) => eprintln!("{}: {e}", e.name()),
/// }
/// # }
/// ```
pub struct StepHandler {
    workflows: HashMap<&'static str, Arc<dyn Entry>>,
    deps: Deps,
    clock: StepClock,
}

impl std::fmt::Debug for StepHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepHandler")
            .field("workflows", &self.workflows())
            .field("clock", &self.clock)
            .finish()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Request {
    workflow: String,
    at: String,
    #[serde(default)]
    execution: Option<String>,
    #[serde(default)]
    document: Value,
}

impl StepHandler {
    /// A builder.
    pub fn builder() -> StepHandlerBuilder {
        StepHandlerBuilder::default()
    }

    /// The registered workflows' names, sorted.
    pub fn workflows(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = self.workflows.keys().copied().collect();
        names.sort_unstable();
        names
    }

    /// The ASL of every registered workflow, sorted by name.
    pub fn state_machines(&self) -> Vec<StateMachine> {
        self.workflows()
            .into_iter()
            .filter_map(|n| self.workflows.get(n))
            .map(|e| emit::emit(e.graph()))
            .collect()
    }

    /// Writes `<name>.asl.json` (pretty) for every registered workflow into `dir`.
    pub fn write_asl(&self, dir: &std::path::Path) -> std::io::Result<Vec<std::path::PathBuf>> {
        std::fs::create_dir_all(dir)?;
        let mut written = Vec::new();
        for m in self.state_machines() {
            let path = dir.join(format!("{}.asl.json", m.workflow()));
            std::fs::write(&path, m.to_pretty() + "\n")?;
            written.push(path);
        }
        Ok(written)
    }

    /// Runs one step for `request` and answers the next execution document.
    pub async fn handle(&self, request: Value) -> Result<Value, StepError> {
        let request: Request = serde_json::from_value(request)
            .map_err(|e| StepError::InvalidRequest(e.to_string()))?;
        let entry = self
            .workflows
            .get(request.workflow.as_str())
            .ok_or_else(|| StepError::UnknownWorkflow(request.workflow.clone()))?;
        entry.run(request, &self.deps, self.clock).await
    }
}

/// The handler's view of a workflow type.
pub(crate) trait Entry: Send + Sync {
    fn graph(&self) -> &'static StateGraph;
    fn run<'a>(
        &'a self,
        request: Request,
        deps: &'a Deps,
        clock: StepClock,
    ) -> BoxFuture<'a, Result<Value, StepError>>;
}

pub(crate) struct Typed<W>(pub(crate) PhantomData<fn() -> W>);

impl<W: Workflow> Entry for Typed<W> {
    fn graph(&self) -> &'static StateGraph {
        W::graph()
    }
    fn run<'a>(
        &'a self,
        request: Request,
        deps: &'a Deps,
        clock: StepClock,
    ) -> BoxFuture<'a, Result<Value, StepError>> {
        Box::pin(run::<W>(request, deps, clock))
    }
}

/// Which Lambda state of the definition invoked the handler.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Role {
    Start,
    /// After a task without a policy, a wait, or a batch of children (whose results
    /// are in the document).
    After(usize),
    /// The call of a task with a policy, then the code after it.
    Call(usize),
    /// One call of a poll.
    Attempt(usize),
}

/// Guards against a step function that keeps continuing without ever yielding; the
/// generated code never does, but the handler must not spin on a bad state.
const MAX_SILENT_STEPS: usize = 10_000;

async fn run<W: Workflow>(
    request: Request,
    deps: &Deps,
    clock_mode: StepClock,
) -> Result<Value, StepError> {
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
    let doc = request.document;
    let mut caught = if caught {
        Some(caught_of(&doc).map_err(invalid)?)
    } else {
        None
    };
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
            // A child gets the id its parent chose (as natively), a top-level execution
            // its own execution id.
            let execution = doc
                .get("id")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .or(request.execution)
                .unwrap_or_else(|| "execution".to_owned());
            (W::start(input), execution, 0, None)
        } else {
            if doc.get("workflow").and_then(Value::as_str) != Some(W::NAME) {
                return Err(invalid(
                    "the document is not a state of this workflow".into(),
                ));
            }
            let found = doc.get("fingerprint").and_then(Value::as_str).unwrap_or("");
            if found != W::FINGERPRINT.to_string() {
                return Err(StepError::IncompatibleState {
                    workflow: W::NAME,
                    found: found.to_owned(),
                    expected: W::FINGERPRINT,
                });
            }
            let state = doc
                .get("state")
                .cloned()
                .ok_or_else(|| invalid("the document has no `state`".into()))
                .and_then(|s| serde_json::from_value(s).map_err(|e| invalid(e.to_string())))?;
            let execution = doc
                .get("execution")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("the document has no `execution`".into()))?
                .to_owned();
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
        let state = serde_json::to_value(state)
            .map_err(|e| StepError::Fault(format!("the state does not serialize: {e}")))?;
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
            .map(|(i, c)| ChildCall {
                workflow: c.workflow.clone(),
                input: c.input.clone(),
                // The native child id: `{parent}/{batch}.{index}`.
                id: format!("{execution}/{}.{i}", batch.batch),
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
        }
        if let Some(c) = caught.take() {
            cx.caught = Some(c);
            // Step Functions retried the call as often as the policy allows.
            cx.retries = u32::MAX;
        }
        // Otherwise `retries` stays 0: the handler cannot know how often Step Functions
        // already retried, so it asks for a retry whenever the policy would retry at all
        // and the state's `MaxAttempts` decides when to give up.
        let step = W::step(state, deps, &mut cx).await;
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
                    .ok_or_else(|| StepError::Fault(format!("task at unknown node `{ran}`")))?;
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
                    StepError::Fault(format!(
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
                    return Err(StepError::Fault(format!(
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
                    .ok_or_else(|| StepError::Fault("the workflow cannot fail".into()))?;
                Answer {
                    error: Some(ErrorAnswer {
                        name,
                        cause: error.into_string(),
                    }),
                    ..answer(next, clock)
                }
            }
            Transition::End(End::Faulted(message)) => return Err(StepError::Fault(message)),
        };
        return serde_json::to_value(answer)
            .map_err(|e| StepError::Fault(format!("the answer does not serialize: {e}")));
    }
    Err(StepError::Fault(format!(
        "the workflow ran {MAX_SILENT_STEPS} steps without reaching a yield point"
    )))
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
}

/// The workflow's error, for the Fail state.
#[derive(Debug, Serialize)]
struct ErrorAnswer {
    /// Its [name](crate::WorkflowError::error_name), the Fail state's `Error`.
    name: String,
    /// The error as JSON text, its `Cause`.
    cause: String,
}

/// The role of Lambda state `at`, and whether it is a `…: caught` state (whose
/// document holds the error Step Functions caught).
fn role_of(layout: &Layout, graph: &StateGraph, at: &str) -> Option<(Role, bool)> {
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
            NodeKind::Task | NodeKind::Poll => None,
            _ if is(&n.resume) => Some((Role::After(k), false)),
            _ => None,
        }
    })
}

/// How long Step Functions waited between the retries of a call that failed with `error`
/// before its `Catch` took it: every retry's delay (without jitter) if the policy retries
/// that error, else nothing.
fn retried_for(policy: &Policy, error: &str) -> Duration {
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
fn caught_of(doc: &Value) -> Result<Caught, String> {
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
fn decode_cause(cause: &str) -> Value {
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

fn is_children(kind: &NodeKind) -> bool {
    matches!(
        kind,
        NodeKind::Child { .. } | NodeKind::Parallel { .. } | NodeKind::Map { .. }
    )
}

/// The `PollState` inside a serialized state enum (the waiting variant holds one).
fn find_poll(v: &Value) -> Option<&Value> {
    match v {
        Value::Object(m) => m
            .get("__wf_poll")
            .or_else(|| m.values().find_map(find_poll)),
        Value::Array(a) => a.iter().find_map(find_poll),
        _ => None,
    }
}

/// Why the attempt in `events` made the poll give up, from its state before the attempt
/// (the same rules as `PollState::attempt`, in the same order).
fn give_up(before: Option<&Value>, events: &[crate::history::Event]) -> GiveUp {
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
    let config = p.get("config");
    let errors = n(p.get("errors")) + u64::from(errored);
    let attempts = n(p.get("attempts")) + 1;
    let max_errors = n(config.and_then(|c| c.get("max_errors")));
    let max_attempts = config
        .and_then(|c| c.get("max_attempts"))
        .and_then(Value::as_u64);
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
fn children_outcome(doc: &Value) -> Result<ChildrenOutcome, String> {
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
                    _ => Outcome::Faulted(format!("{child_error}: {child_cause}")),
                }
            }
            // The child Task's `TimeoutSeconds` (the `call_nested!`'s `#[timeout]`).
            _ if error == STATES_TIMEOUT => Outcome::TimedOut,
            _ => Outcome::Faulted(format!("{error}: {cause}")),
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
