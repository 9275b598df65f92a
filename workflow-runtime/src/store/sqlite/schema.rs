//! The file's schema and how a file is checked and upgraded on open.
//!
//! The version is SQLite's `user_version`; `application_id` marks the file as a workflow
//! store so that another application's database is never touched. Version `n` is
//! reached by running `MIGRATIONS[..n]` in order, each in the open transaction, so a
//! future version adds a migration and existing files upgrade on open. A file with a
//! version above [`SCHEMA_VERSION`] was written by a newer program: it is refused before
//! anything is written to it.
//!
//! # Why version 2
//!
//! Version 1 keyed executions and events by the execution's id, a random UUID (children:
//! `{parent}/{batch}.{i}`). Every checkpoint then wrote to a random page of the id index
//! and of `events`: with 10,000 executions in flight, a group commit dirtied thousands of
//! pages scattered over the whole file, each written to the log. Version 2 keys both by
//! an integer assigned in creation order (`executions.key`, the rowid), and appends
//! events in the order they happen: the executions in flight were created close
//! together, so what a commit changes sits in a few pages at the end of each B-tree.
//!
//! # Why version 3
//!
//! A [redrive](crate::Runtime::redrive) sets an ended execution running again: version 3
//! adds how many times each execution was redriven (`redrives`) and when it last was
//! (`redriven_at`, from which its workflow's timeout counts after a restart too). Two
//! columns added in place: the rows of a version-2 file keep their keys and pages, and
//! read as never redriven.
//!
//! # Why version 4
//!
//! Callbacks (`wait_for_callback!`): version 4 adds `callback`, the id of the callback
//! an execution waits on while nobody has resolved it (`NULL` otherwise), and a partial
//! index on it, so that listing the executions waiting on a callback
//! (`ExecutionFilter::waiting_on_callback`) reads only those rows rather than decoding
//! every `waiting`. The pending callback itself (its secret, deadlines, resolution) is
//! in `waiting`, as the other waits are. Added in place: no file of an older version
//! has a callback, so every row reads `NULL`.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use crate::error::OpenError;

/// `PRAGMA application_id` of a workflow store: "WFLW".
pub(super) const APPLICATION_ID: i64 = 0x5746_4c57;

/// The page size of a new file (SQLite's default is 4 KiB; a file in WAL mode keeps the
/// size it was created with). Each page a commit changes is one frame, one `write`, in
/// the log: with thousands of executions in flight a commit changes a page for nearly
/// every row it updates, and 8 KiB pages halve the frames for about the same bytes.
/// (16 KiB measured no better.)
pub(super) const PAGE_SIZE: i64 = 8192;

/// The schema version this version of the crate writes.
pub(super) const SCHEMA_VERSION: i64 = 5;

/// Version 1: executions and events keyed by the execution's text id. (Tests build
/// version-1 files with it.)
pub(super) const VERSION_1: &str = "
    CREATE TABLE executions (
        id          TEXT PRIMARY KEY NOT NULL,
        workflow    TEXT NOT NULL,
        -- Workflow::FINGERPRINT of the definition that wrote `state` (u64 bits as i64).
        fingerprint INTEGER NOT NULL,
        parent_id   TEXT REFERENCES executions (id),
        -- The parent's call site: node name, batch number, index in the batch.
        call_node   TEXT,
        call_batch  INTEGER,
        call_index  INTEGER,
        status      TEXT NOT NULL,
        input       TEXT NOT NULL,
        state       BLOB NOT NULL,
        -- JSON of `Wait`: the timer or the batch of children the state waits for.
        waiting     TEXT,
        batches     INTEGER NOT NULL DEFAULT 0,
        outcome     TEXT,
        wake_at     INTEGER,
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL
    );
    -- A child exists once per call site: a restarted parent finds it instead of
    -- creating it again. (NULLs are distinct, so top-level executions never collide.)
    CREATE UNIQUE INDEX executions_call_site
        ON executions (parent_id, call_batch, call_index);
    CREATE INDEX executions_by_status ON executions (status, workflow);
    CREATE INDEX executions_by_workflow ON executions (workflow, status);
    -- The pending timers.
    CREATE INDEX executions_by_wake_at ON executions (wake_at) WHERE wake_at IS NOT NULL;

    -- Append-only: rows are inserted, never updated or deleted.
    CREATE TABLE events (
        execution_id TEXT NOT NULL REFERENCES executions (id),
        seq          INTEGER NOT NULL,
        at           INTEGER NOT NULL,
        type         TEXT NOT NULL,
        state        TEXT,
        -- JSON of the whole `Event`.
        body         TEXT NOT NULL,
        PRIMARY KEY (execution_id, seq)
    ) WITHOUT ROWID;
