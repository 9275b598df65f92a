//! The runtime: registry, drivers, children, cancellation.

use std::any::TypeId;
use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::child::{ChildBatch, ChildResult, ChildrenOutcome, Outcome};
use crate::context::{to_json, Deps, StepCx};
use crate::error::{BuildError, RunError, StartError, StoreError};
use crate::history::{Event, EventKind};
use crate::store::{Checkpoint, ExecutionRecord, MemoryStore, Status, Store};
use crate::time::{Clock, Timestamp};
use crate::workflow::{BoxFuture, Linker, Step, Workflow};
use crate::ExecutionId;

/// Runs workflows: starts executions, drives their state machines, keeps their history.
///
/// Cheap to clone; every clone is the same runtime. See the [crate docs](crate) for an
/// example.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

/// Configures a [`Runtime`]: which workflows, which dependencies, which store.
#[must_use]
pub struct Builder {
    registrations: Vec<Registration>,
    deps: Deps,
    store: Option<Arc<dyn Store>>,
}

struct Inner {
    workflows: HashMap<&'static str, Registration>,
    deps: Deps,
    store: Arc<dyn Store>,
    clock: Clock,
    live: Mutex<HashMap<ExecutionId, Live>>,
}

struct Live {
    cancel: CancellationToken,
    done: watch::Receiver<Option<Outcome>>,
}

/// A registered workflow, with its type erased so the registry can hold many kinds.
#[derive(Clone)]
pub(crate) struct Registration {
    name: &'static str,
    type_id: TypeId,
    link: fn(&mut Linker),
    driver: Arc<dyn Erased>,
}

impl Registration {
    pub(crate) fn of<W: Workflow>() -> Self {
        Registration {
            name: W::NAME,
            type_id: TypeId::of::<W>(),
            link: W::link,
            driver: Arc::new(Typed::<W>(PhantomData)),
        }
    }
}

impl Builder {
    /// Registers a workflow, and every workflow it calls with `call_nested!`.
    pub fn register<W: Workflow>(mut self, _workflow: W) -> Self {
        self.registrations.push(Registration::of::<W>());
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

    /// Where executions are kept; a [`MemoryStore`] if not set.
    pub fn store(mut self, store: impl Store) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// Checks the configuration and builds the runtime.
    ///
    /// Fails if a registered workflow (or one it calls) needs a dependency that was not
    /// provided, or if two different workflows share a name.
    pub fn build(self) -> Result<Runtime, BuildError> {
        let mut workflows: HashMap<&'static str, Registration> = HashMap::new();
        let mut pending = self.registrations;
        while let Some(reg) = pending.pop() {
            if let Some(existing) = workflows.get(reg.name) {
                if existing.type_id != reg.type_id {
                    return Err(BuildError::DuplicateName { name: reg.name });
                }
                continue;
            }
            let mut linker = Linker::default();
            (reg.link)(&mut linker);
            for (type_id, type_name) in linker.dependencies {
                if !self.deps.contains(type_id) {
                    return Err(BuildError::MissingDependency {
                        workflow: reg.name,
                        type_name,
                    });
                }
            }
            pending.extend(linker.children);
            workflows.insert(reg.name, reg);
        }
        Ok(Runtime {
            inner: Arc::new(Inner {
                workflows,
                deps: self.deps,
                store: self.store.unwrap_or_else(|| Arc::new(MemoryStore::new())),
                clock: Clock::new(),
                live: Mutex::new(HashMap::new()),
            }),
        })
    }
}

impl Runtime {
    /// A builder with no workflows, no dependencies and a [`MemoryStore`].
    pub fn builder() -> Builder {
        Builder {
            registrations: Vec::new(),
            deps: Deps::default(),
            store: None,
        }
    }

