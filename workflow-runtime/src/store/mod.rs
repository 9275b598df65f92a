//! Where executions, their states and their histories are kept.
//!
//! The runtime hands the store the serialized state, what the execution waits for, and
//! the new history events after every checkpoint, so a backend only has to keep bytes and
//! rows. Two backends come with the crate:
//!
//! - [`SqliteStore`]: one SQLite file in WAL mode, the durable default of the examples.
//!   Checkpoints of concurrent executions share transactions (group commit), a second
//!   runtime opening the same file is refused, and [`Runtime::recover`] resumes what a
//!   crashed process left unfinished. See its docs for the durability levels.
//! - [`MemoryStore`]: process memory, for tests and for work that needs no durability.
//!
//! What a checkpoint contains is enough to resume without replaying anything: the state
//! enum, the timer it waits on (`wake_at`), the batch of children or the callback it waits
//! for, and the number of child batches started so far (children are named after it, so a resumed
//! parent finds its children again instead of starting new ones).
//!
//! [`Runtime::recover`]: crate::Runtime::recover

mod held;
mod memory;
mod sqlite;

#[cfg(test)]
mod callback_tests;
#[cfg(test)]
mod reopen_tests;

pub(crate) use held::Held;
pub use memory::MemoryStore;
pub use sqlite::{Durability, SqliteOptions, SqliteStore, StoreStats};

use crate::execution::Status;
use serde::{Deserialize, Serialize};

use crate::callback::{same_secret, CallbackResolution, PendingCallback};

use crate::error::{CorruptRow, StoreError};
use crate::execution::{ExecutionId, Outcome};
use crate::history::Event;
use crate::json::Json;
use crate::time::Timestamp;

/// Where a child was started: its parent's `call_nested!` (a state-graph node), which
/// batch of the parent that was, and the child's place in the batch. The child's id is
/// `{parent}/{batch}.{index}`, unique per parent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallSite {
    /// The parent's node that started it.
    pub node: String,
    /// The parent's batch number (its n-th `call_nested!` reached, from 1).
    pub batch: u64,
    /// The child's place in the batch, from 0.
    pub index: usize,
}

/// What an execution waits for at its last checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "wait")]
pub enum Wait {
    /// A durable timer (`sleep!`, a `poll_until!` interval).
    Timer {
        /// The state-graph node that armed it.
        node: usize,
        /// When it is due.
        until: Timestamp,
    },
    /// A batch of children (`call_nested!`).
    Children(PendingBatch),
    /// A retry's delay: the call of `node` failed, and the checkpointed state's step runs
    /// again when the delay is due. Persisting the attempt means a restart resumes the
    /// backoff instead of starting the count over.
    Retry {
        /// The node whose call failed.
        node: usize,
        /// When the retry is due.
        until: Timestamp,
        /// The retry's number, from 1.
        attempt: u32,
        /// For a `call_nested!`, the batch that runs again when the retry is due (new
        /// batch number, so new child ids).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        batch: Option<PendingBatch>,
    },
    /// A callback (`wait_for_callback!`): its token is out, or about to be sent, and the
    /// execution waits until it is completed, failed or timed out. Changed in place by
    /// [`Store::callback`].
    Callback(PendingCallback),
}

impl Wait {
    /// When the timer is due, for a timer; for a callback not resolved yet, when it
    /// times out or misses a heartbeat.
    pub fn wake_at(&self) -> Option<Timestamp> {
        match self {
            Wait::Timer { until, .. } | Wait::Retry { until, .. } => Some(*until),
            Wait::Callback(callback) => callback.due().map(|(at, _)| at),
            Wait::Children(_) => None,
        }
    }

    /// The callback it waits on, while that callback is not resolved.
    pub fn waiting_callback(&self) -> Option<&PendingCallback> {
        match self {
            Wait::Callback(callback) if callback.is_waiting() => Some(callback),
            _ => None,
        }
    }
}

/// A batch of children as persisted: enough to start the ones that were never started
/// and to find the others by their ids after a restart.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PendingBatch {
    /// The batch number, part of the children's ids.
    pub batch: u64,
    /// The state-graph node of the `call_nested!`.
    pub node: usize,
    /// At most this many children run at once; `None` is unbounded.
    pub max_concurrency: Option<usize>,
    /// The children, in input order.
    pub calls: Vec<PendingChild>,
    /// When the batch times out (the `call_nested!`'s `#[timeout]`): its unfinished
    /// children are cancelled and reported as timed out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<Timestamp>,
}

/// One child of a [`PendingBatch`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PendingChild {
    /// The child's workflow name.
    pub workflow: String,
    /// Its input, as JSON.
    pub input: Json,
}

