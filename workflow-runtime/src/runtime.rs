//! The runtime: registry, executions, inspection, cancellation, shutdown.
//!
//! Driving an execution is in `driver.rs`; resuming a store's unfinished executions after
//! a restart in `recovery.rs`.

use crate::execution::{ExecutionId, Outcome, Status};
use std::any::TypeId;
use std::fmt;
use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;

use crate::catalog::Catalog;
use crate::deps::{Deps, Fault};
use crate::driver::Drivers;
use crate::driver::Launch;
use crate::driver::{wait_done, Inner, Registration};
use crate::error::{
    BuildError, CorruptRow, LookupError, RunError, StartError, StoreError, DEFAULT_PAYLOAD_LIMIT,
};
use crate::history::Event;
use crate::json::Json;
use crate::registry::{self, WorkflowRef};
use crate::store::{
    ExecutionFilter, ExecutionRecord, ExecutionSummary, MemoryStore, SqliteStore, Store,
};
use crate::time::Timestamp;
use crate::workflow::{BoxFuture, Workflow};

/// Runs workflows: starts executions, drives their state machines, keeps their history.
///
/// Cheap to clone; every clone is the same runtime. See the [crate docs](crate) for an
/// example.
///
/// # Stopping
///
/// A runtime runs while a handle to it exists, as a tokio `Runtime` does: **dropping the
/// last clone stops it**. Every execution stops where it is, with nothing recorded (to
/// the store, as if the process had been killed there: [`recover`](Self::recover)
/// resumes them), and the runtime lets go of its store at once: a SQLite file opened by
/// [`Builder::sqlite`] is closed and unlocked before `drop` returns, so a new runtime
/// can open it right away, in this process or another.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use workflow_runtime::Runtime;
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("workflows.sqlite");
/// let first = Runtime::builder().sqlite(&path).build()?;
/// drop(first); // stops it and releases the file
/// let second = Runtime::builder().sqlite(&path).build()?;
/// second.recover().await?; // resumes what the first one left unfinished
/// # Ok(())
/// # }
/// ```
///
/// [`shutdown`](Self::shutdown) does the same and also waits until every execution's
/// task is gone. A store given to [`Builder::store`] is closed when its last clone is
/// dropped: one you kept stays open, with its lock. [`Execution`] handles do not keep a
/// runtime running: once it has stopped, their results end with [`RunError::Faulted`]
/// (unless they had ended before) and their store reads with [`StoreError::Stopped`].
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
    catalog: Arc<Catalog>,
    /// Shared by the handles only (the drivers hold `inner`): the last handle dropped
    /// stops the runtime.
    _stop: Arc<Stop>,
}

/// Stops the runtime when the last handle is dropped.
struct Stop(Arc<Inner>);

impl Drop for Stop {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// Configures a [`Runtime`]: which workflows, which dependencies, which store.
#[must_use]
pub struct Builder {
    registrations: Vec<WorkflowRef<Drivers>>,
    deps: Deps,
    store: Option<StoreChoice>,
    payload_limit: usize,
}

enum StoreChoice {
    Given(Arc<dyn Store>),
    Sqlite(PathBuf),
}

impl Builder {
    /// Registers a workflow, and every workflow it calls with `call_nested!`.
    pub fn register<W: Workflow>(mut self, _workflow: W) -> Self {
        self.registrations.push(WorkflowRef::of::<W>());
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
        self.store = Some(StoreChoice::Given(Arc::new(store)));
        self
    }

    /// Keeps executions in the SQLite file at `path` (created if missing), opened by
    /// [`build`](Self::build) with the default [`SqliteOptions`](crate::SqliteOptions).
    /// Call [`Runtime::recover`] after `build` to resume what a previous process left
    /// unfinished.
    pub fn sqlite(mut self, path: impl Into<PathBuf>) -> Self {
        self.store = Some(StoreChoice::Sqlite(path.into()));
        self
    }

    /// The largest serialized input or state an execution may have, in bytes
    /// ([`DEFAULT_PAYLOAD_LIMIT`], 256 KiB, if not set). A bigger input is refused by
    /// `start`; a bigger state faults its execution at that checkpoint, with nothing of
    /// it written.
    pub fn payload_limit(mut self, bytes: usize) -> Self {
        self.payload_limit = bytes;
        self
    }

