//! Records and events to SQL rows and back.
//!
//! A write is encoded ([`CreateRows`], [`CheckpointRows`], [`EventRows`]) on the caller's
//! thread, before it is queued: JSON encoding was a visible share of the writer thread,
//! which every execution shares, while callers run on all the runtime's threads. The
//! writer thread then only runs SQL.

use std::cell::RefCell;
use std::sync::OnceLock;

use rusqlite::types::{Null, ToSqlOutput, ValueRef};
use rusqlite::{params, CachedStatement, Connection, ErrorCode, Row, ToSql};
use smallvec::SmallVec;

use super::cache::{Cache, HashedId, IdHasher, Known};
use super::errors::Cause;
use crate::callback::PendingCallback;
use crate::error::{CorruptRow, StoreError};
use crate::execution::{ExecutionId, Status};
use crate::history::Event;
use crate::json::Json;
use crate::store::{
    CallSite, CallbackUpdate, Checkpoint, ExecutionRecord, ExecutionSummary, Reopen, Wait,
};
use crate::time::Timestamp;

/// The columns [`record`] reads, in order, from `executions e`.
pub(super) const RECORD_COLUMNS: &str = "e.id, e.workflow, e.fingerprint, \
     (SELECT p.id FROM executions p WHERE p.key = e.parent), e.call_node, e.call_batch, \
     e.call_index, e.status, e.input, e.state, e.waiting, e.batches, e.outcome, e.wake_at, \
     e.created_at, e.updated_at, e.redrives, e.redriven_at, e.trace";

/// The columns [`summary`] reads, in order, from `executions e`.
pub(super) const SUMMARY_COLUMNS: &str = "e.id, e.workflow, \
     (SELECT p.id FROM executions p WHERE p.key = e.parent), e.status, e.created_at, \
     e.updated_at";

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
    serde_json::to_string(value).map_err(encode_error)
}

/// History events, encoded: the JSON of each whole [`Event`], one after the other in one
/// buffer. One allocation for all of a write's events rather than one each (a checkpoint
/// carries two on average), made and freed on the caller's thread.
///
/// A checkpoint puts its other values of variable size (the state's bytes, the `waiting`
/// JSON) in the same buffer, after the events ([`EventRows::push`]): a write lives from
/// its encoding until the caller has its answer, and the writes of one commit are freed
/// together on the runtime's threads, which is where glibc's allocator is slowest, so
/// each allocation a write keeps costs more than its size says.
#[derive(Default)]
pub(super) struct EventRows {
    /// The events' JSON, then whatever was pushed after them. JSON written by
    /// serde_json, which writes UTF-8 only, so it is bound as text without a check.
    buf: Vec<u8>,
    /// Where each event's JSON ends in `buf`: inline up to four events, so that a
    /// write's events cost the buffer's allocation alone.
    ends: SmallVec<[usize; 4]>,
}

/// Where a value pushed after the events is in [`EventRows`]'s buffer.
#[derive(Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
}

/// Where JSON pushed after the events is: only [`EventRows::push_json`] makes one, so
/// that only serde_json's output is ever bound as [`Text`].
#[derive(Clone, Copy)]
struct JsonSpan(Span);

/// Text already encoded as UTF-8 (JSON from serde_json), bound without checking it again.
struct Text<'a>(&'a [u8]);

impl ToSql for Text<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(ValueRef::Text(self.0)))
    }
}

