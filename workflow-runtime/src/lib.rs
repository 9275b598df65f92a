//! The runtime behind the `workflow` crate: it drives the state machines that
//! `#[workflow]` generates, keeps them in a [`Store`], and records their history.
//!
//! Users depend on the `workflow` facade, which re-exports this crate's public API; its
//! docs open with a runnable example. This page explains the moving parts.
//!
//! # How an execution runs
//!
//! `#[workflow]` turns an `async fn` into a [`Workflow`]: a serializable state enum with a
//! variant per resume point, and a `step` function that runs the code from one resume
//! point to the next yield point (a task's `.await`, a `poll_until!` attempt or wait, a
//! `call_nested!`, a `sleep!`, a `wait_for_callback!`). Each execution is driven by one
//! tokio task:
//!
//! 1. **step**: run the generated code from the current state;
//! 2. **checkpoint**: serialize the new state and hand it, with the history events the step
//!    produced, to the store, before anything else happens;
//! 3. **wait** for what the step asked for: nothing (a task finished), a timer (on tokio's
//!    clock, so `tokio::time::pause()` gives tests virtual time), a retry's delay (the
//!    same state runs again; see [`RetryPolicy`]), child executions, or a callback
//!    (its token completed, failed or timed out: see [`Runtime::complete`]);
//! 4. repeat until the workflow returns, fails, is cancelled, or runs past its timeout.
//!
//! Children get deterministic ids derived from their parent's id, the number of the
//! `call_nested!` that started them and their place in it. A batch of children runs at
//! most `max_concurrency` at once and fails fast: the first failure cancels the running
//! siblings (recorded as cancelled).
//! Cancelling an execution cancels its children, and it ends after them, so that
//! [`Runtime::cancel`] returns when every execution below it has ended. Dropping the last
//! [`Runtime`] handle stops every execution where it is and releases the store
//! ([`Store::release`]).
//!
//! Borrowed workflow parameters (`&T`) are dependencies: provided once to the
//! [`Builder`], injected on every step, never persisted. [`Builder::build`] checks that
//! every registered workflow, and every workflow it calls, has its dependencies.
//!
//! # Durability and recovery
//!
//! [`SqliteStore`] keeps executions in one SQLite file (WAL mode, group commit, one
//! runtime per file); [`MemoryStore`], the builder's default, keeps them in memory for
//! tests. With SQLite, a restarted program resumes where the last one stopped:
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use workflow_runtime::Runtime;
//!
//! let runtime = Runtime::builder()
//!     // .register(main_flow).dependency(service)
//!     .sqlite("target/workflows.sqlite") // opened (and locked) by build()
//!     .build()?;
//! let report = runtime.recover().await?; // resumes every unfinished execution
//! println!("{report}");
//! # Ok(()) }
//! ```
//!
//! [`Runtime::recover`] fires due timers at once and re-arms the others, re-links parents
//! waiting on children (creating only the children never created), and runs again the
//! steps that were in flight: **tasks are at-least-once**, state transitions
//! exactly-once, as a step's new state and its history events are committed together.
//! What a commit survives (`kill -9`, or a power loss too) is a [`Durability`] level.
//!
//! An execution that failed, timed out or faulted stays stored at its last checkpoint:
//! once the cause is fixed, [`Runtime::redrive`] runs it again from there, under the
//! same id, with the children that did not succeed (those that did keep their results).
//!
//! # Upgrading a workflow
//!
//! Each execution is stored with its workflow's [`Workflow::FINGERPRINT`], a hash of the
//! state graph and the state types. A persisted state is only resumed by a definition
//! with the same fingerprint; otherwise `recover` parks it with
//! [`Status::VersionMismatch`] and an error naming both fingerprints, its data untouched.
//! To change a workflow that has executions in flight, either:
//!
//! - **drain** it: stop starting it, wait until
//!   `runtime.list(ExecutionFilter::new().workflow("Name").status(Status::Running))`
//!   lists no execution, then deploy the new definition; or
//! - run both **side by side**: keep the old definition under its name, give the new one
//!   a new name (`#[workflow(name = "Name.v2")]`), register both, and delete the old one
//!   once no execution of it is left.
//!
//! Executions parked because a new definition was deployed under the old name are not
//! lost: deploy the old definition under that name again, and the next `recover` resumes
//! them.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod asl;
mod callback;
mod catalog;
mod child;
mod completion;
mod context;
mod deps;
mod driver;
mod error;
mod execution;
mod graph;
mod history;
mod iter;
mod json;
mod persist;
mod poll;
mod recovery;
mod redrive;
mod registry;
mod retry;
mod runtime;
mod store;
mod telemetry;
mod time;
mod transition;
mod workflow;

