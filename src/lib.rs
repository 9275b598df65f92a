//! Durable workflows written as Rust `async fn`s.
//!
//! `#[workflow]` compiles an `async fn` into an explicit, serializable state machine; the
//! [`Runtime`] drives it, checkpoints it after every yield point and records its history.
//! Inside a workflow, [`poll_until!`] is the call–wait–poll–check loop of a slow service,
//! [`call_nested!`] runs other workflows as child executions (one, a fixed set, or one per
//! item with bounded concurrency), [`sleep!`] is a durable timer, and
//! [`wait_for_callback!`] hands a token to the outside world and waits until someone
//! completes it ([`Runtime::complete`]).
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use workflow::prelude::*;
//!
//! /// A service the workflow calls. `&Jobs` parameters are injected, never persisted.
//! struct Jobs;
//!
//! impl Jobs {
//!     async fn start(&self, size: u32) -> Result<u64, String> {
//!         Ok(u64::from(size) * 100)
//!     }
//!     async fn status(&self, job: &u64) -> Result<Status, String> {
//!         Ok(Status { job: *job, done: true })
//!     }
//! }
//!
//! #[derive(Debug, Serialize, Deserialize)]
//! struct Status {
//!     job: u64,
//!     done: bool,
//! }
//!
//! #[derive(WorkflowError, Debug, Serialize, Deserialize, thiserror::Error)]
//! enum JobError {
//!     #[error("service: {0}")]
//!     Service(String),
//!     #[error(transparent)]
//!     #[workflow_error(transparent)]
//!     Poll(#[from] PollError),
//! }
//!
//! impl From<String> for JobError {
//!     fn from(e: String) -> Self {
//!         JobError::Service(e)
//!     }
//! }
//!
//! #[workflow]
//! async fn run_job(jobs: &Jobs, size: u32) -> Result<u64, JobError> {
//!     let job: u64 = jobs.start(size).await?; // a task: its result is checkpointed
//!     let status: Polled<Status> = poll_until!(
//!         jobs.status(&job),
//!         |s| s.done,
//!         every = 10.millis(),
//!         timeout = 5.secs(),
//!     )?;
//!     Ok(status.value.job + u64::from(status.attempts))
//! }
//!
//! #[workflow]
//! async fn two_jobs(sizes: Vec<u32>) -> Result<Vec<u64>, NestedError<JobError>> {
//!     let jobs: Vec<u64> = call_nested!(for s in sizes => run_job(s), max_concurrency = 2)?;
//!     Ok(jobs)
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let runtime = Runtime::builder()
//!     .register(two_jobs) // and run_job, which it calls
//!     .dependency(Jobs)
//!     .build()?;
//! let execution = runtime.start(two_jobs, vec![1, 2]).await?;
//! assert_eq!(execution.result().await?, vec![101, 201]);
//! # Ok(())
//! # }
//! ```
//!
//! # Getting started
//!
//! This crate is version 0.1.0 of the `workflow` package, not on crates.io: depend on
//! it by path (or git). With the crates a program and its error types use:
//!
//! ```toml
//! [dependencies]
//! workflow = { path = "../workflow" }  # or { git = "<this repository's URL>" }
//! tokio = { version = "1", features = ["macros", "rt-multi-thread"] }
//! serde = { version = "1", features = ["derive"] }
//! thiserror = "2"
//! ```
//!
//! The README's "Getting started" has a complete first program, with a workflow, its
//! children and a SQLite file; `tests/getting_started.rs` builds and runs it, as a crate
//! of its own, from the README's text. [`prelude`] has the names a program needs;
//! [`store`] the ones a [`Store`](store::Store) implementation needs.
//!
//! # What `#[workflow]` generates
//!
//! For `async fn run_job(jobs: &Jobs, size: u32) -> Result<u64, JobError>`, the macro
//! emits, in place of the function:
//!
//! ```text
//! pub struct run_job;                       // the workflow, a unit struct
//! enum State {                              // persisted after every yield point
//!     Start { size: u32 },
//!     AfterJobsStart { job: u64 },          // only the locals still needed later
//!     PollJobsStatus { job: u64, poll: PollState },
//!     AfterPollJobsStatus { status: Polled<Status> },
//! }
//! impl Workflow for run_job {
//!     const NAME = "run_job"; type Input = u32; type Output = u64; type Error = JobError;
//!     fn graph() -> &StateGraph;            // nodes "jobs.start", "poll jobs.status", …
//!     fn step(state, deps, cx) -> Step;     // runs from one resume point to the next
//!     fn resumes_at(&state) -> ResumePoint; // the variant's node, checked by the step handler
//! }
//! ```
//!
//! # Rules of the body
//!
//! - Yield points are statements: `let x: T = call().await?;`, `call().await;`,
//!   `x = call().await;`, `total += call().await;`, `let v: Polled<T> = poll_until!(…)?;`,
//!   `let r: T = call_nested!(…)?;`, `sleep!(d);`, `let v: T = wait_for_callback!(…)?;`
//!   (the body's tail may be one too). Each
//!   `.await` is a task whose result is checkpointed.
//! - They may sit inside `if` / `else if` / `else`, `if let`, `match` (guards, arms that
//!   yield), `loop` / `while` / `while let` / `for`, labelled blocks (`'b: { … }`, with a
//!   value: `let x: T = 'b: { …; break 'b v; … };`), with `break` (and `break value`),
//!   `continue` (labelled or not), early `return` and `?` anywhere, before or after the
//!   yield points.
//! - A `for` loop around a yield point iterates over an owned collection or a range: its
//!   remaining items are persisted, and each is decoded again where the loop resumes, so
//!   the item type must show in the code: a typed local (`items`, `items.clone()`), a
//!   range with a typed or suffixed bound (`0..n`, `0..n % 4`, `0..3u32`, `0..v.len()`),
//!   `vec![…]` of typed values, or an enclosing `for` whose items are typed. Otherwise
//!   rustc may not infer it (`cannot add () to u32`): bind the items to a typed local
//!   first, `let xs: Vec<u32> = vec![1, 2]; for x in xs { … }`.
//! - A yield point inside a closure, an async block, a nested item, a condition or a
//!   larger expression (`f(x.await)`) is a compile error that says what to write instead.
//! - An `async` block awaited as a statement (`let v: T = async { … }.await?;`) is one
//!   task: the `.await`s inside it are its own, not yield points, and its value is
//!   checkpointed once, when it ends (a crash re-runs all of it). A `.await` inside a
//!   closure that is not async is a compile error.
//! - A local used after a yield point is persisted there, so it needs a type annotation,
//!   an owned type and `Serialize + Deserialize`; locals that die before the next yield
//!   need none. A name bound by a `match`/`if let`/`while let` pattern and used after a
//!   yield point is re-bound with a type first (`let v: T = v;`).
//! - Owned parameters are the input (one parameter: its type; several: a tuple). `&T`
//!   parameters are dependencies given to [`Builder::dependency`].
//! - The return type is `Result<T, E>` or a plain `T`; `T` and `E` are persisted and must be
//!   serializable.
//!
//! # Children and their errors
//!
//! `call_nested!` gives a child's result, or a [`NestedError`] with the child's own error
//! type, which `?` converts into the parent's error. Two things keep that short:
//!
//! - **A `parallel(…)` set of children with different error types** fails with the error
//!   type of its first child that can fail, in whatever order they are written; a child
//!   that cannot fail ([`NoError`]) converts into it, and any other child's error must
//!   convert with `From` (if it does not, the compile error is on that child's call).
//! - **A chain** of workflows can all return `NestedError<E>`: a child's
//!   `NestedError<NestedError<E>>` flattens into `NestedError<E>` with `?`, naming the
//!   execution that failed (its id is its path from the top: `top/1.0/1.2`) and keeping
//!   the error's name. Bound without `?`, the direct child's typed error is there to
//!   `match`.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use workflow::prelude::*;
//!
//! #[derive(WorkflowError, Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
//! enum TextError {
//!     #[error("no text for zero")]
//!     Zero,
//! }
//!
//! #[workflow]
//! async fn count(n: u32) -> u32 { n * 10 } // cannot fail: its error type is `NoError`
//!
//! #[workflow]
//! async fn text(n: u32) -> Result<String, TextError> {
//!     if n == 0 { return Err(TextError::Zero); }
//!     Ok(format!("#{n}"))
//! }
//!
//! /// Two children with different error types: the batch's is `NestedError<TextError>`.
//! #[workflow]
//! async fn both(n: u32) -> Result<String, NestedError<TextError>> {
//!     let (c, t): (u32, String) = call_nested!(parallel(count(n), text(n)))?;
//!     Ok(format!("{c} {t}"))
//! }
//!
//! /// A level above: `both`'s `NestedError<NestedError<TextError>>` flattens with `?`.
//! #[workflow]
//! async fn above(n: u32) -> Result<String, NestedError<TextError>> {
//!     let s: String = call_nested!(both(n))?;
//!     Ok(s)
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let runtime = Runtime::builder().register(above).build()?;
//! assert_eq!(runtime.start(above, 2).await?.result().await?, "20 #2");
//! let failed = runtime.start(above, 0).await?;
//! let top = failed.id().clone();
//! let Err(RunError::Failed(NestedError::Failed { child, error })) = failed.result().await
//! else { panic!("the grandchild failed") };
//! assert_eq!(error, TextError::Zero);
//! assert_eq!(child.as_str(), format!("{top}/1.0/1.1")); // above → both → text
//! # Ok(())
//! # }
//! ```
//!
//! # A runtime's life
//!
//! - **Handles from ids.** [`Runtime::start`] returns a typed [`Execution`]; after a
//!   restart, `runtime.execution::<W>(&id)` gives one back from the id (its typed
//!   [`result`](Execution::result), [`history`](Execution::history),
//!   [`cancel`](Execution::cancel)), or a [`LookupError`] if the id is another workflow's
//!   or nobody's.
//! - **Stopping.** Dropping the last handle of a [`Runtime`] stops it, as dropping a
//!   tokio runtime does: its executions stop where they are, nothing recorded, and its
//!   SQLite file is closed and unlocked at once, for the next runtime to
//!   [`recover`](Runtime::recover). [`Runtime::shutdown`] does the same and waits for its
//!   tasks.
//! - **Cancelling.** [`Runtime::cancel`] returns once the execution and everything below
//!   it have ended: [`Runtime::tree`] shows it right after.
//!
//! ```
//! use workflow::prelude::*;
//!
//! #[workflow]
//! async fn nap(ms: u64) -> u64 {
//!     sleep!(ms.millis()); // a durable timer
//!     ms
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let db = dir.path().join("workflows.sqlite");
//! let runtime = Runtime::builder().register(nap).sqlite(&db).build()?;
//! let id: ExecutionId = runtime.start(nap, 50).await?.id().clone();
//! drop(runtime); // stops it mid-nap, and closes the file
//!
//! let runtime = Runtime::builder().register(nap).sqlite(&db).build()?;
//! runtime.recover().await?; // the nap goes on
//! let execution: Execution<nap> = runtime.execution::<nap>(&id).await?;
//! assert_eq!(execution.result().await?, 50);
//! # Ok(())
//! # }
//! ```
//!
//! # Retries, timeouts and error handling
//!
//! Errors have names: a workflow's error type derives [`WorkflowError`](trait@WorkflowError)
//! (each variant is named after itself unless it says otherwise), and so does the error
//! of any call with a policy. A yield statement carries its policy as attributes, with the
//! knobs of Step Functions' `Retry`; `#[workflow(retry(…))]` is the default of every task
//! and poll, which a statement opts out of with `#[retry(none)]`:
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use workflow::prelude::*;
//!
//! struct Inventory;
//! impl Inventory {
//!     async fn reserve(&self, sku: &str) -> Result<u32, StockError> {
//!         if sku.is_empty() { Err(StockError::UnknownItem) } else { Ok(7) }
//!     }
//! }
//!
//! #[derive(WorkflowError, Debug, Serialize, Deserialize, thiserror::Error)]
//! enum StockError {
//!     #[error("the inventory is unavailable")]
//!     Unavailable,                                  // named "Unavailable"
//!     #[error("no such item")]
//!     #[workflow_error(name = "Stock.UnknownItem", non_retryable)]
//!     UnknownItem,
//!     #[error(transparent)]
//!     #[workflow_error(transparent)]                // named "Workflow.Timeout"
//!     Timeout(#[from] TaskTimeout),
//! }
//!
//! #[workflow(timeout = 1.hours())]                  // the whole execution
//! async fn reserve(inventory: &Inventory, sku: String) -> Result<u32, StockError> {
//!     #[retry(on = ["Unavailable", "Workflow.Timeout"], interval = 1.secs(),
//!             max_attempts = 5, backoff = 2.0, max_delay = 30.secs(), jitter = full)]
//!     #[timeout(10.secs())]                         // one call; a slow one is cancelled
//!     let reserved: Result<u32, StockError> = inventory.reserve(&sku).await;
//!     match reserved {                              // catch: ordinary Rust
//!         Err(StockError::UnknownItem) => Ok(0),
//!         other => other,                           // or `?` to fail the workflow
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let runtime = Runtime::builder().register(reserve).dependency(Inventory).build()?;
//! assert_eq!(runtime.start(reserve, "tea".into()).await?.result().await?, 7);
//! assert_eq!(runtime.start(reserve, String::new()).await?.result().await?, 0);
//! # Ok(())
//! # }
//! ```
//!
//! - `#[retry(on = [names], interval, max_attempts, backoff, max_delay, jitter = full |
//!   none)]`, every option optional (Step Functions' defaults: every retryable error, 1 s,
//!   3 retries, backoff 2, no cap, no jitter). It goes on a task, a `poll_until!` (each
//!   attempt's call is retried before it counts as an error) or a `call_nested!` (the
//!   whole batch runs again, as new child executions). Retry `n` waits
//!   `interval × backoff^(n-1)`, capped at `max_delay`; full jitter draws from zero to that.
//! - Retry waits are durable timers: a restart during a backoff resumes it, with the same
//!   attempt count. Every retry is in the history (`RetryScheduled`: attempt, error
//!   name, delay).
//! - After the last retry, the error is the call's value: `?` propagates it, `match`
//!   handles it. An error marked `non_retryable` is never retried.
//! - `#[timeout(d)]` bounds one call (the call is dropped, and it fails with
//!   [`TaskTimeout`], named `Workflow.Timeout`, which a policy may retry; the call's error
//!   type needs `From<TaskTimeout>`) or one `call_nested!` (its unfinished children are
//!   cancelled, and it fails with `NestedError::TimedOut`). `#[workflow(timeout = d)]`
//!   bounds a whole execution ([`RunError::TimedOut`]).
//! - Bad values are compile errors when they are literals (a backoff below 1, zero
//!   attempts with a delay, a zero interval, a name starting with `States.`) and
//!   [`BuildError::InvalidPolicy`] otherwise. Names starting with `States.` are Step
//!   Functions' own: the runtime's errors are `Workflow.Timeout`, `Workflow.PollTimedOut`,
//!   `Workflow.PollAttemptsExhausted`, `Workflow.PollTooManyErrors`,
//!   `Workflow.ChildCancelled` and `Workflow.ChildFaulted`.
//! - In the emitted ASL a policy is the state's `Retry`, a timeout its `TimeoutSeconds`,
//!   and what the Rust code decides (a caught error, a retried `call_nested!`) goes
//!   through the step handler's answer.
//!
//! # Traces and metrics
//!
//! Every execution, step, task call, poll attempt, durable wait and batch of children is a
//! `tracing` span (`workflow.execution`, `workflow.step`, `workflow.task`,
//! `workflow.poll`, `workflow.wait`, `workflow.children`), a child's execution under its
//! parent's batch, and the runtime counts executions, transitions, timer lateness and
//! checkpoints through OpenTelemetry's metrics API. With the `otel` feature,
//! `workflow::telemetry::Telemetry::otlp()` sends both to an OTLP collector in one line, and an
//! execution resumed after a restart continues the trace it was created in. With no
//! subscriber and no meter provider they cost a few percent of a transition's
//! instructions.
//!
//! # Cargo features
//!
//! - `sfn`: `workflow::sfn`, AWS Step Functions through the official SDK (deploy, the activity
//!   worker, executions).
//! - `console`: `workflow::console`, the web console.
//! - `cli`: `workflow::cli`, the command-line tool (with `console` and `sfn`).
//! - `otel`: `workflow::telemetry`, OpenTelemetry export.
//! - `lambda`: the step handler as an AWS Lambda function (the `step_handler` example).
//! - `legacy-fingerprints`: resume the executions an earlier version of this crate stored
//!   (`#[workflow]` also computes the fingerprints earlier versions gave each workflow; the
//!   README's upgrade notes say which). It costs compile time: turn it on for an upgrade
//!   with such executions in flight, and off once they have finished.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub use workflow_macros::{workflow, WorkflowError};
/// Amazon States Language: a workflow's ASL definition (`asl::asl::<W>()` or `W::asl()`)
/// and the step handler its Lambda Task states call.
pub use workflow_runtime::asl;
// Running workflows and reading what they did.
pub use workflow_runtime::{
    BuildError, Builder, CallbackError, CallbackToken, CompletionError, DurationExt, Event,
    EventKind, Execution, ExecutionFilter, ExecutionId, ExecutionRecord, ExecutionSummary,
    ExecutionTree, Fault, Json, Listing, LookupError, NestedError, NoError, Outcome, PollError,
    PollOutcome, Polled, RunError, Runtime, StartError, Status, Timestamp, Workflow,
};
// Stores, their options and their errors.
pub use workflow_runtime::{
    CorruptRow, Durability, Holder, MemoryStore, OpenError, Payload, PayloadTooLarge,
    SqliteOptions, SqliteStore, StoreError, StoreStats, DEFAULT_PAYLOAD_LIMIT,
};
// Recovery and redrive.
pub use workflow_runtime::{
    CorruptExecution, RecoveryReport, Redrive, RedriveError, Unregistered, VersionMismatch,
};
// Errors, retries and timeouts.
pub use workflow_runtime::{Jitter, Policy, RetryPolicy, TaskTimeout, WorkflowError};
// A workflow's state graph, for diagrams and tools.
pub use workflow_runtime::{Catalog, Edge, Highlight, Node, NodeKind, StateGraph, Transition};