fn encode_error(e: serde_json::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl EventRows {
    pub(super) fn encode(events: &[Event]) -> Result<EventRows, StoreError> {
        EventRows::with_room(events, 0)
    }

    /// `events`, in a buffer with room for `more` bytes after them.
    fn with_room(events: &[Event], more: usize) -> Result<EventRows, StoreError> {
        let mut rows = EventRows::default();
        if events.is_empty() && more == 0 {
            return Ok(rows);
        }
        rows.buf.reserve_exact(128 * events.len() + more);
        rows.ends.reserve_exact(events.len());
        for event in events {
            serde_json::to_writer(&mut rows.buf, event).map_err(encode_error)?;
            rows.ends.push(rows.buf.len());
        }
        Ok(rows)
    }

    /// Appends `bytes` after the events.
    fn push(&mut self, bytes: &[u8]) -> Span {
        let start = self.buf.len();
        self.buf.extend_from_slice(bytes);
        Span {
            start,
            end: self.buf.len(),
        }
    }

    /// Appends the JSON of `value` after the events.
    fn push_json<T: serde::Serialize>(&mut self, value: &T) -> Result<JsonSpan, StoreError> {
        let start = self.buf.len();
        serde_json::to_writer(&mut self.buf, value).map_err(encode_error)?;
        Ok(JsonSpan(Span {
            start,
            end: self.buf.len(),
        }))
    }

    fn bytes(&self, span: Span) -> &[u8] {
        &self.buf[span.start..span.end]
    }

    fn text(&self, JsonSpan(span): JsonSpan) -> Text<'_> {
        Text(self.bytes(span))
    }

    pub(super) fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Each event's JSON, in order.
    fn iter(&self) -> impl Iterator<Item = Text<'_>> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(&self.ends)
            .map(|(start, &end)| Text(&self.buf[start..end]))
    }
}

/// A new execution, encoded.
pub(super) struct CreateRows {
    id: ExecutionId,
    workflow: String,
    fingerprint: i64,
    parent: Option<ExecutionId>,
    call_node: Option<String>,
    call_batch: Option<i64>,
    call_index: Option<i64>,
    status: Status,
    input: String,
    state: Vec<u8>,
    waiting: Option<String>,
    batches: i64,
    outcome: Option<String>,
    wake_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
    redrives: i64,
    redriven_at: Option<i64>,
    trace: Option<String>,
    events: EventRows,
    parent_events: EventRows,
}

impl CreateRows {
    pub(super) fn encode(
        record: ExecutionRecord,
        events: &[Event],
        parent_events: &[Event],
    ) -> Result<CreateRows, StoreError> {
        let site = record.call_site.as_ref();
        Ok(CreateRows {
            call_batch: site.map(|s| to_i64(s.batch, "batch")).transpose()?,
            call_index: site.map(|s| to_i64(s.index, "index")).transpose()?,
            call_node: record.call_site.map(|s| s.node),
            waiting: record.waiting.as_ref().map(json).transpose()?,
            outcome: record.outcome.as_ref().map(json).transpose()?,
            wake_at: record.wake_at.map(ts).transpose()?,
            input: record.input.into_string(),
            batches: to_i64(record.batches, "batches")?,
            created_at: ts(record.created_at)?,
            updated_at: ts(record.updated_at)?,
            redrives: i64::from(record.redrives),
            redriven_at: record.redriven_at.map(ts).transpose()?,
            trace: record.trace,
            fingerprint: fingerprint_to_sql(record.fingerprint),
            id: record.id,
            workflow: record.workflow,
            parent: record.parent,
            status: record.status,
            state: record.state,
            events: EventRows::encode(events)?,
            parent_events: EventRows::encode(parent_events)?,
        })
    }
}

/// A checkpoint, encoded. Its state's bytes and `waiting` are in its events' buffer.
pub(super) struct CheckpointRows {
    id: HashedId,
    status: Status,
    at: i64,
    state: Option<StateRow>,
    outcome: Option<String>,
    events: EventRows,
    parent_events: EventRows,
}

struct StateRow {
    bytes: Span,
    waiting: Option<JsonSpan>,
    wake_at: Option<i64>,
    /// The `callback` column: the id of the callback it waits on, unresolved.
    callback: Option<String>,
    batches: i64,
}

/// The `callback` column of an execution that waits for `waiting`.
fn callback_column(waiting: Option<&Wait>) -> Option<String> {
    waiting
        .and_then(Wait::waiting_callback)
        .map(|c| c.id.clone())
}