/// One execution as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExecutionRecord {
    /// Its id.
    pub id: ExecutionId,
    /// The workflow's name.
    pub workflow: String,
    /// The [`Workflow::FINGERPRINT`](crate::Workflow::FINGERPRINT) of the definition that
    /// wrote the state.
    pub fingerprint: u64,
    /// The parent execution, for a child.
    pub parent: Option<ExecutionId>,
    /// Where the parent started it, for a child.
    pub call_site: Option<CallSite>,
    /// Where it is in its life.
    pub status: Status,
    /// Its input, as JSON.
    pub input: Json,
    /// The last checkpointed state (the serialized state enum).
    pub state: Vec<u8>,
    /// What it waits for at the last checkpoint; `None` while a step runs. Kept when it
    /// ends: a redrive resumes it there.
    pub waiting: Option<Wait>,
    /// How many child batches it has started (the last batch's number).
    pub batches: u64,
    /// How it ended, once it has.
    pub outcome: Option<Outcome>,
    /// When the current timer is due, while it waits on one.
    pub wake_at: Option<Timestamp>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was last checkpointed.
    pub updated_at: Timestamp,
    /// How many times it was redriven ([`Runtime::redrive`](crate::Runtime::redrive)).
    #[serde(default)]
    pub redrives: u32,
    /// When it was last redriven: its workflow's timeout counts from there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redriven_at: Option<Timestamp>,
    /// The trace its spans belong to, as a W3C `traceparent` (with the `otel` feature and
    /// an OpenTelemetry layer installed when it was created): a resumed execution
    /// continues that trace. Written at creation; a store keeps it as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
}

impl ExecutionRecord {
    /// The callback it waits on, while it runs and that callback is not resolved.
    pub fn waiting_callback(&self) -> Option<&PendingCallback> {
        if self.status.is_terminal() {
            return None;
        }
        self.waiting.as_ref().and_then(Wait::waiting_callback)
    }

    /// When its workflow's timeout starts counting: its last redrive, else its creation.
    pub(crate) fn started_at(&self) -> Timestamp {
        self.redriven_at.unwrap_or(self.created_at)
    }
}

/// A checkpointed state and what the execution waits for next.
#[derive(Clone, Debug)]
pub struct SavedState {
    /// The serialized state enum.
    pub bytes: Vec<u8>,
    /// What the execution waits for before its next step.
    pub waiting: Option<Wait>,
    /// How many child batches it has started.
    pub batches: u64,
}

/// What one checkpoint writes: the new state and the history events since the last one.
/// A backend must write it atomically: all of it or, on error, nothing.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    /// The execution.
    pub id: ExecutionId,
    /// Its status after this checkpoint.
    pub status: Status,
    /// The new state; `None` keeps the previous one (terminal checkpoints, parking).
    /// A terminal status clears the timer's `wake_at` but keeps what the execution waited
    /// for: an ended execution is stored at its last checkpoint, where a
    /// [redrive](crate::Runtime::redrive) resumes it (a parent on the same batch).
    pub state: Option<SavedState>,
    /// How it ended, for a terminal checkpoint.
    pub outcome: Option<Outcome>,
    /// New history events, in order.
    pub events: Vec<Event>,
    /// Events for the parent's history (a child's `ChildSucceeded`, …), written in the
    /// same transaction so that a parent never sees a child end without its event.
    pub parent_events: Vec<Event>,
    /// When the checkpoint was taken.
    pub at: Timestamp,
}

/// An ended execution to run again, as [`Store::reopen`] writes it: a
/// [redrive](crate::Runtime::redrive) writes one for the execution and one for each
/// child it redrives with it.
#[derive(Clone, Debug)]
pub struct Reopen {
    /// The execution.
    pub id: ExecutionId,
    /// The status it was read with, which it must still have.
    pub expected: Status,
    /// Its redrive count after this write, from 1: the stored count must be one less.
    pub redrives: u32,
    /// What it waits for when it runs again (the `wake_at` of a timer follows from it).
    pub waiting: Option<Wait>,
    /// New history events (its `ExecutionRedriven`).
    pub events: Vec<Event>,
    /// When it was reopened, kept as its `redriven_at`.
    pub at: Timestamp,
}

/// A change to the callback an execution waits on, as [`Store::callback`] applies it:
/// only if the execution waits on that callback (same id, same secret), atomically
/// with its events.
#[derive(Clone, Debug)]
pub struct CallbackUpdate {
    /// The execution.
    pub id: ExecutionId,
    /// The callback's public id.
    pub callback: String,
    /// Its secret, as the token carries it.
    pub secret: String,
    /// What changes.
    pub change: CallbackChange,
    /// Events to append if the change is made.
    pub events: Vec<Event>,
    /// When.
    pub at: Timestamp,
}