/// What a [`Store`](store::Store) implementation works with: the trait, the records and
/// checkpoints it keeps, what an execution waits for. A program that only runs workflows
/// needs none of it beyond the stores themselves ([`SqliteStore`], [`MemoryStore`]),
/// which are here too and at the crate's root.
pub mod store {
    pub use workflow_runtime::{
        CallSite, CallbackChange, CallbackResolution, CallbackUpdate, Checkpoint, CorruptRow,
        Durability, ExecutionFilter, ExecutionRecord, ExecutionSummary, MemoryStore, OpenError,
        PendingBatch, PendingCallback, PendingChild, Reopen, SavedState, SqliteOptions,
        SqliteStore, Store, StoreError, StoreStats, Wait,
    };
}

#[cfg(feature = "cli")]
pub mod cli;
#[cfg(feature = "console")]
pub mod console;
#[cfg(feature = "console")]
mod inspect;
#[cfg(feature = "sfn")]
pub mod sfn;
#[cfg(feature = "otel")]
pub mod telemetry;

/// The names a workflow module and the program that runs it need:
/// `use workflow::prelude::*;`.
pub mod prelude {
    pub use crate::{call_nested, poll_until, sleep, wait_for_callback, workflow, WorkflowError};
    pub use workflow_runtime::asl::AslExt;
    pub use workflow_runtime::{
        CallbackError, CallbackToken, DurationExt, EventKind, Execution, ExecutionId,
        ExecutionTree, Json, NestedError, NoError, Outcome, PollError, Polled, RunError, Runtime,
        Status, TaskTimeout, Workflow,
    };
}

