//! The in-memory store. Histories are kept packed (`history.rs`).

mod history;

use crate::execution::ExecutionId;
use crate::HashMap;
use std::sync::Mutex;

use self::history::{History, Names};
use super::{
    CallbackUpdate, Checkpoint, ExecutionFilter, ExecutionRecord, ExecutionSummary, Reopen, Store,
    Wait,
};
use crate::callback::PendingCallback;
use crate::error::{CorruptRow, StoreError};
use crate::execution::Status;
use crate::history::Event;

/// A store in process memory, for tests and for workflows that need no durability.
///
/// ```
/// use workflow_runtime::{MemoryStore, Runtime};
///
/// let runtime = Runtime::builder().store(MemoryStore::new()).build().unwrap();
/// # drop(runtime);
/// ```
#[derive(Debug, Default)]
pub struct MemoryStore {
    rows: Mutex<Rows>,
}

#[derive(Debug, Default)]
struct Rows {
    by_id: HashMap<ExecutionId, Row>,
    /// Ids in creation order, for listings.
    order: Vec<ExecutionId>,
    /// The node names of every history.
    names: Names,
}

#[derive(Debug)]
struct Row {
    record: ExecutionRecord,
    history: History,
    children: Vec<ExecutionId>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn rows(&self) -> std::sync::MutexGuard<'_, Rows> {
        // A panic while holding the lock cannot leave a row half-written (every update
        // checks first and then assigns or pushes), so a poisoned lock is still consistent.
        self.rows.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait::async_trait]
impl Store for MemoryStore {
    async fn create(
        &self,
        record: ExecutionRecord,
        events: Vec<Event>,
        parent_events: Vec<Event>,
    ) -> Result<(), StoreError> {
        let mut rows = self.rows();
        let Rows {
            by_id,
            order,
            names,
        } = &mut *rows;
        if by_id.contains_key(&record.id) {
            return Err(StoreError::AlreadyExists(record.id));
        }
        if let Some(parent) = &record.parent {
            let parent = by_id
                .get_mut(parent)
                .ok_or_else(|| StoreError::NotFound(parent.clone()))?;
            parent.children.push(record.id.clone());
            parent.history.extend(names, &parent_events);
        }
        let mut history = History::new();
        history.extend(names, &events);
        let id = record.id.clone();
        order.push(id.clone());
        by_id.insert(
            id,
            Row {
                record,
                history,
                children: Vec::new(),
            },
        );
        Ok(())
    }

    async fn checkpoint(&self, cp: &Checkpoint) -> Result<(), StoreError> {
        let mut rows = self.rows();
        let Rows { by_id, names, .. } = &mut *rows;
        // Every check before any change: a refused checkpoint writes nothing.
        let row = by_id
            .get(&cp.id)
            .ok_or_else(|| StoreError::NotFound(cp.id.clone()))?;
        if row.record.status.is_terminal() {
            return Err(StoreError::Ended(cp.id.clone()));
        }
        let parent = row.record.parent.clone();
        if let Some(parent) = parent.as_ref().filter(|_| !cp.parent_events.is_empty()) {
            if !by_id.contains_key(parent) {
                return Err(StoreError::NotFound(parent.clone()));
            }
        }
        if let Some(row) = by_id.get_mut(&cp.id) {
            let record = &mut row.record;
            record.status = cp.status;
            if let Some(saved) = &cp.state {
                record.state.clone_from(&saved.bytes);
                record.wake_at = saved.waiting.as_ref().and_then(|w| w.wake_at());
                record.waiting.clone_from(&saved.waiting);
                record.batches = saved.batches;
            }
            if cp.status.is_terminal() {
                // What it waited for stays, for a redrive; its timer is no longer due.
                record.wake_at = None;
            }
            if cp.outcome.is_some() {
                record.outcome.clone_from(&cp.outcome);
            }
            record.updated_at = cp.at;
            row.history.extend(names, &cp.events);
        }
        if let Some(parent) = parent.and_then(|p| by_id.get_mut(&p)) {
            parent.history.extend(names, &cp.parent_events);
        }
        Ok(())
    }