    /// Checks the configuration and builds the runtime.
    ///
    /// Fails if a registered workflow (or one it calls) needs a dependency that was not
    /// provided, if two different workflows share a name, or if the SQLite file given to
    /// [`sqlite`](Self::sqlite) cannot be opened. Resuming stored executions is a separate,
    /// async step: [`Runtime::recover`].
    pub fn build(self) -> Result<Runtime, BuildError> {
        let linked = registry::link(self.registrations, Some(&self.deps))?;
        let catalog = Catalog::from_graphs(linked.values().map(|w| w.graph()));
        let workflows = linked
            .into_iter()
            .map(|(name, w)| {
                let registration = Registration {
                    name,
                    type_id: w.type_id,
                    driver: w.view,
                };
                (name, registration)
            })
            .collect();
        let store: Arc<dyn Store> = match self.store {
            None => Arc::new(MemoryStore::new()),
            Some(StoreChoice::Given(store)) => store,
            Some(StoreChoice::Sqlite(path)) => Arc::new(SqliteStore::open(path)?),
        };
        let inner = Arc::new(Inner::new(workflows, self.deps, store, self.payload_limit));
        Ok(Runtime {
            _stop: Arc::new(Stop(Arc::clone(&inner))),
            inner,
            catalog: Arc::new(catalog),
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
            payload_limit: DEFAULT_PAYLOAD_LIMIT,
        }
    }

    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }

    /// Starts an execution of `workflow` with a typed input, under a random id.
    ///
    /// Must be called within a tokio runtime: the execution runs on its own task.
    pub async fn start<W: Workflow>(
        &self,
        workflow: W,
        input: W::Input,
    ) -> Result<Execution<W>, StartError> {
        self.start_with_id(workflow, ExecutionId::new_random(), input)
            .await
    }

    /// Starts an execution of `workflow` under the id `id`: a second start with the same
    /// id fails with [`StoreError::AlreadyExists`] (like an execution name in Step
    /// Functions), so a caller that retries after a crash cannot start the work twice.
    ///
    /// An id must not be empty or contain `/`, which child ids use.
    pub async fn start_with_id<W: Workflow>(
        &self,
        _workflow: W,
        id: impl Into<ExecutionId>,
        input: W::Input,
    ) -> Result<Execution<W>, StartError> {
        let id = id.into();
        if id.as_str().is_empty() || id.as_str().contains('/') {
            return Err(StartError::InvalidId { id });
        }
        let registered = self.inner.workflows.get(W::NAME);
        if registered.is_none_or(|r| r.type_id != TypeId::of::<W>()) {
            return Err(StartError::NotRegistered {
                name: W::NAME.to_owned(),
            });
        }
        let input = Json::encode(&input).map_err(|source| StartError::InvalidInput {
            workflow: W::NAME,
            source,
        })?;
        let done = self
            .inner
            .launch(W::NAME, Launch::top_level(id.clone(), input))
            .await?;
        Ok(Execution {
            id,
            done: Some(done),
            inner: Arc::clone(&self.inner),
            _workflow: PhantomData,
        })
    }

    /// A typed handle on the execution `id` of workflow `W`, started by this runtime or
    /// another (before a restart, say): its typed [`result`](Execution::result), its
    /// [`history`](Execution::history), [`cancel`](Execution::cancel).
    ///
    /// Fails with [`LookupError::NotFound`] if there is no such execution and
    /// [`LookupError::WrongWorkflow`] if it is one of another workflow. After a restart,
    /// call [`recover`](Self::recover) first, so that an unfinished execution runs
    /// again and its result comes.
    ///
    /// ```
    /// # use workflow_runtime::{ExecutionId, LookupError, NoError, Runtime, Workflow};
    /// # async fn f<MainFlow: Workflow<Output = u32, Error = NoError>>(
    /// #     runtime: Runtime, id: ExecutionId,
    /// # ) -> Result<(), Box<dyn std::error::Error>> {
    /// // `id` was printed, or stored, by the program that started the execution.
    /// runtime.recover().await?;
    /// let execution = runtime.execution::<MainFlow>(&id).await?;
    /// let output: u32 = execution.result().await?;
    /// # Ok(()) }
    /// ```
    pub async fn execution<W: Workflow>(
        &self,
        id: &ExecutionId,
    ) -> Result<Execution<W>, LookupError> {
        let Some(record) = self.inner.store.get(id).await? else {
            return Err(LookupError::NotFound(id.clone()));
        };
        if record.workflow != W::NAME {
            return Err(LookupError::WrongWorkflow {
                id: record.id,
                expected: W::NAME,
                found: record.workflow,
            });
        }
        Ok(Execution {
            id: record.id,
            done: None,
            inner: Arc::clone(&self.inner),
            _workflow: PhantomData,
        })
    }