impl CheckpointRows {
    /// `hasher` is the store's: the id is hashed here, on the caller's thread.
    pub(super) fn encode(cp: &Checkpoint, hasher: &IdHasher) -> Result<CheckpointRows, StoreError> {
        // Room for the state and a `waiting` of the usual size, so that the buffer is
        // allocated once.
        let room = cp.state.as_ref().map_or(0, |saved| saved.bytes.len() + 160);
        let mut events = EventRows::with_room(&cp.events, room)?;
        let state = match &cp.state {
            Some(saved) => Some(StateRow {
                bytes: events.push(&saved.bytes),
                waiting: saved
                    .waiting
                    .as_ref()
                    .map(|w| events.push_json(w))
                    .transpose()?,
                wake_at: saved
                    .waiting
                    .as_ref()
                    .and_then(Wait::wake_at)
                    .map(ts)
                    .transpose()?,
                callback: callback_column(saved.waiting.as_ref()),
                batches: to_i64(saved.batches, "batches")?,
            }),
            None => None,
        };
        Ok(CheckpointRows {
            at: ts(cp.at)?,
            state,
            outcome: cp.outcome.as_ref().map(json).transpose()?,
            events,
            parent_events: EventRows::encode(&cp.parent_events)?,
            id: hasher.hashed(cp.id.clone()),
            status: cp.status,
        })
    }
}

/// One execution of a reopen, encoded.
pub(super) struct ReopenRows {
    id: ExecutionId,
    expected: Status,
    redrives: i64,
    waiting: Option<String>,
    wake_at: Option<i64>,
    callback: Option<String>,
    events: EventRows,
    at: i64,
}

impl ReopenRows {
    pub(super) fn encode_all(executions: &[Reopen]) -> Result<Vec<ReopenRows>, StoreError> {
        executions
            .iter()
            .map(|r| {
                Ok(ReopenRows {
                    id: r.id.clone(),
                    expected: r.expected,
                    redrives: i64::from(r.redrives),
                    waiting: r.waiting.as_ref().map(json).transpose()?,
                    wake_at: r
                        .waiting
                        .as_ref()
                        .and_then(Wait::wake_at)
                        .map(ts)
                        .transpose()?,
                    callback: callback_column(r.waiting.as_ref()),
                    events: EventRows::encode(&r.events)?,
                    at: ts(r.at)?,
                })
            })
            .collect()
    }
}

/// Why a write was not applied, and whether it may have written part of itself before
/// failing (then only rolling back undoes it).
#[derive(Debug)]
pub(super) struct Failure {
    pub(super) error: Cause,
    pub(super) partial: bool,
}

impl Failure {
    /// Refused by a check made before anything was written.
    fn refused(error: impl Into<Cause>) -> Failure {
        Failure {
            error: error.into(),
            partial: false,
        }
    }

    /// Failed after (or while) writing.
    fn partial(error: impl Into<Cause>) -> Failure {
        Failure {
            error: error.into(),
            partial: true,
        }
    }
}

fn sql_failure(e: rusqlite::Error) -> Failure {
    Failure::partial(e)
}

const INSERT_EXECUTION: &str = "INSERT INTO executions (id, workflow, fingerprint, parent, \
     call_node, call_batch, call_index, status, input, state, waiting, batches, outcome, \
     wake_at, created_at, updated_at, redrives, redriven_at, trace) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)";

const INSERT_EVENT: &str = "INSERT INTO events (execution, seq, body) VALUES (?1, ?2, ?3)";

/// The statements of one transaction's writes, each taken from the connection's cache
/// once and held until the transaction ends.
///
/// `prepare_cached` hashes the SQL twice, allocates a key and clears the bindings on each
/// use: for the few statements every write runs (an `UPDATE`, an `INSERT` per event),
/// that was 8 % of the writer thread's instructions. Dropped before the transaction
/// commits or rolls back; the statements go back to the connection's cache then.
pub(super) struct Statements<'c> {
    pub(super) conn: &'c Connection,
    held: RefCell<Vec<(&'static str, CachedStatement<'c>)>>,
}

impl<'c> Statements<'c> {
    pub(super) fn new(conn: &'c Connection) -> Self {
        Statements {
            conn,
            held: RefCell::new(Vec::new()),
        }
    }