";

/// `MIGRATIONS[i]` upgrades a file from version `i` to `i + 1`. (Tests build files of
/// older versions with its first entries.)
pub(super) const MIGRATIONS: [&str; SCHEMA_VERSION as usize] = [
    // 1: executions, their histories, and the indexes recovery and listings use.
    VERSION_1,
    // 2: integer keys in creation order; events appended in the order they happen. A
    // new file runs it too (on empty tables), so that all files have one schema.
    "
    -- Renaming (SQLite >= 3.26) rewrites the references to the renamed table, so the old
    -- `events` follows the old `executions`. The old indexes go first, to free their names.
    DROP INDEX executions_call_site;
    DROP INDEX executions_by_status;
    DROP INDEX executions_by_workflow;
    DROP INDEX executions_by_wake_at;
    ALTER TABLE executions RENAME TO executions_v1;
    ALTER TABLE events RENAME TO events_v1;

    CREATE TABLE executions (
        -- The rowid, assigned in creation order: what other rows refer to, and what the
        -- writer updates by.
        key         INTEGER PRIMARY KEY,
        id          TEXT NOT NULL UNIQUE,
        workflow    TEXT NOT NULL,
        -- Workflow::FINGERPRINT of the definition that wrote `state` (u64 bits as i64).
        fingerprint INTEGER NOT NULL,
        parent      INTEGER REFERENCES executions (key),
        -- The parent's call site: node name, batch number, index in the batch.
        call_node   TEXT,
        call_batch  INTEGER,
        call_index  INTEGER,
        status      TEXT NOT NULL,
        input       TEXT NOT NULL,
        state       BLOB NOT NULL,
        -- JSON of `Wait`: the timer or the batch of children the state waits for.
        waiting     TEXT,
        batches     INTEGER NOT NULL DEFAULT 0,
        outcome     TEXT,
        -- When the timer `waiting` names is due.
        wake_at     INTEGER,
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL
    );
    -- A child exists once per call site: a restarted parent finds it instead of
    -- creating it again. Also how a parent's children are found. Top-level executions
    -- have no entry.
    CREATE UNIQUE INDEX executions_call_site
        ON executions (parent, call_batch, call_index) WHERE parent IS NOT NULL;
    -- Recovery's executions: only a creation or an end changes it, and an end only
    -- removes. Version 1 also indexed `wake_at` (rewritten at every wait), all statuses,
    -- and (workflow, status): no query read them (recovery reads every unfinished
    -- execution; a listing's filters are optional parameters, which no index serves, so
    -- it reads the rows in key order).
    CREATE INDEX executions_unfinished ON executions (status)
        WHERE status IN ('Running', 'VersionMismatch');

    -- Append-only, in the order events happen: the events of one commit share the last
    -- pages, where keyed by execution they would land on a page per execution. Each
    -- event is its JSON only: its time, node and type are in it, and nothing reads
    -- them apart.
    CREATE TABLE events (
        execution INTEGER NOT NULL REFERENCES executions (key),
        seq       INTEGER NOT NULL,
        body      TEXT NOT NULL
    );
    CREATE UNIQUE INDEX events_by_execution ON events (execution, seq);

    -- Keys are the old rowids: creation order, which listings follow.
    INSERT INTO executions (key, id, workflow, fingerprint, parent, call_node, call_batch,
        call_index, status, input, state, waiting, batches, outcome, wake_at, created_at,
        updated_at)
    SELECT e.rowid, e.id, e.workflow, e.fingerprint, p.rowid, e.call_node, e.call_batch,
        e.call_index, e.status, e.input, e.state, e.waiting, e.batches, e.outcome,
        e.wake_at, e.created_at, e.updated_at
    FROM executions_v1 e LEFT JOIN executions_v1 p ON p.id = e.parent_id
    ORDER BY e.rowid;
    INSERT INTO events (execution, seq, body)
    SELECT x.rowid, v.seq, v.body
    FROM events_v1 v JOIN executions_v1 x ON x.id = v.execution_id
    ORDER BY x.rowid, v.seq;
    DROP TABLE events_v1;
    DROP TABLE executions_v1;
    ",
    // 3: redrives. Neither column is indexed: only a redrive, which reads the row by id,
    // and recovery, which reads every column of the unfinished rows, use them.
    "
    ALTER TABLE executions ADD COLUMN redrives INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE executions ADD COLUMN redriven_at INTEGER;
    ",
    // 4: callbacks. The index holds only the executions waiting on one, a handful
    // beside the executions in flight, and a checkpoint that does not wait on one
    // leaves it alone (`NULL` before and after).
    "
    ALTER TABLE executions ADD COLUMN callback TEXT;
    CREATE INDEX executions_waiting_on_callback ON executions (callback)
        WHERE callback IS NOT NULL;
    ",
    // 5: the trace an execution's spans belong to (W3C `traceparent`), written once when
    // it is created and read when it is resumed.
    "
    ALTER TABLE executions ADD COLUMN trace TEXT;
    ",
];