    /// Starts an execution of `workflow` with a typed input.
    ///
    /// Must be called within a tokio runtime: the execution runs on its own task.
    pub async fn start<W: Workflow>(
        &self,
        _workflow: W,
        input: W::Input,
    ) -> Result<Execution<W>, StartError> {
        let registered = self.inner.workflows.get(W::NAME);
        if registered.is_none_or(|r| r.type_id != TypeId::of::<W>()) {
            return Err(StartError::NotRegistered {
                name: W::NAME.to_owned(),
            });
        }
        let input = serde_json::to_value(&input).map_err(|source| StartError::InvalidInput {
            workflow: W::NAME,
            source,
        })?;
        let id = ExecutionId::new_random();
        let done = self
            .inner
            .launch(W::NAME, Launch::top_level(id.clone(), input))
            .await?;
        Ok(Execution {
            id,
            done,
            _workflow: PhantomData,
        })
    }

    /// Starts an execution of the workflow registered as `name`, with JSON input.
    ///
    /// Input that does not deserialize into the workflow's input type is refused with
    /// [`StartError::InvalidInput`]; nothing is stored.
    pub async fn start_json(&self, name: &str, input: Value) -> Result<ExecutionId, StartError> {
        let workflow = self
            .inner
            .workflows
            .get(name)
            .ok_or_else(|| StartError::NotRegistered {
                name: name.to_owned(),
            })?
            .name;
        let id = ExecutionId::new_random();
        self.inner
            .launch(workflow, Launch::top_level(id.clone(), input))
            .await?;
        Ok(id)
    }

    /// Waits for an execution to end and returns how it ended.
    pub async fn wait(&self, id: &ExecutionId) -> Result<Outcome, StoreError> {
        let live = self.inner.live().get(id).map(|l| l.done.clone());
        if let Some(done) = live {
            if let Some(outcome) = wait_done(done).await {
                return Ok(outcome);
            }
        }
        let record = self.record(id).await?;
        record.outcome.ok_or_else(|| {
            StoreError::Backend(format!(
                "execution `{id}` is not running here and has no outcome"
            ))
        })
    }

    /// Cancels a running execution and, through it, its running children.
    ///
    /// Returns `false` if the execution has already ended.
    pub async fn cancel(&self, id: &ExecutionId) -> Result<bool, StoreError> {
        let token = self.inner.live().get(id).map(|l| l.cancel.clone());
        match token {
            Some(token) => {
                token.cancel();
                Ok(true)
            }
            None => self.record(id).await.map(|_| false),
        }
    }

    /// The stored record of an execution.
    pub async fn record(&self, id: &ExecutionId) -> Result<ExecutionRecord, StoreError> {
        self.inner
            .store
            .get(id)
            .await?
            .ok_or_else(|| StoreError::NotFound(id.clone()))
    }

    /// An execution's history, oldest event first.
    pub async fn history(&self, id: &ExecutionId) -> Result<Vec<Event>, StoreError> {
        self.inner.store.history(id).await
    }

    /// An execution with its children, their children, and so on.
    pub fn tree<'a>(
        &'a self,
        id: &'a ExecutionId,
    ) -> BoxFuture<'a, Result<ExecutionTree, StoreError>> {
        Box::pin(async move {
            let record = self.record(id).await?;
            let mut children = Vec::new();
            for child in self.inner.store.children(id).await? {
                children.push(self.tree(&child).await?);
            }
            Ok(ExecutionTree {
                id: record.id,
                workflow: record.workflow,
                status: record.status,
                created_at: record.created_at,
                updated_at: record.updated_at,
                children,
            })
        })
    }

    /// The names of the registered workflows (children included), sorted.
    pub fn workflows(&self) -> Vec<&'static str> {
        let mut names: Vec<_> = self.inner.workflows.keys().copied().collect();
        names.sort_unstable();
        names
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("workflows", &self.workflows())
            .finish_non_exhaustive()
    }
}

/// A started execution of `W`: its id, and its typed result once it ends.
#[must_use = "an execution runs on its own; keep the handle to read its result"]
pub struct Execution<W: Workflow> {
    id: ExecutionId,
    done: watch::Receiver<Option<Outcome>>,
    _workflow: PhantomData<W>,
}

