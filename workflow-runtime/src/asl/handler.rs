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
//!  "output": …,                                         // for Succeed
//!  "error": {"name": "Poll.TimedOut", "cause": "<the error as JSON>"}, // for Fail
//!  "clock": 1700000000000000}                           // virtual clock only
//! ```
//!
//! A child Task, Parallel or Map adds its result as `children_result` (`{"output": …}`,
//! or a list of them) or its failure as `children_error` (`{"Error", "Cause"}`, the
//! `Cause` being the `startExecution.sync:2` description of the failed child, whose
//! `Input.id` says which child it was); the resume Lambda decodes them.
//!
//! Bad requests are answered with a [`StepError`], whose [`name`](StepError::name)
//! (`Workflow.InvalidRequest`, `Workflow.UnknownWorkflow`, …) a `Catch` can match.
//! Fingerprints are strings because JavaScript numbers (and so the JSON of some
//! interpreters) cannot hold every `u64`.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::{json, Value};

use super::{emit, error_name, GiveUp, Layout, StateMachine};
use crate::child::{ChildResult, ChildrenOutcome, Outcome};
use crate::context::{to_json, Deps, StepCx};
use crate::error::BuildError;
use crate::graph::{NodeKind, StateGraph};
use crate::history::{EventKind, PollOutcome};
use crate::registry::{self, WorkflowRef};
use crate::time::Timestamp;
use crate::workflow::{BoxFuture, Step, Workflow};
use crate::ExecutionId;

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
}

impl StepError {
    /// The ASL error name (`Workflow.InvalidState`, …).
    pub fn name(&self) -> &'static str {
        match self {
            StepError::InvalidRequest(_) => "Workflow.InvalidRequest",
            StepError::UnknownWorkflow(_) => "Workflow.UnknownWorkflow",
            StepError::InvalidInput { .. } => "Workflow.InvalidInput",
            StepError::InvalidState { .. } => "Workflow.InvalidState",
            StepError::IncompatibleState { .. } => "Workflow.IncompatibleState",
            StepError::Fault(_) => "Workflow.Fault",
        }
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
    /// After a task, a wait, or a batch of children (whose results are in the document).
    After(usize),
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
    let role = role_of(&layout, graph, &request.at).ok_or_else(|| {
        StepError::InvalidRequest(format!(
            "`{}` is not a Lambda state of `{}`",
            request.at,
            W::NAME
        ))
    })?;
    let doc = request.document;
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

    let base = |state: &W::State, batches: u64, clock: Timestamp| -> Result<Value, StepError> {
        let mut doc = json!({
            "workflow": W::NAME,
            "fingerprint": W::FINGERPRINT.to_string(),
            "execution": execution,
            "batches": batches,
            "state": serde_json::to_value(state)
                .map_err(|e| StepError::Fault(format!("the state does not serialize: {e}")))?,
        });
        if clock_mode == StepClock::Virtual {
            doc["clock"] = json!(clock.0);
        }
        Ok(doc)
    };
    let end = |next: &str, key: &str, value: Value, clock: Timestamp| {
        let mut doc = json!({
            "workflow": W::NAME,
            "fingerprint": W::FINGERPRINT.to_string(),
            "execution": execution,
            "next": next,
        });
        doc[key] = value;
        if clock_mode == StepClock::Virtual {
            doc["clock"] = json!(clock.0);
        }
        doc
    };

    let mut first = true;
    for _ in 0..MAX_SILENT_STEPS {
        let now = match clock_mode {
            StepClock::Virtual => clock,
            StepClock::Wall => wall(),
        };
        let mut cx = StepCx::at_time(now, graph, children.take());
        let step = W::step(state, deps, &mut cx).await;
        let events = std::mem::take(&mut cx.events);
        let attempt = if first { role } else { Role::Start };
        first = false;
        match step {
            Step::Continue(next) => {
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
                let mut doc = base(&next, batches, clock)?;
                doc["next"] = json!(layout.main(k));
                return Ok(doc);
            }
            Step::Task { node, state: next } => {
                let mut doc = base(&next, batches, clock)?;
                doc["next"] = json!(layout.main(node));
                return Ok(doc);
            }
            Step::Retry(retry) => {
                return Err(StepError::Fault(format!(
                    "retries are not supported by the step handler yet ({})",
                    retry.error
                )))
            }
            Step::Sleep {
                node,
                state: next,
                duration,
            } => {
                clock = clock.after(duration);
                let mut doc = base(&next, batches, clock)?;
                doc["next"] = json!(layout.main(node));
                doc["wait_seconds"] = json!(whole_seconds(duration));
                return Ok(doc);
            }
            Step::Children { state: next, batch } => {
                if let Some(fault) = batch.fault {
                    return Err(StepError::Fault(fault.message().to_owned()));
                }
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
                batches += 1;
                let calls: Vec<Value> = batch
                    .calls
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        json!({
                            "workflow": c.workflow,
                            "input": c.input,
                            // The native child id: `{parent}/{batch}.{index}`.
                            "id": format!("{execution}/{batches}.{i}"),
                        })
                    })
                    .collect();
                let mut doc = base(&next, batches, clock)?;
                doc["next"] = json!(layout.main(batch.node));
                doc["children"] = Value::Array(calls);
                return Ok(doc);
            }
            Step::Succeed(output) => {
                return Ok(end(layout.succeed(), "output", to_json(&output), clock));
            }
            Step::Fail(error) => {
                let error = to_json(&error);
                let next = match attempt {
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
                let value = json!({"name": error_name(&error), "cause": error.to_string()});
                return Ok(end(&next, "error", value, clock));
            }
            Step::Fault(fault) => return Err(StepError::Fault(fault.message().to_owned())),
        }
    }
    Err(StepError::Fault(format!(
        "the workflow ran {MAX_SILENT_STEPS} steps without reaching a yield point"
    )))
}

fn role_of(layout: &Layout, graph: &StateGraph, at: &str) -> Option<Role> {
    if at == layout.start {
        return Some(Role::Start);
    }
    layout.nodes.iter().enumerate().find_map(|(k, n)| {
        let after = match graph.nodes[k].kind {
            NodeKind::Task => n.main.as_deref(),
            _ => n.resume.as_deref(),
        };
        if after == Some(at) {
            Some(Role::After(k))
        } else if n.attempt.as_deref() == Some(at) {
            Some(Role::Attempt(k))
        } else {
            None
        }
    })
}

fn is_children(kind: &NodeKind) -> bool {
    matches!(
        kind,
        NodeKind::Child { .. } | NodeKind::Parallel { .. } | NodeKind::Map { .. }
    )
}

/// Whole seconds for a Wait state, rounded up so that a wait is never shorter than asked.
fn whole_seconds(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
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
            Some(d) if d.get("Error").is_some() => {
                let child_error = d.get("Error").and_then(Value::as_str).unwrap_or("");
                let child_cause = d.get("Cause").and_then(Value::as_str).unwrap_or("");
                match serde_json::from_str::<Value>(child_cause) {
                    Ok(v) if !child_error.starts_with("Workflow.") => Outcome::Failed(v),
                    _ => Outcome::Faulted(format!("{child_error}: {child_cause}")),
                }
            }
            _ if error == "States.Timeout" => Outcome::Faulted("the child timed out".into()),
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
            outcome: Outcome::Succeeded(r.get("output").cloned().unwrap_or(Value::Null)),
        })
        .collect();
    Ok(ChildrenOutcome {
        results,
        failure: None,
    })
}
