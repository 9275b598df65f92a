use std::collections::HashMap;
use std::sync::Mutex;

use super::{Checkpoint, ExecutionFilter, ExecutionRecord, ExecutionSummary, Store};
use crate::error::StoreError;
use crate::history::Event;
use crate::ExecutionId;

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
}

#[derive(Debug)]
struct Row {
    record: ExecutionRecord,
    history: Vec<Event>,
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
        if rows.by_id.contains_key(&record.id) {
            return Err(StoreError::AlreadyExists(record.id));
        }
        if let Some(parent) = &record.parent {
            let parent = rows
                .by_id
                .get_mut(parent)
                .ok_or_else(|| StoreError::NotFound(parent.clone()))?;
            parent.children.push(record.id.clone());
            parent.history.extend(parent_events);
        }
        let id = record.id.clone();
        rows.order.push(id.clone());
        rows.by_id.insert(
            id,
            Row {
                record,
                history: events,
                children: Vec::new(),
            },
        );
        Ok(())
    }

    async fn checkpoint(&self, cp: Checkpoint) -> Result<(), StoreError> {
        let mut rows = self.rows();
        // Every check before any change: a refused checkpoint writes nothing.
        let row = rows
            .by_id
            .get(&cp.id)
            .ok_or_else(|| StoreError::NotFound(cp.id.clone()))?;
        if row.record.status.is_terminal() {
            return Err(StoreError::Ended(cp.id));
        }
        let parent = row.record.parent.clone();
        if let Some(parent) = parent.as_ref().filter(|_| !cp.parent_events.is_empty()) {
            if !rows.by_id.contains_key(parent) {
                return Err(StoreError::NotFound(parent.clone()));
            }
        }
        if let Some(row) = rows.by_id.get_mut(&cp.id) {
            let record = &mut row.record;
            record.status = cp.status;
            if let Some(saved) = cp.state {
                record.state = saved.bytes;
                record.wake_at = saved.waiting.as_ref().and_then(|w| w.wake_at());
                record.waiting = saved.waiting;
                record.batches = saved.batches;
            }
            if cp.status.is_terminal() {
                record.waiting = None;
                record.wake_at = None;
            }
            if cp.outcome.is_some() {
                record.outcome = cp.outcome;
            }
            record.updated_at = cp.at;
            row.history.extend(cp.events);
        }
        if let Some(parent) = parent.and_then(|p| rows.by_id.get_mut(&p)) {
            parent.history.extend(cp.parent_events);
        }
        Ok(())
    }

    async fn append(&self, id: &ExecutionId, events: Vec<Event>) -> Result<(), StoreError> {
        let mut rows = self.rows();
        let row = rows
            .by_id
            .get_mut(id)
            .ok_or_else(|| StoreError::NotFound(id.clone()))?;
        row.history.extend(events);
        Ok(())
    }

    async fn get(&self, id: &ExecutionId) -> Result<Option<ExecutionRecord>, StoreError> {
        Ok(self.rows().by_id.get(id).map(|r| r.record.clone()))
    }

    async fn history(&self, id: &ExecutionId) -> Result<Vec<Event>, StoreError> {
        self.rows()
            .by_id
            .get(id)
            .map(|r| r.history.clone())
            .ok_or_else(|| StoreError::NotFound(id.clone()))
    }

    async fn children(&self, id: &ExecutionId) -> Result<Vec<ExecutionId>, StoreError> {
        self.rows()
            .by_id
            .get(id)
            .map(|r| r.children.clone())
            .ok_or_else(|| StoreError::NotFound(id.clone()))
    }

    async fn list(&self, filter: &ExecutionFilter) -> Result<Vec<ExecutionSummary>, StoreError> {
        let rows = self.rows();
        Ok(rows
            .order
            .iter()
            .filter_map(|id| rows.by_id.get(id))
            .filter(|r| filter.matches(&r.record))
            .take(filter.limit.unwrap_or(usize::MAX))
            .map(|r| ExecutionSummary::from(&r.record))
            .collect())
    }

    async fn unfinished(&self) -> Result<Vec<Result<ExecutionRecord, StoreError>>, StoreError> {
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
