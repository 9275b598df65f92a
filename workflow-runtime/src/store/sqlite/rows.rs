//! Records and events to SQL rows and back.

use rusqlite::{params, Connection, ErrorCode, OptionalExtension, Row};

use crate::error::StoreError;
use crate::history::Event;
use crate::store::{CallSite, Checkpoint, ExecutionRecord, ExecutionSummary, Status, Wait};
use crate::time::Timestamp;
use crate::ExecutionId;

/// The columns [`record`] reads, in order.
pub(super) const RECORD_COLUMNS: &str = "id, workflow, fingerprint, parent_id, call_node, \
     call_batch, call_index, status, input, state, waiting, batches, outcome, wake_at, \
     created_at, updated_at";

/// The columns [`summary`] reads, in order.
pub(super) const SUMMARY_COLUMNS: &str = "id, workflow, parent_id, status, created_at, updated_at";

/// SQLite's errors that say "not now" rather than "never": the transaction was rolled
/// back, and the same write can succeed once the disk has room or the lock is free.
pub(super) fn is_transient(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::DiskFull
                | ErrorCode::SystemIoFailure
                | ErrorCode::OutOfMemory
                | ErrorCode::CannotOpen
        )
    )
}

pub(super) fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

pub(super) fn store_error(e: rusqlite::Error) -> StoreError {
    if is_transient(&e) {
        StoreError::Unavailable(e.to_string())
    } else {
        StoreError::Backend(e.to_string())
    }
}

/// Timestamps are microseconds since the epoch: an `i64` holds 292,000 years of them.
fn ts(t: Timestamp) -> Result<i64, StoreError> {
    i64::try_from(t.0).map_err(|_| StoreError::Backend(format!("timestamp {} out of range", t.0)))
}

fn from_ts(t: i64) -> Timestamp {
    Timestamp(u64::try_from(t).unwrap_or(0))
}

/// SQLite integers are signed; a fingerprint keeps its 64 bits.
fn fingerprint_to_sql(fp: u64) -> i64 {
    i64::from_ne_bytes(fp.to_ne_bytes())
}

fn fingerprint_from_sql(fp: i64) -> u64 {
    u64::from_ne_bytes(fp.to_ne_bytes())
}

fn to_i64(n: impl TryInto<i64>, what: &str) -> Result<i64, StoreError> {
    n.try_into()
        .map_err(|_| StoreError::Backend(format!("{what} out of range")))
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Backend(e.to_string()))
}

/// Inserts a new execution with its first events, and its parent's events.
pub(super) fn insert_execution(
    conn: &Connection,
    record: &ExecutionRecord,
    events: &[Event],
    parent_events: &[Event],
) -> Result<(), StoreError> {
    let exists = |id: &ExecutionId| -> Result<bool, StoreError> {
        conn.prepare_cached("SELECT 1 FROM executions WHERE id = ?1")
            .and_then(|mut s| s.exists([id.as_str()]))
            .map_err(store_error)
    };
    if exists(&record.id)? {
        return Err(StoreError::AlreadyExists(record.id.clone()));
    }
    if let Some(parent) = &record.parent {
        if !exists(parent)? {
            return Err(StoreError::NotFound(parent.clone()));
        }
    }
    let site = record.call_site.as_ref();
    let call_batch = site.map(|s| to_i64(s.batch, "batch")).transpose()?;
    let call_index = site.map(|s| to_i64(s.index, "index")).transpose()?;
    let waiting = record.waiting.as_ref().map(json).transpose()?;
    let outcome = record.outcome.as_ref().map(json).transpose()?;
    let wake_at = record.wake_at.map(ts).transpose()?;
    let input = json(&record.input)?;
    let batches = to_i64(record.batches, "batches")?;
    let created_at = ts(record.created_at)?;
    let updated_at = ts(record.updated_at)?;
    conn.prepare_cached(
        "INSERT INTO executions (id, workflow, fingerprint, parent_id, call_node, call_batch, \
         call_index, status, input, state, waiting, batches, outcome, wake_at, created_at, \
         updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
    )
    .and_then(|mut s| {
        s.execute(params![
            record.id.as_str(),
            record.workflow,
            fingerprint_to_sql(record.fingerprint),
            record.parent.as_ref().map(ExecutionId::as_str),
            site.map(|s| s.node.as_str()),
            call_batch,
            call_index,
            record.status.as_str(),
            input,
            record.state,
            waiting,
            batches,
            outcome,
            wake_at,
            created_at,
            updated_at,
        ])
    })
    .map_err(|e| match e.sqlite_error_code() {
        // The call site is taken: the same child, under another id, cannot exist twice.
        Some(ErrorCode::ConstraintViolation) => StoreError::AlreadyExists(record.id.clone()),
        _ => store_error(e),
    })?;
    append_events(conn, &record.id, events)?;
    if let Some(parent) = &record.parent {
        append_events(conn, parent, parent_events)?;
    }
    Ok(())
}

