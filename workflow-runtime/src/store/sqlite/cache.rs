//! What the writer thread remembers of the executions it writes to.
//!
//! Every checkpoint needs the execution's status (an ended one takes no checkpoint), its
//! row's key, its parent (for the parent's events) and the number of its next history
//! event. Reading
//! them from the file was two queries per checkpoint (a `SELECT` of the row and a
//! `SELECT max(seq)` of its events) on the thread every execution shares. The writer is
//! the only connection that writes (the store's lock file sees to that), so it can keep
//! them: loaded on first use, updated by its own writes.
//!
//! The file stays the truth: an entry the writer cannot vouch for is forgotten and read
//! again. Entries touched by writes that are rolled back are forgotten (the rollback
//! undid what they recorded), and so are ended executions at commit, which bounds the
//! cache by the executions in flight.

use std::collections::HashMap;

use rusqlite::Connection;

use super::rows;
use crate::error::StoreError;
use crate::store::Status;
use crate::ExecutionId;

/// Past this many entries the cache starts over (they are read again on use).
const MAX_ENTRIES: usize = 1 << 20;

/// What the writer knows of one execution, as of its own last write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Known {
    /// Its row's `key`, which its updates and events use instead of its id.
    pub(super) key: i64,
    /// The `seq` of its next history event.
    pub(super) next_seq: i64,
    pub(super) parent: Option<ExecutionId>,
    pub(super) status: Status,
}

#[derive(Debug, Default)]
pub(super) struct Cache {
    entries: HashMap<ExecutionId, Known>,
    /// Executions whose entry the open transaction loaded or changed, in order.
    touched: Vec<ExecutionId>,
}

impl Cache {
    /// The execution's entry, read from the file if it is not cached; `None` if the
    /// execution does not exist.
    pub(super) fn load(
        &mut self,
        conn: &Connection,
        id: &ExecutionId,
    ) -> Result<Option<&mut Known>, StoreError> {
        self.touched.push(id.clone());
        if !self.entries.contains_key(id) {
            match rows::known(conn, id)? {
                Some(known) => {
                    self.entries.insert(id.clone(), known);
                }
                None => return Ok(None),
            }
        }
        Ok(self.entries.get_mut(id))
    }

    pub(super) fn contains(&self, id: &ExecutionId) -> bool {
        self.entries.contains_key(id)
    }

    /// Records a new execution.
    pub(super) fn insert(&mut self, id: ExecutionId, known: Known) {
        self.touched.push(id.clone());
        self.entries.insert(id, known);
    }

    pub(super) fn set_status(&mut self, id: &ExecutionId, status: Status) {
        self.touched.push(id.clone());
        if let Some(known) = self.entries.get_mut(id) {
            known.status = status;
        }
    }

    /// Where the open transaction is, for [`Cache::rolled_back`].
    pub(super) fn mark(&self) -> usize {
        self.touched.len()
    }

    /// Forgets what was loaded or changed since `mark`, whose writes were rolled back.
    pub(super) fn rolled_back(&mut self, mark: usize) {
        for id in self.touched.drain(mark.min(self.touched.len())..) {
            self.entries.remove(&id);
        }
    }

    /// The transaction committed: what it recorded is in the file.
    pub(super) fn committed(&mut self) {
        for id in self.touched.drain(..) {
            if self
                .entries
                .get(&id)
                .is_some_and(|known| known.status.is_terminal())
            {
                self.entries.remove(&id);
            }
        }
        if self.entries.len() > MAX_ENTRIES {
            self.entries.clear();
        }
    }
}