    /// Runs `sql` with `params`, preparing it on its first use in this transaction.
    fn execute(&self, sql: &'static str, params: &[&dyn ToSql]) -> rusqlite::Result<usize> {
        let mut held = self.held.borrow_mut();
        // Few statements, each `&'static`: the address almost always tells them apart.
        let found = held
            .iter()
            .position(|(s, _)| std::ptr::eq(*s, sql) || *s == sql);
        let i = match found {
            Some(i) => i,
            None => {
                held.push((sql, self.conn.prepare_cached(sql)?));
                held.len() - 1
            }
        };
        held[i].1.execute(params)
    }
}

/// Inserts a new execution with its first events, and its parent's events.
pub(super) fn insert_execution(
    sql: &Statements<'_>,
    cache: &mut Cache,
    rows: &CreateRows,
) -> Result<(), Failure> {
    let conn = sql.conn;
    let id = cache.key(&rows.id);
    let parent = rows.parent.as_ref().map(|p| cache.key(p));
    // A new id is not in the cache; one that is exists already. One the cache does not
    // know is refused by `id`'s uniqueness below, without a look-up first.
    if cache.contains(id) {
        return Err(Failure::refused(StoreError::AlreadyExists(rows.id.clone())));
    }
    let parent_key = match parent {
        Some(parent) => match cache.load(conn, parent).map_err(Failure::refused)? {
            Some(known) => Some(known.key),
            None => return Err(Failure::refused(StoreError::NotFound(parent.id.clone()))),
        },
        None => None,
    };
    sql.execute(
        INSERT_EXECUTION,
        params![
            rows.id.as_str(),
            rows.workflow,
            rows.fingerprint,
            parent_key,
            rows.call_node,
            rows.call_batch,
            rows.call_index,
            rows.status.as_str(),
            rows.input,
            rows.state,
            rows.waiting,
            rows.batches,
            rows.outcome,
            rows.wake_at,
            rows.created_at,
            rows.updated_at,
            rows.redrives,
            rows.redriven_at,
            rows.trace,
        ],
    )
    .map_err(|e| match e.sqlite_error_code() {
        // The id or the call site is taken: the same execution, or the same child under
        // another id, cannot exist twice. The statement failed as a whole and it is the
        // first of this write.
        Some(ErrorCode::ConstraintViolation) => {
            Failure::refused(StoreError::AlreadyExists(rows.id.clone()))
        }
        _ => sql_failure(e),
    })?;
    let mut known = Known {
        key: conn.last_insert_rowid(),
        next_seq: 1,
        parent: rows.parent.clone(),
        status: rows.status,
    };
    append_events(sql, &mut known, &rows.events)?;
    cache.insert(id, known);
    if let Some(parent) = parent.filter(|_| !rows.parent_events.is_empty()) {
        let Some(known) = cache.load(conn, parent).map_err(Failure::partial)? else {
            return Err(Failure::partial(StoreError::NotFound(parent.id.clone())));
        };
        append_events(sql, known, &rows.parent_events)?;
    }
    Ok(())
}

/// What a checkpoint's `UPDATE` sets besides `updated_at`, as bits of an index into
/// [`update_sql`]'s statements.
const SETS_STATUS: usize = 1;
const SETS_STATE: usize = 2;
const ENDS: usize = 4;
const SETS_OUTCOME: usize = 8;

