//! Where executions, their states and their histories are kept.
//!
//! The runtime hands the store the serialized state and the new history events after
//! every checkpoint, so a backend only has to keep bytes and rows: the SQLite store is
//! one more implementation of [`Store`].

mod memory;

pub use memory::MemoryStore;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::child::Outcome;
use crate::error::StoreError;
use crate::history::Event;
use crate::time::Timestamp;
use crate::ExecutionId;

/// Where an execution is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Status {
    /// Not finished: running a step, waiting on a timer or on children.
    Running,
    /// Returned its output.
    Succeeded,
    /// Returned its error.
    Failed,
    /// Was cancelled.
    Cancelled,
    /// The runtime could not go on with it.
    Faulted,
}

impl Status {
    /// Whether the execution has ended.
    pub fn is_terminal(self) -> bool {
        self != Status::Running
    }

    pub(crate) fn of(outcome: &Outcome) -> Status {
        match outcome {
            Outcome::Succeeded(_) => Status::Succeeded,
            Outcome::Failed(_) => Status::Failed,
            Outcome::Cancelled => Status::Cancelled,
            Outcome::Faulted(_) => Status::Faulted,
        }
    }
}

/// One execution as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExecutionRecord {
    /// Its id.
    pub id: ExecutionId,
    /// The workflow's name.
    pub workflow: String,
    /// The parent execution, for a child.
    pub parent: Option<ExecutionId>,
    /// Where it is in its life.
    pub status: Status,
    /// Its input, as JSON.
    pub input: Value,
    /// The last checkpointed state (the serialized state enum).
    pub state: Vec<u8>,
    /// How it ended, once it has.
    pub outcome: Option<Outcome>,
    /// When the current timer is due, while it waits on one.
    pub wake_at: Option<Timestamp>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was last checkpointed.
    pub updated_at: Timestamp,
}

/// What one checkpoint writes: the new state and the history events since the last one.
/// A backend must write it atomically.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    /// The execution.
    pub id: ExecutionId,
    /// Its status after this checkpoint.
    pub status: Status,
    /// The new state; `None` keeps the previous one (terminal checkpoints).
    pub state: Option<Vec<u8>>,
    /// How it ended, for a terminal checkpoint.
    pub outcome: Option<Outcome>,
    /// When the timer armed by this checkpoint is due.
    pub wake_at: Option<Timestamp>,
    /// New history events, in order.
    pub events: Vec<Event>,
    /// When the checkpoint was taken.
    pub at: Timestamp,
}

/// A backend for executions and their histories.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Stores a new execution and its first events; fails with
    /// [`StoreError::AlreadyExists`] if the id is taken.
    async fn create(&self, record: ExecutionRecord, events: Vec<Event>) -> Result<(), StoreError>;

    /// Applies a checkpoint, atomically.
    async fn checkpoint(&self, checkpoint: Checkpoint) -> Result<(), StoreError>;

    /// Appends events to an execution's history.
    async fn append(&self, id: &ExecutionId, events: Vec<Event>) -> Result<(), StoreError>;

    /// The execution with this id.
    async fn get(&self, id: &ExecutionId) -> Result<Option<ExecutionRecord>, StoreError>;

    /// An execution's history, oldest first.
    async fn history(&self, id: &ExecutionId) -> Result<Vec<Event>, StoreError>;

    /// The children of an execution, in the order they were created.
    async fn children(&self, id: &ExecutionId) -> Result<Vec<ExecutionId>, StoreError>;
}