/// Applies a checkpoint: refuses an unknown or ended execution, updates the row, appends
/// the events.
pub(super) fn apply_checkpoint(conn: &Connection, cp: &Checkpoint) -> Result<(), StoreError> {
    let current: Option<(String, Option<String>)> = conn
        .prepare_cached("SELECT status, parent_id FROM executions WHERE id = ?1")
        .and_then(|mut s| {
            s.query_row([cp.id.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(store_error)?;
    let Some((status, parent)) = current else {
        return Err(StoreError::NotFound(cp.id.clone()));
    };
    if Status::parse(&status).is_none_or(Status::is_terminal) {
        return Err(StoreError::Ended(cp.id.clone()));
    }
    let at = ts(cp.at)?;
    let status = cp.status.as_str();
    let id = cp.id.as_str();
    let run = |sql: &str, p: &[&dyn rusqlite::ToSql]| {
        conn.prepare_cached(sql)
            .and_then(|mut s| s.execute(p))
            .map_err(store_error)
    };
    if let Some(saved) = &cp.state {
        let waiting = saved.waiting.as_ref().map(json).transpose()?;
        let wake_at = saved
            .waiting
            .as_ref()
            .and_then(Wait::wake_at)
            .map(ts)
            .transpose()?;
        let batches = to_i64(saved.batches, "batches")?;
        // One statement: each UPDATE rewrites the whole row, state and input included.
        run(
            "UPDATE executions SET status = ?2, updated_at = ?3, state = ?4, waiting = ?5, \
             wake_at = ?6, batches = ?7 WHERE id = ?1",
            &[
                &id,
                &status,
                &at,
                &saved.bytes,
                &waiting,
                &wake_at,
                &batches,
            ],
        )?;
    } else {
        run(
            "UPDATE executions SET status = ?2, updated_at = ?3 WHERE id = ?1",
            &[&id, &status, &at],
        )?;
    }
    if cp.status.is_terminal() {
        run(
            "UPDATE executions SET waiting = NULL, wake_at = NULL WHERE id = ?1",
            &[&id],
        )?;
    }
    if let Some(outcome) = &cp.outcome {
        let outcome = json(outcome)?;
        run(
            "UPDATE executions SET outcome = ?2 WHERE id = ?1",
            &[&id, &outcome],
        )?;
    }
    append_events(conn, &cp.id, &cp.events)?;
    if let Some(parent) = parent {
        append_events(conn, &ExecutionId::from(parent), &cp.parent_events)?;
    }
    Ok(())
}

/// Appends events after the execution's last one.
pub(super) fn append_events(
    conn: &Connection,
    id: &ExecutionId,
    events: &[Event],
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let last: i64 = conn
        .prepare_cached("SELECT coalesce(max(seq), 0) FROM events WHERE execution_id = ?1")
        .and_then(|mut s| s.query_row([id.as_str()], |r| r.get(0)))
        .map_err(store_error)?;
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO events (execution_id, seq, at, type, state, body) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .map_err(store_error)?;
    for (seq, event) in (last + 1..).zip(events) {
        insert
            .execute(params![
                id.as_str(),
                seq,
                ts(event.at)?,
                event.kind.name(),
                event.state.as_deref(),
                json(event)?,
            ])
            .map_err(|e| match e.sqlite_error_code() {
                // The only foreign key of an event is its execution.
                Some(ErrorCode::ConstraintViolation) => StoreError::NotFound(id.clone()),
                _ => store_error(e),
            })?;
    }
    Ok(())
}

/// Decodes a row of [`RECORD_COLUMNS`]. A column that does not decode is a
/// [`StoreError::Corrupt`] naming the execution.
pub(super) fn record(row: &Row<'_>) -> rusqlite::Result<Result<ExecutionRecord, StoreError>> {
    let id = ExecutionId::from(row.get::<_, String>(0)?);
    let corrupt = |what: &str, e: &dyn std::fmt::Display| StoreError::Corrupt {
        id: id.clone(),
        message: format!("{what}: {e}"),
    };
    let parent: Option<String> = row.get(3)?;
    let call_node: Option<String> = row.get(4)?;
    let call_batch: Option<i64> = row.get(5)?;
    let call_index: Option<i64> = row.get(6)?;
    let status: String = row.get(7)?;
    let input: String = row.get(8)?;
    let waiting: Option<String> = row.get(10)?;
    let batches: i64 = row.get(11)?;
    let outcome: Option<String> = row.get(12)?;
    let wake_at: Option<i64> = row.get(13)?;
    let decoded = (|| {
        let Some(status) = Status::parse(&status) else {
            return Err(corrupt("status", &status));
        };
        let call_site = match (call_node, call_batch, call_index) {
            (Some(node), Some(batch), Some(index)) => Some(CallSite {
                node,
                batch: u64::try_from(batch).map_err(|e| corrupt("call batch", &e))?,
                index: usize::try_from(index).map_err(|e| corrupt("call index", &e))?,
            }),
            _ => None,
        };
        Ok(ExecutionRecord {
            workflow: row.get(1).map_err(|e| corrupt("workflow", &e))?,
            fingerprint: fingerprint_from_sql(row.get(2).map_err(|e| corrupt("fingerprint", &e))?),
            parent: parent.map(ExecutionId::from),
            call_site,
            status,
            input: serde_json::from_str(&input).map_err(|e| corrupt("input", &e))?,
            state: row.get(9).map_err(|e| corrupt("state", &e))?,
            waiting: waiting
                .map(|w| serde_json::from_str(&w))
                .transpose()
                .map_err(|e| corrupt("waiting", &e))?,
            batches: u64::try_from(batches).map_err(|e| corrupt("batches", &e))?,
            outcome: outcome
                .map(|o| serde_json::from_str(&o))
                .transpose()
                .map_err(|e| corrupt("outcome", &e))?,
            wake_at: wake_at.map(from_ts),
            created_at: from_ts(row.get(14).map_err(|e| corrupt("created_at", &e))?),
            updated_at: from_ts(row.get(15).map_err(|e| corrupt("updated_at", &e))?),
            id: id.clone(),
        })
    })();
    Ok(decoded)
}

/// Decodes a row of [`SUMMARY_COLUMNS`].
pub(super) fn summary(row: &Row<'_>) -> rusqlite::Result<Result<ExecutionSummary, StoreError>> {
    let id = ExecutionId::from(row.get::<_, String>(0)?);
    let status: String = row.get(3)?;
    let Some(status) = Status::parse(&status) else {
        return Ok(Err(StoreError::Corrupt {
            id,
            message: format!("status: {status}"),
        }));
    };
    Ok(Ok(ExecutionSummary {
        workflow: row.get(1)?,
        parent: row.get::<_, Option<String>>(2)?.map(ExecutionId::from),
        status,
        created_at: from_ts(row.get(4)?),
        updated_at: from_ts(row.get(5)?),
        id,
    }))
}

/// Decodes an event row's body.
pub(super) fn event(id: &ExecutionId, body: &str) -> Result<Event, StoreError> {
    serde_json::from_str(body).map_err(|e| StoreError::Corrupt {
        id: id.clone(),
        message: format!("history event: {e}"),
    })
}