/// The `UPDATE` of a checkpoint of this shape: `?1` is the key, `?2` `updated_at`, then
/// the status, `state`, `waiting`, `wake_at`, `callback`, `batches` and `outcome` it sets, in that
/// order. Each UPDATE rewrites the whole row, and every index on a column it sets (the
/// status is in `executions_unfinished`), so it sets only what changes. The statements
/// are built once: a string built per checkpoint was a visible share of the writer
/// thread.
fn update_sql(shape: usize) -> &'static str {
    static SQL: OnceLock<Vec<String>> = OnceLock::new();
    let all = SQL.get_or_init(|| {
        (0..16)
            .map(|shape| {
                let mut columns = vec!["updated_at"];
                if shape & SETS_STATUS != 0 {
                    columns.push("status");
                }
                if shape & SETS_STATE != 0 {
                    columns.extend(["state", "waiting"]);
                    if shape & ENDS == 0 {
                        columns.extend(["wake_at", "callback"]);
                    }
                    columns.push("batches");
                }
                if shape & SETS_OUTCOME != 0 {
                    columns.push("outcome");
                }
                let mut sets: Vec<String> = columns
                    .iter()
                    .enumerate()
                    .map(|(i, column)| format!("{column} = ?{}", i + 2))
                    .collect();
                // An end keeps what the execution waited for (a redrive resumes there),
                // but its timer is no longer due, nor does it wait on a callback. A `waiting` that is not JSON (a row
                // recovery faults because it does not decode) is dropped: nothing can
                // resume from it, and it would keep the ended row from being read.
                if shape & ENDS != 0 {
                    sets.extend(["wake_at = NULL".into(), "callback = NULL".into()]);
                    if shape & SETS_STATE == 0 {
                        sets.push(
                            "waiting = CASE WHEN json_valid(waiting) THEN waiting END".into(),
                        );
                    }
                }
                format!("UPDATE executions SET {} WHERE key = ?1", sets.join(", "))
            })
            .collect()
    });
    &all[shape]
}

/// Applies a checkpoint: refuses an unknown or ended execution, updates the row, appends
/// the events.
pub(super) fn apply_checkpoint(
    sql: &Statements<'_>,
    cache: &mut Cache,
    cp: &CheckpointRows,
) -> Result<(), Failure> {
    let conn = sql.conn;
    let id = cp.id.key();
    let Some(known) = cache.load(conn, id).map_err(Failure::refused)? else {
        return Err(Failure::refused(StoreError::NotFound(cp.id.id.clone())));
    };
    if known.status.is_terminal() {
        return Err(Failure::refused(StoreError::Ended(cp.id.id.clone())));
    }
    let (key, old_status) = (known.key, known.status);
    // Only a child's last checkpoint has its parent's events; only then is the parent
    // looked up, and the execution's entry found again after it.
    let parent = known
        .parent
        .clone()
        .filter(|_| !cp.parent_events.is_empty());
    let known = match &parent {
        None => known,
        Some(parent) => {
            if cache
                .load(conn, cache.key(parent))
                .map_err(Failure::refused)?
                .is_none()
            {
                return Err(Failure::refused(StoreError::NotFound(parent.clone())));
            }
            // Loaded above; only a rollback, which ends this write, forgets it.
            cache
                .get_mut(id)
                .ok_or_else(|| Failure::refused(StoreError::NotFound(cp.id.id.clone())))?
        }
    };
    let terminal = cp.status.is_terminal();
    let status = cp.status.as_str();
    let mut shape = 0;
    if cp.status != old_status {
        shape |= SETS_STATUS;
    }
    if terminal {
        shape |= ENDS;
    }
    if cp.state.is_some() {
        shape |= SETS_STATE;
    }
    if cp.outcome.is_some() {
        shape |= SETS_OUTCOME;
    }
    // The shape's values in its placeholders' order, gathered on the stack: this runs on
    // the writer thread for every checkpoint, and a vector here was the most frequent
    // allocation of that thread.
    let saved = cp.state.as_ref();
    let running = saved.filter(|_| !terminal);
    let bytes = saved.map(|s| cp.events.bytes(s.bytes));
    let waiting = saved.map(|s| s.waiting.map(|w| cp.events.text(w)));
    let columns: [Option<&dyn rusqlite::ToSql>; 9] = [
        Some(&key),
        Some(&cp.at),
        (shape & SETS_STATUS != 0).then_some(&status),
        bytes.as_ref().map(|b| b as _),
        waiting.as_ref().map(|w| w as _),
        running.map(|s| &s.wake_at as _),
        running.map(|s| &s.callback as _),
        saved.map(|s| &s.batches as _),
        cp.outcome.as_ref().map(|o| o as _),
    ];
    let mut values: [&dyn rusqlite::ToSql; 9] = [&Null; 9];
    let mut len = 0;
    for value in columns.into_iter().flatten() {
        values[len] = value;
        len += 1;
    }
    sql.execute(update_sql(shape), &values[..len])
        .map_err(sql_failure)?;
    known.status = cp.status;
    append_events(sql, known, &cp.events)?;
    if terminal {
        cache.ended(id);
    }
    if let Some(parent) = parent {
        let Some(known) = cache.get_mut(cache.key(&parent)) else {
            return Err(Failure::partial(StoreError::NotFound(parent)));
        };
        append_events(sql, known, &cp.parent_events)?;
    }
    Ok(())
}