/// What a [`CallbackUpdate`] changes.
#[derive(Clone, Debug, PartialEq)]
pub enum CallbackChange {
    /// The token was sent: a restart does not send it again.
    Sent,
    /// A heartbeat came: the next one is due a heartbeat interval from now. Refused
    /// once the callback is resolved.
    Heartbeat,
    /// The callback is resolved. Refused once it is: the first resolution wins.
    Resolve(CallbackResolution),
}

impl CallbackUpdate {
    /// The callback as it is after this update, from the execution's stored status and
    /// wait: the one decision every store makes for [`Store::callback`].
    ///
    /// Fails with [`StoreError::Ended`] for an ended execution,
    /// [`StoreError::NoCallback`] if it does not wait on this callback with this secret,
    /// and [`StoreError::CallbackResolved`] for a heartbeat or a resolution of a
    /// callback resolved already.
    pub fn apply(
        &self,
        status: Status,
        waiting: Option<&Wait>,
    ) -> Result<PendingCallback, StoreError> {
        if status.is_terminal() {
            return Err(StoreError::Ended(self.id.clone()));
        }
        let no_callback = || StoreError::NoCallback {
            id: self.id.clone(),
            callback: self.callback.clone(),
        };
        let Some(Wait::Callback(callback)) = waiting else {
            return Err(no_callback());
        };
        if callback.id != self.callback || !same_secret(&callback.secret, &self.secret) {
            return Err(no_callback());
        }
        let mut callback = callback.clone();
        let resolved = || StoreError::CallbackResolved {
            id: self.id.clone(),
            callback: self.callback.clone(),
        };
        match &self.change {
            CallbackChange::Sent => callback.sent = true,
            CallbackChange::Heartbeat if callback.resolution.is_some() => return Err(resolved()),
            CallbackChange::Heartbeat => callback.last_heartbeat = Some(self.at),
            CallbackChange::Resolve(_) if callback.resolution.is_some() => return Err(resolved()),
            CallbackChange::Resolve(resolution) => callback.resolution = Some(resolution.clone()),
        }
        Ok(callback)
    }
}

/// Which executions [`Store::list`] returns. Every condition set must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[must_use]
pub struct ExecutionFilter {
    /// Only executions of this workflow.
    pub workflow: Option<String>,
    /// Only executions with this status.
    pub status: Option<Status>,
    /// Only top-level executions (no parent).
    pub top_level: bool,
    /// Only executions created at or after this time.
    pub since: Option<Timestamp>,
    /// Only executions waiting on a callback that is not resolved yet.
    pub waiting_on_callback: bool,
    /// Newest first instead of oldest first.
    pub newest_first: bool,
    /// Skip this many matching executions first (a page's start).
    pub offset: usize,
    /// At most this many (rows that do not decode count).
    pub limit: Option<usize>,
}

impl ExecutionFilter {
    /// Every execution.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only executions of `workflow`.
    pub fn workflow(mut self, workflow: impl Into<String>) -> Self {
        self.workflow = Some(workflow.into());
        self
    }

    /// Only executions with `status`.
    pub fn status(mut self, status: Status) -> Self {
        self.status = Some(status);
        self
    }

    /// Only executions without a parent.
    pub fn top_level(mut self) -> Self {
        self.top_level = true;
        self
    }

    /// Only executions created at or after `at`.
    pub fn since(mut self, at: Timestamp) -> Self {
        self.since = Some(at);
        self
    }

    /// Only executions waiting on a callback (`wait_for_callback!`) that nobody has
    /// completed, failed or timed out yet.
    pub fn waiting_on_callback(mut self) -> Self {
        self.waiting_on_callback = true;
        self
    }

    /// Newest first (the default is oldest first).
    pub fn newest_first(mut self) -> Self {
        self.newest_first = true;
        self
    }

    /// Skips the first `n` matching executions: with [`limit`](Self::limit), a page.
    pub fn offset(mut self, n: usize) -> Self {
        self.offset = n;
        self
    }

    /// At most `n` executions.
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = Some(n);
        self
    }

    pub(crate) fn matches(&self, r: &ExecutionRecord) -> bool {
        self.workflow.as_ref().is_none_or(|w| *w == r.workflow)
            && self.status.is_none_or(|s| s == r.status)
            && (!self.top_level || r.parent.is_none())
            && self.since.is_none_or(|t| r.created_at >= t)
            && (!self.waiting_on_callback || r.waiting_callback().is_some())
    }
}

