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

use serde::Deserialize;
use serde_json::Value;

use super::{emit, StateMachine};
use crate::context::Deps;
use crate::error::BuildError;
use crate::graph::StateGraph;
use crate::registry::{self, WorkflowRef};
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
    pub(super) at: String,
    #[serde(default)]
    pub(super) execution: Option<String>,
    #[serde(default)]
    pub(super) document: Value,
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
        Box::pin(super::step::run::<W>(request, deps, clock))
    }
}