    /// Starts an execution of the workflow registered as `name`, with JSON input (a
    /// [`Json`] or a [`serde_json::Value`]).
    ///
    /// Input that does not deserialize into the workflow's input type is refused with
    /// [`StartError::InvalidInput`]; nothing is stored.
    pub async fn start_json(
        &self,
        name: &str,
        input: impl Into<Json>,
    ) -> Result<ExecutionId, StartError> {
        let input = input.into();
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
    ///
    /// Fails with [`StoreError::NotEnded`] for an execution that has not ended and is not
    /// running in this runtime (parked, of an unregistered workflow, or not recovered).
    pub async fn wait(&self, id: &ExecutionId) -> Result<Outcome, StoreError> {
        let live = self.inner.live().get(id).map(|l| l.done.clone());
        if let Some(done) = live {
            if let Some(outcome) = wait_done(done).await {
                return Ok(outcome);
            }
        }
        let record = self.record(id).await?;
        record.outcome.ok_or(StoreError::NotEnded {
            id: record.id,
            status: record.status,
        })
    }

    /// Cancels an execution and everything below it (its children, theirs, …), records
    /// it (status `Cancelled`, an `ExecutionCancelled` event each), and returns once
    /// every one of them has ended: then [`tree`](Self::tree) shows no `Running`
    /// execution below it. Returns `false` if the execution had already ended (or ended
    /// otherwise meanwhile).
    ///
    /// A running execution stops at its next yield point (a task in flight is dropped);
    /// it ends after its children. One that is not running here (parked, of a workflow
    /// this runtime does not register, or not recovered yet) is marked cancelled
    /// directly, and so are its unfinished children.
    pub async fn cancel(&self, id: &ExecutionId) -> Result<bool, StoreError> {
        self.inner.cancel(id).await
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

    /// The stored executions that match `filter` (by workflow, status, top-level only),
    /// oldest first.
    ///
    /// A stored row that does not decode (a status this version does not know, a
    /// timestamp that is not a number, …) does not fail the listing: it is reported in
    /// [`Listing::corrupt`], and the other executions are listed. A row is filtered by
    /// what is stored, so a row whose status does not decode shows up only in a listing
    /// that does not filter by status.
    ///
    /// ```no_run
    /// # async fn f(runtime: workflow_runtime::Runtime) -> Result<(), workflow_runtime::StoreError> {
    /// use workflow_runtime::{ExecutionFilter, Status};
    ///
    /// let running = runtime
    ///     .list(ExecutionFilter::new().workflow("NestingPatternMainStateMachine").status(Status::Running))
    ///     .await?;
    /// for summary in &running.executions {
    ///     println!("{} since {:?}", summary.id, summary.created_at);
    /// }
    /// for row in &running.corrupt {
    ///     eprintln!("{row}");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn list(&self, filter: ExecutionFilter) -> Result<Listing, StoreError> {
        let mut listing = Listing::default();
        for row in self.inner.store.list(&filter).await? {
            match row {
                Ok(summary) => listing.executions.push(summary),
                Err(corrupt) => listing.corrupt.push(corrupt),
            }
        }
        Ok(listing)
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

    /// The registered workflows (children included), with their graphs and ASL.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The names of the registered workflows (children included), sorted.
    pub fn workflows(&self) -> Vec<&'static str> {
        let mut names: Vec<_> = self.inner.workflows.keys().copied().collect();
        names.sort_unstable();
        names
    }

    /// Stops every execution where it is, without recording anything, waits until their
    /// tasks are gone, and drops this handle: to the store, the same as if the process
    /// had been killed at this point, so a later [`recover`](Self::recover) resumes them.
    ///
    /// Every clone of the runtime is stopped. The store (and, for SQLite, the file's
    /// lock) is released when the last clone is dropped, this one if it is the last
    /// ([dropping](Runtime#stopping) stops the runtime too, without waiting). Results
    /// awaited on an [`Execution`] end with [`RunError::Faulted`]. Nothing is recorded as
    /// cancelled: to end executions for good, [`cancel`](Self::cancel) them.
    pub async fn shutdown(self) {
        self.inner.halt().await;
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("workflows", &self.workflows())
            .finish_non_exhaustive()
    }
}

/// An execution of `W`: its id, its typed result once it ends, its history.
///
/// [`Runtime::start`] returns one; [`Runtime::execution`] makes one from an id (after a
/// restart, say). Cheap to clone. It does not keep the runtime running: see
/// [`Runtime`'s docs](Runtime#stopping).
#[must_use = "an execution runs on its own; keep the handle to read its result"]
pub struct Execution<W: Workflow> {
    id: ExecutionId,
    /// The end its driver reports, for one started here; otherwise it is looked for when
    /// the result is asked for.
    done: Option<watch::Receiver<Option<Outcome>>>,
    inner: Arc<Inner>,
    _workflow: PhantomData<fn() -> W>,
}

impl<W: Workflow> Clone for Execution<W> {
    fn clone(&self) -> Self {
        Execution {
            id: self.id.clone(),
            done: self.done.clone(),
            inner: Arc::clone(&self.inner),
            _workflow: PhantomData,
        }
    }
}

impl<W: Workflow> Execution<W> {
    /// The execution's id.
    pub fn id(&self) -> &ExecutionId {
        &self.id
    }

