//! What the writer thread remembers of the executions it writes to.
//!
//! Every checkpoint needs the execution's status (an ended one takes no checkpoint), its
//! row's key, its parent (for the parent's events) and the number of its next history
//! event. Reading them from the file was two queries per checkpoint (a `SELECT` of the
//! row and a `SELECT max(seq)` of its events) on the thread every execution shares. The
//! writer is the only connection that writes (the store's lock sees to that), so it
//! can keep them: loaded on first use, updated by its own writes.
//!
//! The file stays the truth: an entry the writer cannot vouch for is forgotten and read
//! again. A rollback, of a transaction or of one write's savepoint, forgets every entry
//! (rollbacks are rare, and tracking what each write touched cost more than reloading
//! the executions in flight after one); ended executions are forgotten at commit, which
//! bounds the cache by the executions in flight.

use rusqlite::{Connection, OptionalExtension};

use super::errors::Cause;

use crate::error::StoreError;
use crate::execution::{ExecutionId, Status};
use crate::HashMap;

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
    /// Executions the open transaction ended, forgotten once it commits.
    ended: Vec<ExecutionId>,
}

impl Cache {
    /// The execution's entry, read from the file if it is not cached; `None` if the
    /// execution does not exist.
    pub(super) fn load(
        &mut self,
        conn: &Connection,
        id: &ExecutionId,
    ) -> Result<Option<&mut Known>, Cause> {
        if !self.entries.contains_key(id) {
            match known(conn, id)? {
                Some(known) => {
                    self.entries.insert(id.clone(), known);
                }
                None => return Ok(None),
            }
        }
        Ok(self.entries.get_mut(id))
    }

    /// The execution's entry if it is cached.
    pub(super) fn get_mut(&mut self, id: &ExecutionId) -> Option<&mut Known> {
        self.entries.get_mut(id)
    }

    pub(super) fn contains(&self, id: &ExecutionId) -> bool {
        self.entries.contains_key(id)
    }

    /// Records a new execution.
    pub(super) fn insert(&mut self, id: ExecutionId, known: Known) {
        if known.status.is_terminal() {
            self.ended.push(id.clone());
        }
        self.entries.insert(id, known);
    }

    /// Records that the open transaction ends the execution.
    pub(super) fn ended(&mut self, id: &ExecutionId) {
        self.ended.push(id.clone());
    }

    /// Writes were rolled back: what the cache recorded of them is wrong, and which
    /// entries they touched is not kept.
    pub(super) fn rolled_back(&mut self) {
        self.entries.clear();
        self.ended.clear();
    }

    /// The transaction committed: what it recorded is in the file.
    pub(super) fn committed(&mut self) {
        for id in self.ended.drain(..) {
            self.entries.remove(&id);
        }
        if self.entries.len() > MAX_ENTRIES {
            self.entries.clear();
        }
    }
}

/// What the writer needs to know of an execution, from the file: `None` if there is none.
fn known(conn: &Connection, id: &ExecutionId) -> Result<Option<Known>, Cause> {
    let row: Option<(i64, String, Option<String>, i64)> = conn
        .prepare_cached(
            "SELECT e.key, e.status, (SELECT p.id FROM executions p WHERE p.key = e.parent), \
               (SELECT coalesce(max(seq), 0) FROM events WHERE execution = e.key) \
             FROM executions e WHERE e.id = ?1",
        )
        .and_then(|mut s| {
            s.query_row([id.as_str()], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .optional()
        })?;
    let Some((key, status, parent, last)) = row else {
        return Ok(None);
    };
    let status = Status::parse(&status).ok_or_else(|| {
        Cause::Store(StoreError::Corrupt {
            id: id.clone(),
            message: format!("status: {status}"),
        })
    })?;
    Ok(Some(Known {
        key,
        next_seq: last + 1,
        parent: parent.map(ExecutionId::from),
        status,
    }))
}