impl<W: Workflow> Execution<W> {
    /// The execution's id.
    pub fn id(&self) -> &ExecutionId {
        &self.id
    }

    /// Waits for the execution to end and returns its output or why there is none.
    pub async fn result(self) -> Result<W::Output, RunError<W::Error>> {
        let outcome = wait_done(self.done).await.unwrap_or_else(|| {
            Outcome::Faulted("the runtime stopped before the execution ended".into())
        });
        match outcome {
            Outcome::Succeeded(v) => serde_json::from_value(v)
                .map_err(|e| RunError::Faulted(format!("output does not decode: {e}"))),
            Outcome::Failed(v) => match serde_json::from_value(v) {
                Ok(e) => Err(RunError::Failed(e)),
                Err(e) => Err(RunError::Faulted(format!("error does not decode: {e}"))),
            },
            Outcome::Cancelled => Err(RunError::Cancelled),
            Outcome::Faulted(message) => Err(RunError::Faulted(message)),
        }
    }
}

impl<W: Workflow> fmt::Debug for Execution<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Execution")
            .field("workflow", &W::NAME)
            .field("id", &self.id)
            .finish()
    }
}

async fn wait_done(mut done: watch::Receiver<Option<Outcome>>) -> Option<Outcome> {
    done.wait_for(Option::is_some).await.ok()?.clone()
}

/// An execution and its descendants, as [`Runtime::tree`] returns it.
#[derive(Clone, Debug, PartialEq)]
pub struct ExecutionTree {
    /// The execution's id.
    pub id: ExecutionId,
    /// Its workflow's name.
    pub workflow: String,
    /// Its status.
    pub status: Status,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was last checkpointed (when it ended, for an ended one).
    pub updated_at: Timestamp,
    /// Its children, in the order they were started.
    pub children: Vec<ExecutionTree>,
}

impl ExecutionTree {
    fn write(
        &self,
        f: &mut fmt::Formatter<'_>,
        prefix: &str,
        parent: Option<&ExecutionId>,
        last: bool,
    ) -> fmt::Result {
        let (branch, indent) = match (parent, last) {
            (None, _) => ("", ""),
            (Some(_), false) => ("├─ ", "│  "),
            (Some(_), true) => ("└─ ", "   "),
        };
        // A child's id repeats its parent's; show only what it adds.
        let id = parent
            .and_then(|p| self.id.as_str().strip_prefix(p.as_str()))
            .map_or_else(|| self.id.to_string(), |rest| format!("…{rest}"));
        let took = self.updated_at.since(self.created_at);
        writeln!(
            f,
            "{prefix}{branch}{} {id} {:?} ({took:.2?})",
            self.workflow, self.status
        )?;
        let prefix = format!("{prefix}{indent}");
        for (i, child) in self.children.iter().enumerate() {
            child.write(f, &prefix, Some(&self.id), i + 1 == self.children.len())?;
        }
        Ok(())
    }
}

impl fmt::Display for ExecutionTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, "", None, true)
    }
}

// ---------------------------------------------------------------------------------------
// Launching and driving executions.

/// A finished child, reported to its parent's batch: (index in the batch, id, outcome).
type ChildDone = (usize, ExecutionId, Outcome);

struct Launch {
    id: ExecutionId,
    parent: Option<ExecutionId>,
    input: Value,
    cancel: CancellationToken,
    notify: Option<(mpsc::UnboundedSender<ChildDone>, usize)>,
}

impl Launch {
    fn top_level(id: ExecutionId, input: Value) -> Self {
        Launch {
            id,
            parent: None,
            input,
            cancel: CancellationToken::new(),
            notify: None,
        }
    }
}

/// The registry's view of a workflow type.
trait Erased: Send + Sync {
    fn launch<'a>(
        &'a self,
        rt: &'a Arc<Inner>,
        launch: Launch,
    ) -> BoxFuture<'a, Result<watch::Receiver<Option<Outcome>>, StartError>>;
}

struct Typed<W>(PhantomData<fn() -> W>);