/// The hash map of the maps every transition reads: keys are ids and names the runtime
/// or the workflow's author chose, so a fast seeded hash serves better than SipHash.
pub(crate) type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

pub use callback::{
    CallbackError, CallbackResolution, CallbackToken, CompletionError, PendingCallback,
};
pub use catalog::Catalog;
pub use child::NestedError;
pub use deps::{Deps, Fault};
pub use error::{
    BuildError, CorruptRow, Holder, LookupError, OpenError, Payload, PayloadTooLarge, RunError,
    StartError, StoreError, DEFAULT_PAYLOAD_LIMIT,
};
pub use execution::{ExecutionId, Outcome, Status};
pub use graph::{Edge, Highlight, Node, NodeKind, StateGraph, Transition};
pub use history::{Event, EventKind, PollOutcome};
pub use json::Json;
pub use poll::{PollError, Polled};
pub use recovery::{CorruptExecution, RecoveryReport, Unregistered, VersionMismatch};
pub use redrive::{Redrive, RedriveError};
pub use retry::{check_name, Jitter, Policy, RetryPolicy, TaskTimeout, WorkflowError};
pub use runtime::{Builder, Execution, ExecutionTree, Listing, Runtime};
pub use store::{
    CallSite, CallbackChange, CallbackUpdate, Checkpoint, Durability, ExecutionFilter,
    ExecutionRecord, ExecutionSummary, MemoryStore, PendingBatch, PendingChild, Reopen, SavedState,
    SqliteOptions, SqliteStore, Store, StoreStats, Wait,
};
pub use time::{DurationExt, Timestamp};
pub use workflow::{BoxFuture, NoError, Workflow};

/// Items the code generated by `#[workflow]` uses. Not public API: no stability promise.
#[doc(hidden)]
pub mod codegen {
    pub use crate::callback::{accepts, send, CallbackStep, CallbackValue, Resolved, Sent};
    pub use crate::child::{ChildBatch, ChildrenOutcome};
    pub use crate::context::{error_name, Interrupt, StepCx};
    pub use crate::graph::written::{graph, Accepts};
    pub use crate::iter::ForIter;
    pub use crate::poll::{PollConfig, PollNext, PollState};
    pub use crate::retry::{timeout_error, Retry};
    pub use crate::workflow::{
        child, error_of, Absurd, ChildIsNot, ChildIsWorkflow, ChildProbe, ConvertFrom,
        ConvertInfallible, ErrorOf, FromChildError, JoinFirst, JoinInfallible, Linker, ResumePoint,
        Step, ViaFrom,
    };

    /// One-token names for the paths the generated code uses most, imported by each
    /// workflow's generated items; reserved names, like every `__wf` name.
    pub mod short {
        pub use super::persist as __WfPersist;
        pub use super::persist::{Check as __WfCheck, Probe as __WfProbe};
        pub use crate::workflow::{ResumePoint as __WfResume, Step as __WfStep};
        pub use ::core::option::Option::{None as __WfNone, Some as __WfSome};
        pub use ::core::result::Result::{Err as __WfErr, Ok as __WfOk};
    }

    /// See `persist.rs`.
    pub mod persist {
        pub use crate::persist::*;
    }
}