    /// Waits for the execution to end and returns its output or why there is none.
    ///
    /// An execution that has not ended and does not run in this runtime (parked, or not
    /// [recovered](Runtime::recover) yet) gives [`RunError::Faulted`] saying so.
    pub async fn result(self) -> Result<W::Output, RunError<W::Error>> {
        let stopped = || {
            let message = "the runtime stopped before the execution ended";
            RunError::Faulted(Fault::new(message))
        };
        let done =
            (self.done.clone()).or_else(|| self.inner.live().get(&self.id).map(|l| l.done.clone()));
        if let Some(mut done) = done {
            // Decoded from the channel's value, which other handles may share, not a copy.
            return match done.wait_for(Option::is_some).await {
                Ok(outcome) => decode::<W>(outcome.as_ref()),
                Err(_) => Err(stopped()),
            };
        }
        // Not running here: the store has its end, if it has one.
        let record = match self.inner.store.get(&self.id).await {
            Ok(Some(record)) => record,
            Ok(None) => return Err(fault(StoreError::NotFound(self.id.clone()))),
            Err(StoreError::Stopped) => return Err(stopped()),
            Err(e) => return Err(fault(e)),
        };
        match &record.outcome {
            Some(outcome) => decode::<W>(Some(outcome)),
            None => Err(fault(StoreError::NotEnded {
                id: record.id,
                status: record.status,
            })),
        }
    }

    /// The execution's history, oldest event first.
    pub async fn history(&self) -> Result<Vec<Event>, StoreError> {
        self.inner.store.history(&self.id).await
    }

    /// Its status now.
    pub async fn status(&self) -> Result<Status, StoreError> {
        match self.inner.store.get(&self.id).await? {
            Some(record) => Ok(record.status),
            None => Err(StoreError::NotFound(self.id.clone())),
        }
    }

    /// Cancels the execution and everything below it, and returns once all of them have
    /// ended; `false` if it had ended already. See [`Runtime::cancel`].
    pub async fn cancel(&self) -> Result<bool, StoreError> {
        self.inner.cancel(&self.id).await
    }
}

/// A store error as the fault of a result that cannot be read.
fn fault<E>(e: StoreError) -> RunError<E> {
    RunError::Faulted(Fault::new(e.to_string()))
}

/// Workflow `W`'s output or error, from how its execution ended.
fn decode<W: Workflow>(outcome: Option<&Outcome>) -> Result<W::Output, RunError<W::Error>> {
    let undecodable = |what: &str, e: serde_json::Error| {
        RunError::Faulted(Fault::new(format!("{what} does not decode: {e}")))
    };
    match outcome {
        Some(Outcome::Succeeded(v)) => v.decode().map_err(|e| undecodable("output", e)),
        Some(Outcome::Failed(v)) => match v.decode() {
            Ok(e) => Err(RunError::Failed(e)),
            Err(e) => Err(undecodable("error", e)),
        },
        Some(Outcome::Cancelled) => Err(RunError::Cancelled),
        Some(Outcome::TimedOut) => Err(RunError::TimedOut),
        Some(Outcome::Faulted(fault)) => Err(RunError::Faulted(fault.clone())),
        None => Err(RunError::Faulted(Fault::new(
            "the execution has no end yet",
        ))),
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

/// What [`Runtime::list`] found: the executions, and the rows that do not decode.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Listing {
    /// The executions that match, oldest first.
    pub executions: Vec<ExecutionSummary>,
    /// Stored rows that match but do not decode, oldest first: each names its execution
    /// and what is wrong with it.
    pub corrupt: Vec<CorruptRow>,
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