impl<W: Workflow> Erased for Typed<W> {
    fn launch<'a>(
        &'a self,
        rt: &'a Arc<Inner>,
        launch: Launch,
    ) -> BoxFuture<'a, Result<watch::Receiver<Option<Outcome>>, StartError>> {
        Box::pin(async move {
            let input: W::Input =
                serde_json::from_value(launch.input.clone()).map_err(|source| {
                    StartError::InvalidInput {
                        workflow: W::NAME,
                        source,
                    }
                })?;
            let state = W::start(input);
            let bytes = serde_json::to_vec(&state).map_err(|source| StartError::InvalidInput {
                workflow: W::NAME,
                source,
            })?;
            let now = rt.clock.now();
            let started = Event {
                at: now,
                state: None,
                kind: EventKind::ExecutionStarted {
                    input: launch.input.clone(),
                    parent: launch.parent.clone(),
                },
            };
            let record = ExecutionRecord {
                id: launch.id.clone(),
                workflow: W::NAME.to_owned(),
                parent: launch.parent,
                status: Status::Running,
                input: launch.input,
                state: bytes,
                outcome: None,
                wake_at: None,
                created_at: now,
                updated_at: now,
            };
            rt.store.create(record, vec![started]).await?;
            let (tx, rx) = watch::channel(None);
            rt.live().insert(
                launch.id.clone(),
                Live {
                    cancel: launch.cancel.clone(),
                    done: rx.clone(),
                },
            );
            let driver = Driver {
                rt: Arc::clone(rt),
                id: launch.id,
                cancel: launch.cancel,
            };
            tokio::spawn(driver.run::<W>(state, tx, launch.notify));
            Ok(rx)
        })
    }
}

impl Inner {
    fn live(&self) -> MutexGuard<'_, HashMap<ExecutionId, Live>> {
        // Entries are inserted and removed whole, so a poisoned map is still consistent.
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn launch(
        self: &Arc<Self>,
        workflow: &str,
        launch: Launch,
    ) -> Result<watch::Receiver<Option<Outcome>>, StartError> {
        let registration =
            self.workflows
                .get(workflow)
                .ok_or_else(|| StartError::NotRegistered {
                    name: workflow.to_owned(),
                })?;
        registration.driver.launch(self, launch).await
    }
}

/// Drives one execution: step, checkpoint, wait for what the step asked for, repeat.
struct Driver {
    rt: Arc<Inner>,
    id: ExecutionId,
    cancel: CancellationToken,
}

impl Driver {
    async fn run<W: Workflow>(
        self,
        state: W::State,
        done: watch::Sender<Option<Outcome>>,
        notify: Option<(mpsc::UnboundedSender<ChildDone>, usize)>,
    ) {
        let outcome = self.drive::<W>(state).await;
        self.rt.live().remove(&self.id);
        if let Some((tx, index)) = notify {
            // The parent may have been cancelled and gone; then nobody needs the result.
            let _ = tx.send((index, self.id.clone(), outcome.clone()));
        }
        done.send_replace(Some(outcome));
    }

