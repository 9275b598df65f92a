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

use std::hash::BuildHasher;

use hashbrown::HashTable;
use rusqlite::{Connection, OptionalExtension};

use super::errors::Cause;

use crate::error::StoreError;
use crate::execution::{ExecutionId, Status};

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

/// How a store hashes execution ids for its writer's cache: seeded at random per store
/// (ids can be chosen by callers), and shared by the store's handles and its writer, so
/// that a checkpoint's id is hashed once, on the caller's thread, when it is encoded.
/// The writer thread, which every execution shares, then hashes nothing on the way
/// most writes take, and probes the table once per checkpoint. (It used to hash each
/// checkpoint's id three times and probe three times: 6 % of its time at 10,000
/// executions in flight, against 2.4 % for the one probe now; `perf record`, workload
/// 3 of the bench.)
#[derive(Clone, Debug, Default)]
pub(super) struct IdHasher(foldhash::fast::RandomState);

impl IdHasher {
    fn hash(&self, id: &ExecutionId) -> u64 {
        self.0.hash_one(id)
    }

    /// `id` with its hash, for a look-up now.
    pub(super) fn key<'a>(&self, id: &'a ExecutionId) -> Key<'a> {
        Key {
            id,
            hash: self.hash(id),
        }
    }

    /// `id` with its hash, to travel with a write.
    pub(super) fn hashed(&self, id: ExecutionId) -> HashedId {
        let hash = self.hash(&id);
        HashedId { id, hash }
    }
}

/// What the cache is searched by: an id and its hash, made only by an [`IdHasher`], so
/// that the two always agree.
#[derive(Clone, Copy)]
pub(super) struct Key<'a> {
    pub(super) id: &'a ExecutionId,
    hash: u64,
}

/// An id hashed ahead of its look-up (see [`IdHasher`]).
pub(super) struct HashedId {
    pub(super) id: ExecutionId,
    hash: u64,
}

impl HashedId {
    pub(super) fn key(&self) -> Key<'_> {
        Key {
            id: &self.id,
            hash: self.hash,
        }
    }
}

/// No `Default`: a cache is made with its store's hasher ([`Cache::new`]), which hashed
/// the keys its checkpoints bring.
pub(super) struct Cache {
    hasher: IdHasher,
    entries: HashTable<(ExecutionId, Known)>,
    /// Executions the open transaction ended, forgotten once it commits.
    ended: Vec<(ExecutionId, u64)>,
}

impl Cache {
    /// An empty cache whose keys are made by `hasher`.
    pub(super) fn new(hasher: IdHasher) -> Cache {
        Cache {
            hasher,
            entries: HashTable::new(),
            ended: Vec::new(),
        }
    }

    /// `id` with its hash, for a write that did not bring one.
    pub(super) fn key<'a>(&self, id: &'a ExecutionId) -> Key<'a> {
        self.hasher.key(id)
    }

    /// The execution's entry, read from the file if it is not cached; `None` if the
    /// execution does not exist. One probe of the table when it is cached.
    pub(super) fn load(
        &mut self,
        conn: &Connection,
        key: Key<'_>,
    ) -> Result<Option<&mut Known>, Cause> {
        let Cache {
            hasher, entries, ..
        } = self;
        let entries = match entries.find_entry(key.hash, |(id, _)| id == key.id) {
            Ok(found) => return Ok(Some(&mut found.into_mut().1)),
            Err(absent) => absent.into_table(),
        };
        let Some(known) = known(conn, key.id)? else {
            return Ok(None);
        };
        let entry =
            entries.insert_unique(key.hash, (key.id.clone(), known), |(id, _)| hasher.hash(id));
        Ok(Some(&mut entry.into_mut().1))
    }

    /// The execution's entry if it is cached.
    pub(super) fn get_mut(&mut self, key: Key<'_>) -> Option<&mut Known> {
        self.entries
            .find_mut(key.hash, |(id, _)| id == key.id)
            .map(|(_, known)| known)
    }

    pub(super) fn contains(&self, key: Key<'_>) -> bool {
        self.entries
            .find(key.hash, |(id, _)| id == key.id)
            .is_some()
    }

    /// Records a new execution, which the cache does not hold.
    pub(super) fn insert(&mut self, key: Key<'_>, known: Known) {
        if known.status.is_terminal() {
            self.ended(key);
        }
        let hasher = &self.hasher;
        self.entries
            .insert_unique(key.hash, (key.id.clone(), known), |(id, _)| hasher.hash(id));
    }

    /// Records that the open transaction ends the execution.
    pub(super) fn ended(&mut self, key: Key<'_>) {
        self.ended.push((key.id.clone(), key.hash));
    }

    /// Writes were rolled back: what the cache recorded of them is wrong, and which
    /// entries they touched is not kept.
    pub(super) fn rolled_back(&mut self) {
        self.entries.clear();
        self.ended.clear();
    }

    /// The transaction committed: what it recorded is in the file.
    pub(super) fn committed(&mut self) {
        for (ended, hash) in self.ended.drain(..) {
            if let Ok(entry) = self.entries.find_entry(hash, |(id, _)| *id == ended) {
                entry.remove();
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn known(key: i64) -> Known {
        Known {
            key,
            next_seq: 1,
            parent: None,
            status: Status::Running,
        }
    }

    #[test]
    fn an_id_hashed_on_another_thread_finds_its_entry_until_its_end_commits() {
        let hasher = IdHasher::default();
        let mut cache = Cache::new(hasher.clone());
        let ids: Vec<ExecutionId> = (0..1000).map(|i| format!("e{i}").into()).collect();
        for (key, id) in (0..).zip(&ids) {
            cache.insert(cache.key(id), known(key));
        }
        // As a checkpoint's id is: hashed by the store's handle, on a runtime's thread.
        let hashed = std::thread::spawn({
            let (hasher, id) = (hasher.clone(), ids[7].clone());
            move || hasher.hashed(id)
        })
        .join()
        .unwrap();
        assert_eq!(cache.get_mut(hashed.key()).map(|k| k.key), Some(7));

        cache.ended(hashed.key());
        assert!(cache.contains(cache.key(&ids[7])), "kept until the commit");
        cache.committed();
        assert!(!cache.contains(hashed.key()));
        assert!(cache.get_mut(cache.key(&ids[7])).is_none());
        assert_eq!(cache.get_mut(cache.key(&ids[8])).map(|k| k.key), Some(8));

        cache.rolled_back();
        assert!(!cache.contains(cache.key(&ids[8])));
    }
}