/// Calls a slow service until it is ready: wait `every`, call, check; repeat.
///
/// ```text
/// let status: Polled<Status> = poll_until!(
///     svc.status(&job),          // a future returning Result<T, E: Display>, one per attempt
///     |s| s.is_finished(),       // ready? (takes &T)
///     every = 10.secs(),         // wait before each call (milliseconds work)
///     timeout = 5.mins(),        // no attempt starts past it; or/and:
///     max_attempts = 30,         // give up after this many calls
///     max_errors = 3,            // call errors tolerated (default 0)
/// )?;
/// ```
///
/// Returns `Result<`[`Polled<T>`]`, `[`PollError`]`>`: the ready value with the number of
/// attempts and the elapsed time, or why it gave up (`?` converts it with `From`). Every
/// attempt and every wait is checkpointed. `timeout` or `max_attempts` is required: an
/// unbounded poll is a compile error.
///
/// Only valid as a statement of a `#[workflow]` body; anywhere else it is a compile error.
#[doc(inline)]
pub use workflow_macros::poll_until;

/// Runs other workflows as child executions and waits for their results.
///
/// ```text
/// let a: Report = call_nested!(run_job(input))?;                        // one child
/// let (a, b): (Report, Other) = call_nested!(parallel(run_job(x), other(y)))?;
/// let all: Vec<Report> = call_nested!(for r in inputs => run_job(r), max_concurrency = 10)?;
/// ```
///
/// Returns `Result<_, `[`NestedError<E>`]`>` with the child's own error type. For
/// `parallel`, it is the error type of the first child that can fail, in any order: a
/// child that cannot fail ([`NoError`]) converts into it, and the others' errors must
/// convert with `From` (the compile error of one that does not is on its call).
/// `?` converts the error into the workflow's; a child's `NestedError<NestedError<E>>`
/// flattens into `NestedError<E>` (see [`NestedError`]). Children get deterministic ids,
/// results come back in input order, and the first failure cancels the running siblings
/// and is returned. A workflow registered with the runtime brings the workflows it calls
/// along.
///
/// Only valid as a statement of a `#[workflow]` body; anywhere else it is a compile error.
#[doc(inline)]
pub use workflow_macros::call_nested;