/// Sets ended executions running again: every one is checked (it exists, with the
/// status and the redrive count expected) before any is changed, so a refused reopen
/// writes nothing, and one that fails while writing is rolled back whole with its
/// transaction or savepoint.
pub(super) fn reopen(
    sql: &Statements<'_>,
    cache: &mut Cache,
    executions: &[ReopenRows],
) -> Result<(), Failure> {
    let conn = sql.conn;
    let mut keys = Vec::with_capacity(executions.len());
    for r in executions {
        let id = cache.key(&r.id);
        let Some(known) = cache.load(conn, id).map_err(Failure::refused)? else {
            return Err(Failure::refused(StoreError::NotFound(r.id.clone())));
        };
        let key = known.key;
        // The redrive count is not cached (only a redrive reads it): read from the file,
        // as the status is, in this transaction.
        let (status, redrives): (String, i64) = conn
            .prepare_cached("SELECT status, redrives FROM executions WHERE key = ?1")
            .and_then(|mut s| s.query_row([key], |row| Ok((row.get(0)?, row.get(1)?))))
            .map_err(|e| Failure::refused(Cause::from(e)))?;
        if status != r.expected.as_str() || redrives + 1 != r.redrives {
            return Err(Failure::refused(StoreError::Changed(r.id.clone())));
        }
        keys.push((key, id));
    }
    for (r, (key, id)) in executions.iter().zip(keys) {
        conn.prepare_cached(
            "UPDATE executions SET status = 'Running', outcome = NULL, waiting = ?2, \
             wake_at = ?3, redrives = ?4, redriven_at = ?5, updated_at = ?5, callback = ?6 \
             WHERE key = ?1",
        )
        .and_then(|mut s| {
            s.execute(params![
                key, r.waiting, r.wake_at, r.redrives, r.at, r.callback
            ])
        })
        .map_err(sql_failure)?;
        // Loaded above; a rollback, which ends this write, is the only thing that clears it.
        let Some(known) = cache.load(conn, id).map_err(Failure::partial)? else {
            return Err(Failure::partial(StoreError::NotFound(r.id.clone())));
        };
        known.status = Status::Running;
        append_events(sql, known, &r.events)?;
    }
    Ok(())
}

/// A callback update, encoded; the writer sets `after` to the callback as stored after
/// it (a write may be applied twice, a second time in a savepoint, so it is replaced).
pub(super) struct CallbackRows {
    update: CallbackUpdate,
    events: EventRows,
    at: i64,
    pub(super) after: std::sync::Mutex<Option<PendingCallback>>,
}

impl CallbackRows {
    pub(super) fn encode(update: &CallbackUpdate) -> Result<CallbackRows, StoreError> {
        Ok(CallbackRows {
            events: EventRows::encode(&update.events)?,
            at: ts(update.at)?,
            update: update.clone(),
            after: std::sync::Mutex::new(None),
        })
    }
}