/// An execution in a listing: its record without the payloads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecutionSummary {
    /// Its id.
    pub id: ExecutionId,
    /// The workflow's name.
    pub workflow: String,
    /// The parent execution, for a child.
    pub parent: Option<ExecutionId>,
    /// Where it is in its life.
    pub status: Status,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was last checkpointed.
    pub updated_at: Timestamp,
}

impl From<&ExecutionRecord> for ExecutionSummary {
    fn from(r: &ExecutionRecord) -> Self {
        ExecutionSummary {
            id: r.id.clone(),
            workflow: r.workflow.clone(),
            parent: r.parent.clone(),
            status: r.status,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// A backend for executions and their histories.
///
/// Every write is atomic. [`checkpoint`](Store::checkpoint) refuses an execution that has
/// ended ([`StoreError::Ended`]), so a stale driver can never overwrite an outcome; only
/// [`reopen`](Store::reopen) (a redrive) sets an ended execution running again. A
/// write that fails with a transient error ([`StoreError::is_transient`]) must have
/// written nothing: the runtime retries it. Any other error is not retried: a backend
/// that can no longer be used at all answers [`StoreError::Broken`], and the executions
/// that write to it end faulted instead of waiting forever.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Stores a new execution and its first events, and appends `parent_events` to its
    /// parent's history, in one transaction; fails with [`StoreError::AlreadyExists`] if
    /// the id is taken.
    async fn create(
        &self,
        record: ExecutionRecord,
        events: Vec<Event>,
        parent_events: Vec<Event>,
    ) -> Result<(), StoreError>;

    /// Applies a checkpoint, atomically.
    ///
    /// The checkpoint is borrowed: after a transient failure the runtime offers the same
    /// one again, and a store copies only what it keeps.
    async fn checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), StoreError>;

    /// Sets ended executions running again, all of them in one transaction: each gets
    /// status `Running`, no outcome, its [`Reopen`]'s `waiting` (and the `wake_at` of its
    /// timer), `redrives` and `redriven_at`, and its events are appended. Its state,
    /// input, batches and history stay.
    ///
    /// The whole write is refused, with nothing written, if any of them does not exist
    /// ([`StoreError::NotFound`]) or no longer has its `expected` status and one redrive
    /// less than its new count ([`StoreError::Changed`]: another redrive, or an end,
    /// came first).
    async fn reopen(&self, executions: &[Reopen]) -> Result<(), StoreError>;

    /// Applies `update` to the callback execution `update.id` waits on, with its events,
    /// in one transaction, as [`CallbackUpdate::apply`] decides from what is stored
    /// (nothing is written if it refuses), and returns the callback as stored after it.
    /// The stored wait's `wake_at` follows the callback's deadlines.
    async fn callback(&self, update: &CallbackUpdate) -> Result<PendingCallback, StoreError>;

    /// Appends events to an execution's history.
    async fn append(&self, id: &ExecutionId, events: Vec<Event>) -> Result<(), StoreError>;

    /// The execution with this id.
    async fn get(&self, id: &ExecutionId) -> Result<Option<ExecutionRecord>, StoreError>;

    /// An execution's history, oldest first.
    async fn history(&self, id: &ExecutionId) -> Result<Vec<Event>, StoreError>;

    /// The children of an execution, in the order they were started.
    async fn children(&self, id: &ExecutionId) -> Result<Vec<ExecutionId>, StoreError>;

    /// The executions that match `filter`, in creation order (oldest first unless the
    /// filter asks for the newest first), from its offset, at most its limit. A row that does not decode is
    /// a [`CorruptRow`] of its own, in its place, so that one bad row does not hide the
    /// others; the outer `Err` is for the store failing to read at all.
    async fn list(
        &self,
        filter: &ExecutionFilter,
    ) -> Result<Vec<Result<ExecutionSummary, CorruptRow>>, StoreError>;

    /// Every execution that has not ended (running or parked), oldest first: what
    /// [`Runtime::recover`](crate::Runtime::recover) resumes. A row that does not decode
    /// is a [`CorruptRow`] of its own, so that it fails only its execution.
    async fn unfinished(&self) -> Result<Vec<Result<ExecutionRecord, CorruptRow>>, StoreError>;

    /// The runtime that used this store has stopped (its last handle was dropped, see
    /// [`Runtime`](crate::Runtime#stopping)) and will call nothing more, though calls it
    /// made before may still be in flight. If nothing else uses the store, release now
    /// what only one runtime may hold at a time, so that another can take it at once:
    /// [`SqliteStore`] commits what it was given, closes the file and unlocks it (unless
    /// another clone of it still holds it), and answers [`StoreError::Stopped`] after
    /// that. A store that is shared must not wait for the calls in flight: the runtime
    /// was dropped, and they end on their own. The default does nothing.
    fn release(&self) {}
}
