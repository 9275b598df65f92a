//! The file's schema and how a file is checked and upgraded on open.
//!
//! The version is SQLite's `user_version`; `application_id` marks the file as a workflow
//! store so that another application's database is never touched. Version `n` is
//! reached by running `MIGRATIONS[..n]` in order, each in the open transaction, so a
//! future version adds a migration and existing files upgrade on open. A file with a
//! version above [`SCHEMA_VERSION`] was written by a newer program: it is refused before
//! anything is written to it.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use crate::error::OpenError;

/// `PRAGMA application_id` of a workflow store: "WFLW".
pub(super) const APPLICATION_ID: i64 = 0x5746_4c57;

/// The schema version this version of the crate writes.
pub(super) const SCHEMA_VERSION: i64 = 1;

/// `MIGRATIONS[i]` upgrades a file from version `i` to `i + 1`.
const MIGRATIONS: [&str; SCHEMA_VERSION as usize] = [
    // 1: executions, their histories, and the indexes recovery and listings use.
    "
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