/// A durable timer: `sleep!(5.secs());` checkpoints the workflow and resumes it when due.
///
/// Only valid as a statement of a `#[workflow]` body; anywhere else it is a compile error.
#[doc(inline)]
pub use workflow_macros::sleep;

/// Hands a token to the outside world and waits, durably, until it is completed.
///
/// ```text
/// let decision: Decision = wait_for_callback!(
///     |token| notifier.request_approval(&order, token),  // sends the CallbackToken
///     timeout = 3.days(),           // required: nobody may ever answer
///     heartbeat = 1.hours(),        // optional: the other side must heartbeat this often
/// )?;
/// ```
///
/// The closure takes the [`CallbackToken`] and returns a future of `()` or of
/// `Result<T, E: Display>` (an `async fn` call, or an `async` block); it is a task, run
/// after the callback is checkpointed, and again (with the same token) if a crash
/// interrupts it. Whoever holds the token then calls [`Runtime::complete`] with a
/// value, [`Runtime::fail`] with an error, or [`Runtime::heartbeat`]. The statement's
/// value is `Result<T, `[`CallbackError`]`>`: the value, decoded as the type it is bound
/// with (`complete` checks it first), or why there is none (failed, timed out, a missed
/// heartbeat, the token not sent), which `?` converts with `From`. The type must be
/// written (`let value: T = …`), or the value is discarded (`wait_for_callback!(…)?;`).
///
/// **`poll_until!` or `wait_for_callback!`?** Poll a service that can be asked how a
/// job is doing and does not know you; wait for a callback when the answer comes from
/// someone who can call you back (a person approving, a webhook, another system's
/// queue): no call is made while waiting, and the answer comes as soon as it exists.
///
/// On Step Functions it is a `.waitForTaskToken` Task whose token is `$$.Task.Token`
/// (see [`asl`]).
///
/// Only valid as a statement of a `#[workflow]` body; anywhere else it is a compile error.
#[doc(inline)]
pub use workflow_macros::wait_for_callback;

/// What the code generated by `#[workflow]` refers to. Not public API.
#[doc(hidden)]
pub mod __private {
    pub use serde;
    pub use workflow_runtime::codegen;
    pub use workflow_runtime::{
        Deps, Edge, Fault, Jitter, NestedError, NoError, Node, NodeKind, Policy, RetryPolicy,
        StateGraph, TaskTimeout, Transition, Workflow, WorkflowError,
    };
}