/// Checks the file's identity and version, then creates or upgrades its schema.
///
/// The checks only read: a refused file is left exactly as it was.
pub(super) fn prepare(conn: &mut Connection, path: &Path) -> Result<(), OpenError> {
    let sqlite = |source| OpenError::Sqlite {
        path: path.to_owned(),
        source,
    };
    let (application_id, version, tables) = identify(conn).map_err(sqlite)?;
    if application_id != APPLICATION_ID && (application_id != 0 || tables > 0) {
        return Err(OpenError::ForeignDatabase {
            path: path.to_owned(),
            application_id,
        });
    }
    if version > SCHEMA_VERSION {
        return Err(OpenError::SchemaTooNew {
            path: path.to_owned(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if tables == 0 {
        // Only takes effect on an empty file, and before WAL mode.
        conn.pragma_update(None, "page_size", PAGE_SIZE)
            .map_err(sqlite)?;
    }
    // WAL lets readers run beside the writer, and a commit is one append to the log.
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(sqlite)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(OpenError::WalUnavailable {
            path: path.to_owned(),
            mode,
        });
    }
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sqlite)?;
    // Read again under the write lock: a concurrent opener may have migrated already.
    let (_, version, _) = identify(&tx).map_err(sqlite)?;
    let from = usize::try_from(version).unwrap_or(0);
    for migration in MIGRATIONS.iter().skip(from) {
        tx.execute_batch(migration).map_err(sqlite)?;
    }
    tx.pragma_update(None, "application_id", APPLICATION_ID)
        .map_err(sqlite)?;
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(sqlite)?;
    tx.commit().map_err(sqlite)
}

/// `(application_id, user_version, number of tables)`.
/// Checks, without writing anything, that the file is a store this version reads as it
/// is: what [`SqliteStore::open_read_only`](super::SqliteStore::open_read_only) needs.
pub(super) fn check_readable(conn: &Connection, path: &Path) -> Result<(), OpenError> {
    let (application_id, version, tables) = identify(conn).map_err(|source| OpenError::Sqlite {
        path: path.to_owned(),
        source,
    })?;
    if application_id != APPLICATION_ID && (application_id != 0 || tables > 0) {
        return Err(OpenError::ForeignDatabase {
            path: path.to_owned(),
            application_id,
        });
    }
    match version.cmp(&SCHEMA_VERSION) {
        std::cmp::Ordering::Greater => Err(OpenError::SchemaTooNew {
            path: path.to_owned(),
            found: version,
            supported: SCHEMA_VERSION,
        }),
        std::cmp::Ordering::Less => Err(OpenError::SchemaTooOld {
            path: path.to_owned(),
            found: version,
            supported: SCHEMA_VERSION,
        }),
        std::cmp::Ordering::Equal => Ok(()),
    }
}

fn identify(conn: &Connection) -> rusqlite::Result<(i64, i64, i64)> {
    let application_id = conn.pragma_query_value(None, "application_id", |r| r.get(0))?;
    let version = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let tables = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
        [],
        |r| r.get(0),
    )?;
    Ok((application_id, version, tables))
}
