//! The runtime's hold on its store, which it lets go of when it stops.
//!
//! Driver tasks share the runtime's state (`Arc`), store included, and tokio drops a
//! stopped task only when it next polls it, after `drop(runtime)` has returned. Through
//! this hold, the last runtime handle lets go of the store when it is dropped: it
//! [releases](Store::release) it (a SQLite file is closed and unlocked, unless a clone
//! of the store is alive elsewhere) and drops its reference, so that a clone kept by
//! the caller is the last one and closes the file when it is dropped.

use std::sync::{Arc, PoisonError, RwLock};

use super::{
    CallbackUpdate, Checkpoint, ExecutionFilter, ExecutionRecord, ExecutionSummary, Reopen, Store,
};
use crate::callback::PendingCallback;
use crate::error::{CorruptRow, StoreError};
use crate::execution::ExecutionId;
use crate::history::Event;

/// A store until it is [released](Store::release); then every call answers
/// [`StoreError::Stopped`].
pub(crate) struct Held {
    store: RwLock<Option<Arc<dyn Store>>>,
}

impl Held {
    pub(crate) fn new(store: Arc<dyn Store>) -> Self {
        Held {
            store: RwLock::new(Some(store)),
        }
    }

    /// The store, for one call: a call in flight keeps it until the call ends.
    fn store(&self) -> Result<Arc<dyn Store>, StoreError> {
        // An `Option` is replaced whole: a poisoned lock still holds a consistent value.
        self.store
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or(StoreError::Stopped)
    }
}

/// The store's calls, each on the store while it is held. Inherent methods, not an
/// implementation of [`Store`]: every call of the runtime goes through here, and a
/// trait object's call would box one more future per call (one of a checkpoint's few
/// allocations).
impl Held {
    pub(crate) async fn create(
        &self,
        record: ExecutionRecord,
        events: Vec<Event>,
        parent_events: Vec<Event>,
    ) -> Result<(), StoreError> {
        self.store()?.create(record, events, parent_events).await
    }

    pub(crate) async fn checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        self.store()?.checkpoint(checkpoint).await
    }

    pub(crate) async fn reopen(&self, executions: &[Reopen]) -> Result<(), StoreError> {
        self.store()?.reopen(executions).await
    }

    pub(crate) async fn callback(
        &self,
        update: &CallbackUpdate,
    ) -> Result<PendingCallback, StoreError> {
        self.store()?.callback(update).await
    }

    pub(crate) async fn append(
        &self,
        id: &ExecutionId,
        events: Vec<Event>,
    ) -> Result<(), StoreError> {
        self.store()?.append(id, events).await
    }

    pub(crate) async fn get(
        &self,
        id: &ExecutionId,
    ) -> Result<Option<ExecutionRecord>, StoreError> {
        self.store()?.get(id).await
    }

    pub(crate) async fn history(&self, id: &ExecutionId) -> Result<Vec<Event>, StoreError> {
        self.store()?.history(id).await
    }

    pub(crate) async fn children(&self, id: &ExecutionId) -> Result<Vec<ExecutionId>, StoreError> {
        self.store()?.children(id).await
    }

    pub(crate) async fn list(
        &self,
        filter: &ExecutionFilter,
    ) -> Result<Vec<Result<ExecutionSummary, CorruptRow>>, StoreError> {
        self.store()?.list(filter).await
    }

    pub(crate) async fn unfinished(
        &self,
    ) -> Result<Vec<Result<ExecutionRecord, CorruptRow>>, StoreError> {
        self.store()?.unfinished().await
    }

    /// Releases the store and lets go of it.
    pub(crate) fn release(&self) {
        let store = self
            .store
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(store) = store {
            store.release();
        }
    }
}