/// Applies a callback update: reads the execution's wait in this transaction, lets
/// [`CallbackUpdate::apply`] decide, and writes the callback it gives back.
pub(super) fn apply_callback(
    sql: &Statements<'_>,
    cache: &mut Cache,
    rows: &CallbackRows,
) -> Result<(), Failure> {
    let conn = sql.conn;
    let id = &rows.update.id;
    let cached = cache.key(id);
    let Some(known) = cache.load(conn, cached).map_err(Failure::refused)? else {
        return Err(Failure::refused(StoreError::NotFound(id.clone())));
    };
    let (key, status) = (known.key, known.status);
    let waiting: Option<String> = conn
        .prepare_cached("SELECT waiting FROM executions WHERE key = ?1")
        .and_then(|mut s| s.query_row([key], |row| row.get(0)))
        .map_err(|e| Failure::refused(Cause::from(e)))?;
    let waiting: Option<Wait> = waiting
        .map(|w| serde_json::from_str(&w))
        .transpose()
        .map_err(|e| {
            Failure::refused(StoreError::Corrupt {
                id: id.clone(),
                message: format!("waiting: {e}"),
            })
        })?;
    let callback = rows
        .update
        .apply(status, waiting.as_ref())
        .map_err(Failure::refused)?;
    let waiting = Wait::Callback(callback.clone());
    let wake_at = waiting
        .wake_at()
        .map(ts)
        .transpose()
        .map_err(Failure::refused)?;
    let column = callback_column(Some(&waiting));
    let text = json(&waiting).map_err(Failure::refused)?;
    conn.prepare_cached(
        "UPDATE executions SET waiting = ?2, wake_at = ?3, callback = ?4, updated_at = ?5 \
         WHERE key = ?1",
    )
    .and_then(|mut s| s.execute(params![key, text, wake_at, column, rows.at]))
    .map_err(sql_failure)?;
    // Loaded above; only a rollback, which ends this write, forgets it.
    let Some(known) = cache.get_mut(cached) else {
        return Err(Failure::partial(StoreError::NotFound(id.clone())));
    };
    append_events(sql, known, &rows.events)?;
    *rows.after.lock().unwrap_or_else(|e| e.into_inner()) = Some(callback);
    Ok(())
}

/// Appends events to an existing execution's history, after its last one.
pub(super) fn append(
    sql: &Statements<'_>,
    cache: &mut Cache,
    id: &ExecutionId,
    events: &EventRows,
) -> Result<(), Failure> {
    let conn = sql.conn;
    let Some(known) = cache.load(conn, cache.key(id)).map_err(Failure::refused)? else {
        return Err(Failure::refused(StoreError::NotFound(id.clone())));
    };
    append_events(sql, known, events)
}

/// Appends events after the execution's last one, and counts them in `known`.
fn append_events(
    sql: &Statements<'_>,
    known: &mut Known,
    events: &EventRows,
) -> Result<(), Failure> {
    for body in events.iter() {
        sql.execute(INSERT_EVENT, params![known.key, known.next_seq, body])
            .map_err(sql_failure)?;
        known.next_seq += 1;
    }
    Ok(())
}

/// The id of a row, and what is wrong with it if it is not text: such a row is still
/// named, as well as its id reads, in the report.
fn row_id(row: &Row<'_>) -> rusqlite::Result<(ExecutionId, Option<&'static str>)> {
    let (id, problem) = match row.get_ref(0)? {
        ValueRef::Text(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => (text.to_owned(), None),
            Err(_) => (
                String::from_utf8_lossy(bytes).into_owned(),
                Some("not UTF-8"),
            ),
        },
        ValueRef::Blob(bytes) => (String::from_utf8_lossy(bytes).into_owned(), Some("a blob")),
        ValueRef::Integer(n) => (n.to_string(), Some("a number")),
        ValueRef::Real(x) => (x.to_string(), Some("a number")),
        ValueRef::Null => ("(null)".to_owned(), Some("null")),
    };
    Ok((ExecutionId::from(id), problem))
}

/// A row being decoded: each cell that does not decode (of the wrong type, not valid
/// text, not a known status, …) is a [`CorruptRow`] naming the execution and the column.
struct Cells<'a, 'r> {
    row: &'a Row<'r>,
    id: ExecutionId,
}

impl<'a, 'r> Cells<'a, 'r> {
    /// The row's cells; a row whose id is not text is corrupt, named as its id reads.
    fn of(row: &'a Row<'r>) -> rusqlite::Result<Result<Self, CorruptRow>> {
        let (id, bad_id) = row_id(row)?;
        let cells = Cells { row, id };
        Ok(match bad_id {
            Some(problem) => Err(cells.corrupt("id", &problem)),
            None => Ok(cells),
        })
    }

    fn corrupt(&self, what: &str, e: &dyn std::fmt::Display) -> CorruptRow {
        CorruptRow {
            id: self.id.clone(),
            message: format!("{what}: {e}"),
        }
    }

