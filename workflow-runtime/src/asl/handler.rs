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

use serde_json::Value;

use super::document::Request;
use super::document::StepClock;
use super::error::StepError;
use super::{emit, StateMachine};
use crate::deps::Deps;
use crate::error::BuildError;
use crate::graph::StateGraph;
use crate::registry::{self, View, WorkflowRef};
use crate::workflow::{BoxFuture, Workflow};

/// Builds a [`StepHandler`].
#[derive(Default)]
pub struct StepHandlerBuilder {
    entries: Vec<WorkflowRef<Entries>>,
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
            .map(|(name, w)| (name, w.view))
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

/// The step handler's view of the registered workflows: an [`Entry`] each.
pub(crate) struct Entries;

impl View for Entries {
    type Of = Arc<dyn Entry>;
    fn of<W: Workflow>() -> Arc<dyn Entry> {
        Arc::new(Typed::<W>(PhantomData))
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