    async fn reopen(&self, executions: &[Reopen]) -> Result<(), StoreError> {
        let mut rows = self.rows();
        let Rows { by_id, names, .. } = &mut *rows;
        // Every check before any change: a refused reopen writes nothing.
        for reopen in executions {
            let row = by_id
                .get(&reopen.id)
                .ok_or_else(|| StoreError::NotFound(reopen.id.clone()))?;
            let record = &row.record;
            if record.status != reopen.expected
                || record.redrives.checked_add(1) != Some(reopen.redrives)
            {
                return Err(StoreError::Changed(reopen.id.clone()));
            }
        }
        for reopen in executions {
            if let Some(row) = by_id.get_mut(&reopen.id) {
                let record = &mut row.record;
                record.status = Status::Running;
                record.outcome = None;
                record.waiting.clone_from(&reopen.waiting);
                record.wake_at = reopen.waiting.as_ref().and_then(|w| w.wake_at());
                record.redrives = reopen.redrives;
                record.redriven_at = Some(reopen.at);
                record.updated_at = reopen.at;
                row.history.extend(names, &reopen.events);
            }
        }
        Ok(())
    }

    async fn callback(&self, update: &CallbackUpdate) -> Result<PendingCallback, StoreError> {
        let mut rows = self.rows();
        let Rows { by_id, names, .. } = &mut *rows;
        let row = by_id
            .get_mut(&update.id)
            .ok_or_else(|| StoreError::NotFound(update.id.clone()))?;
        let record = &mut row.record;
        let callback = update.apply(record.status, record.waiting.as_ref())?;
        let waiting = Wait::Callback(callback.clone());
        record.wake_at = waiting.wake_at();
        record.waiting = Some(waiting);
        record.updated_at = update.at;
        row.history.extend(names, &update.events);
        Ok(callback)
    }

    async fn append(&self, id: &ExecutionId, events: Vec<Event>) -> Result<(), StoreError> {
        let mut rows = self.rows();
        let Rows { by_id, names, .. } = &mut *rows;
        let row = by_id
            .get_mut(id)
            .ok_or_else(|| StoreError::NotFound(id.clone()))?;
        row.history.extend(names, &events);
        Ok(())
    }

    async fn get(&self, id: &ExecutionId) -> Result<Option<ExecutionRecord>, StoreError> {
        Ok(self.rows().by_id.get(id).map(|r| r.record.clone()))
    }

    async fn history(&self, id: &ExecutionId) -> Result<Vec<Event>, StoreError> {
        let rows = self.rows();
        rows.by_id
            .get(id)
            .ok_or_else(|| StoreError::NotFound(id.clone()))?
            .history
            .events(&rows.names, id)
    }

    async fn children(&self, id: &ExecutionId) -> Result<Vec<ExecutionId>, StoreError> {
        self.rows()
            .by_id
            .get(id)
            .map(|r| r.children.clone())
            .ok_or_else(|| StoreError::NotFound(id.clone()))
    }

    async fn list(
        &self,
        filter: &ExecutionFilter,
    ) -> Result<Vec<Result<ExecutionSummary, CorruptRow>>, StoreError> {
        let rows = self.rows();
        let ordered: Box<dyn Iterator<Item = &ExecutionId>> = if filter.newest_first {
            Box::new(rows.order.iter().rev())
        } else {
            Box::new(rows.order.iter())
        };
        Ok(ordered
            .filter_map(|id| rows.by_id.get(id))
            .filter(|r| filter.matches(&r.record))
            .skip(filter.offset)
            .take(filter.limit.unwrap_or(usize::MAX))
            .map(|r| Ok(ExecutionSummary::from(&r.record)))
            .collect())
    }

    async fn unfinished(&self) -> Result<Vec<Result<ExecutionRecord, CorruptRow>>, StoreError> {
        let rows = self.rows();
        Ok(rows
            .order
            .iter()
            .filter_map(|id| rows.by_id.get(id))
            .filter(|r| !r.record.status.is_terminal())
            .map(|r| Ok(r.record.clone()))
            .collect())
    }
}