    fn get<T: rusqlite::types::FromSql>(&self, i: usize, what: &str) -> Result<T, CorruptRow> {
        self.row.get(i).map_err(|e| self.corrupt(what, &e))
    }

    fn status(&self, i: usize) -> Result<Status, CorruptRow> {
        let status: String = self.get(i, "status")?;
        Status::parse(&status).ok_or_else(|| self.corrupt("status", &status))
    }

    fn parent(&self, i: usize) -> Result<Option<ExecutionId>, CorruptRow> {
        Ok(self
            .get::<Option<String>>(i, "parent")?
            .map(ExecutionId::from))
    }

    fn time(&self, i: usize, what: &str) -> Result<Timestamp, CorruptRow> {
        self.get(i, what).map(from_ts)
    }
}

/// Decodes a row of [`RECORD_COLUMNS`]; the outer `Err` is only for the read itself
/// failing.
pub(super) fn record(row: &Row<'_>) -> rusqlite::Result<Result<ExecutionRecord, CorruptRow>> {
    Ok(Cells::of(row)?.and_then(|c| {
        let call_node: Option<String> = c.get(4, "call node")?;
        let call_batch: Option<i64> = c.get(5, "call batch")?;
        let call_index: Option<i64> = c.get(6, "call index")?;
        let call_site = match (call_node, call_batch, call_index) {
            (Some(node), Some(batch), Some(index)) => Some(CallSite {
                node,
                batch: u64::try_from(batch).map_err(|e| c.corrupt("call batch", &e))?,
                index: usize::try_from(index).map_err(|e| c.corrupt("call index", &e))?,
            }),
            _ => None,
        };
        let input: String = c.get(8, "input")?;
        let waiting: Option<String> = c.get(10, "waiting")?;
        let batches: i64 = c.get(11, "batches")?;
        let outcome: Option<String> = c.get(12, "outcome")?;
        let wake_at: Option<i64> = c.get(13, "wake_at")?;
        let redrives: i64 = c.get(16, "redrives")?;
        let redriven_at: Option<i64> = c.get(17, "redriven_at")?;
        let trace: Option<String> = c.get(18, "trace")?;
        Ok(ExecutionRecord {
            workflow: c.get(1, "workflow")?,
            fingerprint: fingerprint_from_sql(c.get(2, "fingerprint")?),
            parent: c.parent(3)?,
            call_site,
            status: c.status(7)?,
            input: Json::parse(input).map_err(|e| c.corrupt("input", &e))?,
            state: c.get(9, "state")?,
            waiting: waiting
                .map(|w| serde_json::from_str(&w))
                .transpose()
                .map_err(|e| c.corrupt("waiting", &e))?,
            batches: u64::try_from(batches).map_err(|e| c.corrupt("batches", &e))?,
            outcome: outcome
                .map(|o| serde_json::from_str(&o))
                .transpose()
                .map_err(|e| c.corrupt("outcome", &e))?,
            wake_at: wake_at.map(from_ts),
            created_at: c.time(14, "created_at")?,
            updated_at: c.time(15, "updated_at")?,
            redrives: u32::try_from(redrives).map_err(|e| c.corrupt("redrives", &e))?,
            redriven_at: redriven_at.map(from_ts),
            trace,
            id: c.id,
        })
    }))
}

/// Decodes a row of [`SUMMARY_COLUMNS`], as [`record`] does.
pub(super) fn summary(row: &Row<'_>) -> rusqlite::Result<Result<ExecutionSummary, CorruptRow>> {
    Ok(Cells::of(row)?.and_then(|c| {
        Ok(ExecutionSummary {
            workflow: c.get(1, "workflow")?,
            parent: c.parent(2)?,
            status: c.status(3)?,
            created_at: c.time(4, "created_at")?,
            updated_at: c.time(5, "updated_at")?,
            id: c.id,
        })
    }))
}

/// Decodes an event row's body.
pub(super) fn event(id: &ExecutionId, body: &str) -> Result<Event, StoreError> {
    serde_json::from_str(body).map_err(|e| StoreError::Corrupt {
        id: id.clone(),
        message: format!("history event: {e}"),
    })
}
