use std::collections::HashMap;
use std::sync::Mutex;

use super::{Checkpoint, ExecutionRecord, Store};
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
    rows: Mutex<HashMap<ExecutionId, Row>>,
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

    fn rows(&self) -> std::sync::MutexGuard<'_, HashMap<ExecutionId, Row>> {
        // A panic while holding the lock cannot leave a row half-written (every update is
        // a single assignment or push), so a poisoned lock is still consistent.
        self.rows.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait::async_trait]
impl Store for MemoryStore {
    async fn create(&self, record: ExecutionRecord, events: Vec<Event>) -> Result<(), StoreError> {
        let mut rows = self.rows();
        if rows.contains_key(&record.id) {
            return Err(StoreError::AlreadyExists(record.id));
        }
        if let Some(parent) = &record.parent {
            let parent = rows
                .get_mut(parent)
                .ok_or_else(|| StoreError::NotFound(parent.clone()))?;
            parent.children.push(record.id.clone());
        }
        let id = record.id.clone();
        rows.insert(
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
        let row = rows
            .get_mut(&cp.id)
            .ok_or_else(|| StoreError::NotFound(cp.id.clone()))?;
        let record = &mut row.record;
        record.status = cp.status;
        if let Some(state) = cp.state {
            record.state = state;
        }
        if cp.outcome.is_some() {
            record.outcome = cp.outcome;
        }
        record.wake_at = cp.wake_at;
        record.updated_at = cp.at;
        row.history.extend(cp.events);
        Ok(())
    }

    async fn append(&self, id: &ExecutionId, events: Vec<Event>) -> Result<(), StoreError> {
        let mut rows = self.rows();
        let row = rows
            .get_mut(id)
            .ok_or_else(|| StoreError::NotFound(id.clone()))?;
        row.history.extend(events);
        Ok(())
    }

    async fn get(&self, id: &ExecutionId) -> Result<Option<ExecutionRecord>, StoreError> {
        Ok(self.rows().get(id).map(|r| r.record.clone()))
    }

    async fn history(&self, id: &ExecutionId) -> Result<Vec<Event>, StoreError> {
        self.rows()
            .get(id)
            .map(|r| r.history.clone())
            .ok_or_else(|| StoreError::NotFound(id.clone()))
    }

    async fn children(&self, id: &ExecutionId) -> Result<Vec<ExecutionId>, StoreError> {
        self.rows()
            .get(id)
            .map(|r| r.children.clone())
            .ok_or_else(|| StoreError::NotFound(id.clone()))
    }
}