    async fn drive<W: Workflow>(&self, mut state: W::State) -> Outcome {
        let graph = W::graph();
        let mut carried: Vec<Event> = Vec::new();
        let mut children: Option<ChildrenOutcome> = None;
        // Numbers the child batches of this execution; with the batch index it names the
        // children deterministically.
        let mut batches: u64 = 0;
        loop {
            let mut cx = StepCx::new(self.rt.clock, graph, children.take());
            cx.events = std::mem::take(&mut carried);
            let step = tokio::select! {
                biased;
                () = self.cancel.cancelled() => None,
                step = W::step(state, &self.rt.deps, &mut cx) => Some(step),
            };
            let mut events = cx.events;
            let Some(step) = step else {
                return self.finish(Outcome::Cancelled, events).await;
            };
            match step {
                Step::Continue(next) => {
                    if let Err(outcome) = self.checkpoint(encode::<W>(&next), None, events).await {
                        return outcome;
                    }
                    state = next;
                }
                Step::Sleep {
                    node,
                    state: next,
                    duration,
                } => {
                    let until = self.rt.clock.now().after(duration);
                    let name = graph.nodes.get(node).map(|n| n.name.into());
                    events.push(Event {
                        at: self.rt.clock.now(),
                        state: name.clone(),
                        kind: EventKind::WaitStarted { until },
                    });
                    if let Err(outcome) = self
                        .checkpoint(encode::<W>(&next), Some(until), events)
                        .await
                    {
                        return outcome;
                    }
                    tokio::select! {
                        biased;
                        () = self.cancel.cancelled() => {
                            return self.finish(Outcome::Cancelled, Vec::new()).await;
                        }
                        () = tokio::time::sleep(duration) => {}
                    }
                    carried.push(Event {
                        at: self.rt.clock.now(),
                        state: name,
                        kind: EventKind::WaitEnded,
                    });
                    state = next;
                }
                Step::Children { state: next, batch } => {
                    if let Some(fault) = batch.fault {
                        return self
                            .finish(Outcome::Faulted(fault.message().into()), events)
                            .await;
                    }
                    if let Err(outcome) = self.checkpoint(encode::<W>(&next), None, events).await {
                        return outcome;
                    }
                    batches += 1;
                    match self
                        .run_children(graph.nodes[batch.node].name, batches, batch)
                        .await
                    {
                        Some(outcome) => children = Some(outcome),
                        None => return self.finish(Outcome::Cancelled, Vec::new()).await,
                    }
                    state = next;
                }
                Step::Succeed(output) => {
                    return self
                        .finish(Outcome::Succeeded(to_json(&output)), events)
                        .await;
                }
                Step::Fail(error) => {
                    return self.finish(Outcome::Failed(to_json(&error)), events).await;
                }
                Step::Fault(fault) => {
                    return self
                        .finish(Outcome::Faulted(fault.message().into()), events)
                        .await;
                }
            }
        }
    }

    /// Persists a non-terminal state; on failure the execution faults (the previous
    /// checkpoint stays the last one written).
    async fn checkpoint(
        &self,
        state: Result<Vec<u8>, String>,
        wake_at: Option<Timestamp>,
        events: Vec<Event>,
    ) -> Result<(), Outcome> {
        let bytes = match state {
            Ok(bytes) => bytes,
            Err(message) => return Err(self.finish(Outcome::Faulted(message), events).await),
        };
        let checkpoint = Checkpoint {
            id: self.id.clone(),
            status: Status::Running,
            state: Some(bytes),
            outcome: None,
            wake_at,
            events,
            at: self.rt.clock.now(),
        };
        self.rt.store.checkpoint(checkpoint).await.map_err(|e| {
            tracing::error!(execution = %self.id, error = %e, "checkpoint failed");
            Outcome::Faulted(format!("checkpoint failed: {e}"))
        })
    }

    /// Writes the terminal checkpoint.
    async fn finish(&self, outcome: Outcome, mut events: Vec<Event>) -> Outcome {
        let kind = match &outcome {
            Outcome::Succeeded(output) => EventKind::ExecutionSucceeded {
                output: output.clone(),
            },
            Outcome::Failed(error) => EventKind::ExecutionFailed {
                error: error.clone(),
            },
            Outcome::Cancelled => EventKind::ExecutionCancelled,
            Outcome::Faulted(message) => EventKind::ExecutionFaulted {
                message: message.clone(),
            },
        };
        let at = self.rt.clock.now();
        events.push(Event {
            at,
            state: None,
            kind,
        });
        let checkpoint = Checkpoint {
            id: self.id.clone(),
            status: Status::of(&outcome),
            state: None,
            outcome: Some(outcome.clone()),
            wake_at: None,
            events,
            at,
        };
        if let Err(e) = self.rt.store.checkpoint(checkpoint).await {
            tracing::error!(execution = %self.id, error = %e, "terminal checkpoint failed");
            return Outcome::Faulted(format!("terminal checkpoint failed: {e}"));
        }
        outcome
    }

    /// Runs a batch of children: at most `max_concurrency` at once, results in input
    /// order, and fail-fast (the first failure cancels the running siblings and no new
    /// child starts). `None` if this execution itself was cancelled meanwhile.
    async fn run_children(
        &self,
        node: &'static str,
        batch_no: u64,
        batch: ChildBatch,
    ) -> Option<ChildrenOutcome> {
        let total = batch.calls.len();
        let limit = batch.max_concurrency.unwrap_or(total).max(1);
        let siblings = self.cancel.child_token();
        let (tx, mut rx) = mpsc::unbounded_channel::<ChildDone>();
        // Deterministic ids: the n-th batch of a parent always names its children the same
        // way, so a resumed parent finds them instead of starting more.
        let child_id = |i: usize| ExecutionId::from(format!("{}/{batch_no}.{i}", self.id));
        let mut results: Vec<Option<ChildResult>> = vec![None; total];
        let mut calls = batch.calls.into_iter().enumerate();
        let mut running = 0usize;
        let mut failure = None;
        loop {
            while failure.is_none() && running < limit {
                let Some((i, call)) = calls.next() else { break };
                let id = child_id(i);
                let launch = Launch {
                    id: id.clone(),
                    parent: Some(self.id.clone()),
                    input: call.input,
                    cancel: siblings.child_token(),
                    notify: Some((tx.clone(), i)),
                };
                match self.rt.launch(call.workflow, launch).await {
                    Ok(_) => {
                        running += 1;
                        self.append(
                            node,
                            EventKind::ChildStarted {
                                child: id,
                                workflow: call.workflow.to_owned(),
                            },
                        )
                        .await;
                    }
                    Err(e) => {
                        let outcome = Outcome::Faulted(format!("child could not start: {e}"));
                        self.append(
                            node,
                            EventKind::ChildFailed {
                                child: id.clone(),
                                error: Value::String(e.to_string()),
                            },
                        )
                        .await;
                        results[i] = Some(ChildResult { id, outcome });
                        failure = Some(i);
                        siblings.cancel();
                    }
                }
            }
            if running == 0 {
                break;
            }
            let (i, id, outcome) = tokio::select! {
                biased;
                () = self.cancel.cancelled() => return None,
                done = rx.recv() => done?,
            };
            running -= 1;
            let kind = match &outcome {
                Outcome::Succeeded(_) => EventKind::ChildSucceeded { child: id.clone() },
                Outcome::Failed(error) => EventKind::ChildFailed {
                    child: id.clone(),
                    error: error.clone(),
                },
                Outcome::Faulted(message) => EventKind::ChildFailed {
                    child: id.clone(),
                    error: Value::String(message.clone()),
                },
                Outcome::Cancelled => EventKind::ChildCancelled { child: id.clone() },
            };
            self.append(node, kind).await;
            if !outcome.is_success() && failure.is_none() {
                failure = Some(i);
                siblings.cancel();
            }
            results[i] = Some(ChildResult { id, outcome });
        }
        let results = results
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                // Children never started because a sibling failed first.
                r.unwrap_or_else(|| ChildResult {
                    id: child_id(i),
                    outcome: Outcome::Cancelled,
                })
            })
            .collect();
        Some(ChildrenOutcome { results, failure })
    }

    async fn append(&self, node: &'static str, kind: EventKind) {
        let event = Event {
            at: self.rt.clock.now(),
            state: Some(node.into()),
            kind,
        };
        if let Err(e) = self.rt.store.append(&self.id, vec![event]).await {
            tracing::error!(execution = %self.id, error = %e, "history append failed");
        }
    }
}

/// Serializes a state for a checkpoint. Done synchronously, before the store is awaited,
/// so that drivers do not hold `&W::State` across an await (which would require the
/// user's state types to be `Sync`).
fn encode<W: Workflow>(state: &W::State) -> Result<Vec<u8>, String> {
    serde_json::to_vec(state)
        .map_err(|e| format!("state of workflow `{}` does not serialize: {e}", W::NAME))
}
