//! Workload 3's ceiling: the rows our SQLite store writes for `run_job`, written by
//! `rusqlite` alone (issue 21).
//!
//! One execution of `run_job` runs on a [`Recorder`], a store that hands every write to
//! a [`SqliteStore`] and keeps a copy. [`Trace::encode`] turns the copies into the SQL
//! values the store's writer binds (`workflow-runtime/src/store/sqlite/rows.rs`: the
//! same JSON of each event, `waiting` and outcome, the same state bytes, the same
//! `UPDATE` shapes), once, before anything is timed. [`replay`] then writes that trace
//! for `n` executions with fresh random ids, on one thread, on a file made by
//! `SqliteStore::open_with` (so the same schema and page size) and configured with the
//! writer's pragmas, with a checkpointer thread like the store's, and each statement
//! taken from the connection's cache once per transaction, as the writer does.
//!
//! Batching is the store's at its best: `inflight` executions, each with one write
//! queued at a time (its next write is queued once the previous one has committed, as a
//! driver waits for its checkpoint), and each transaction takes every queued write, up
//! to the store's batch limit. What this leaves out is what the runtime adds: encoding,
//! the workflow's steps, the hand-off to the writer thread and back, the writer's cache.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::types::Value;
use rusqlite::{params_from_iter, CachedStatement, Connection, ToSql};
use workflow::store::{
    CallbackUpdate, Checkpoint, CorruptRow, Durability, ExecutionFilter, ExecutionRecord,
    ExecutionSummary, PendingCallback, Reopen, SqliteOptions, SqliteStore, Store, StoreError, Wait,
};
use workflow::{Event, ExecutionId, Status, Timestamp};

/// The store's default batch limit (`SqliteOptions::max_batch`).
pub const MAX_BATCH: usize = 4096;

/// A write as the store was given it.
#[derive(Clone)]
enum Recorded {
    Create(ExecutionRecord, Vec<Event>, Vec<Event>),
    Checkpoint(Checkpoint),
}

/// A [`SqliteStore`] that keeps a copy of every create and checkpoint.
#[derive(Clone)]
pub struct Recorder {
    inner: SqliteStore,
    writes: Arc<Mutex<Vec<Recorded>>>,
}

impl Recorder {
    pub fn new(inner: SqliteStore) -> Recorder {
        Recorder {
            inner,
            writes: Arc::default(),
        }
    }

    fn keep(&self, w: Recorded) {
        self.writes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(w);
    }

    /// What was written so far, encoded as the store's writer binds it.
    pub fn trace(&self) -> Trace {
        let writes = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        Trace::encode(&writes)
    }
}

#[async_trait::async_trait]
impl Store for Recorder {
    async fn create(
        &self,
        record: ExecutionRecord,
        events: Vec<Event>,
        parent_events: Vec<Event>,
    ) -> Result<(), StoreError> {
        self.keep(Recorded::Create(
            record.clone(),
            events.clone(),
            parent_events.clone(),
        ));
        self.inner.create(record, events, parent_events).await
    }
    async fn checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        self.keep(Recorded::Checkpoint(checkpoint.clone()));
        self.inner.checkpoint(checkpoint).await
    }
    async fn reopen(&self, executions: &[Reopen]) -> Result<(), StoreError> {
        self.inner.reopen(executions).await
    }
    async fn callback(&self, update: &CallbackUpdate) -> Result<PendingCallback, StoreError> {
        self.inner.callback(update).await
    }
    async fn append(&self, id: &ExecutionId, events: Vec<Event>) -> Result<(), StoreError> {
        self.inner.append(id, events).await
    }
    async fn get(&self, id: &ExecutionId) -> Result<Option<ExecutionRecord>, StoreError> {
        self.inner.get(id).await
    }
    async fn history(&self, id: &ExecutionId) -> Result<Vec<Event>, StoreError> {
        self.inner.history(id).await
    }
    async fn children(&self, id: &ExecutionId) -> Result<Vec<ExecutionId>, StoreError> {
        self.inner.children(id).await
    }
    async fn list(
        &self,
        filter: &ExecutionFilter,
    ) -> Result<Vec<Result<ExecutionSummary, CorruptRow>>, StoreError> {
        self.inner.list(filter).await
    }
    async fn unfinished(&self) -> Result<Vec<Result<ExecutionRecord, CorruptRow>>, StoreError> {
        self.inner.unfinished().await
    }
}

/// One write, as SQL values: what `rows.rs` binds, the execution's id and key aside.
enum Write {
    /// `INSERT INTO executions`: the values after `id` (`?2`..`?18`, the parent key
    /// `NULL`: `run_job` is top-level here), then the events.
    Create {
        values: Vec<Value>,
        events: Vec<String>,
    },
    /// The `UPDATE` of this checkpoint's shape, its values after the key, the events.
    Checkpoint {
        sql: String,
        values: Vec<Value>,
        events: Vec<String>,
    },
}

/// One execution's writes, in order.
pub struct Trace {
    writes: Vec<Write>,
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("encodes")
}

fn text(s: Option<String>) -> Value {
    s.map_or(Value::Null, Value::Text)
}

fn int(i: Option<i64>) -> Value {
    i.map_or(Value::Null, Value::Integer)
}

fn ts(t: Timestamp) -> i64 {
    t.0 as i64
}

fn events(es: &[Event]) -> Vec<String> {
    es.iter().map(json).collect()
}

impl Trace {
    fn encode(writes: &[Recorded]) -> Trace {
        let mut status = Status::Running;
        let writes = writes
            .iter()
            .map(|w| match w {
                Recorded::Create(r, es, parent_events) => {
                    assert!(r.parent.is_none() && parent_events.is_empty(), "top-level");
                    status = r.status;
                    let site = r.call_site.as_ref();
                    Write::Create {
                        values: vec![
                            Value::Text(r.workflow.clone()),
                            Value::Integer(i64::from_ne_bytes(r.fingerprint.to_ne_bytes())),
                            Value::Null,
                            text(site.map(|s| s.node.clone())),
                            int(site.map(|s| s.batch as i64)),
                            int(site.map(|s| s.index as i64)),
                            Value::Text(r.status.as_str().to_owned()),
                            Value::Text(r.input.as_str().to_owned()),
                            Value::Blob(r.state.clone()),
                            text(r.waiting.as_ref().map(json)),
                            Value::Integer(r.batches as i64),
                            text(r.outcome.as_ref().map(json)),
                            int(r.wake_at.map(ts)),
                            Value::Integer(ts(r.created_at)),
                            Value::Integer(ts(r.updated_at)),
                            Value::Integer(i64::from(r.redrives)),
                            int(r.redriven_at.map(ts)),
                        ],
                        events: events(es),
                    }
                }
                Recorded::Checkpoint(cp) => {
                    assert!(cp.parent_events.is_empty(), "top-level");
                    let terminal = cp.status.is_terminal();
                    // The columns `rows::update_sql` sets for this shape, in its order.
                    let mut sets = vec!["updated_at"];
                    let mut values = vec![Value::Integer(ts(cp.at))];
                    if cp.status != status {
                        sets.push("status");
                        values.push(Value::Text(cp.status.as_str().to_owned()));
                    }
                    status = cp.status;
                    if let Some(saved) = &cp.state {
                        sets.extend(["state", "waiting"]);
                        values.push(Value::Blob(saved.bytes.clone()));
                        values.push(text(saved.waiting.as_ref().map(json)));
                        if !terminal {
                            sets.extend(["wake_at", "callback"]);
                            values.push(int(saved
                                .waiting
                                .as_ref()
                                .and_then(Wait::wake_at)
                                .map(ts)));
                            values.push(text(
                                saved
                                    .waiting
                                    .as_ref()
                                    .and_then(Wait::waiting_callback)
                                    .map(|c| c.id.clone()),
                            ));
                        }
                        sets.push("batches");
                        values.push(Value::Integer(saved.batches as i64));
                    }
                    if let Some(outcome) = &cp.outcome {
                        sets.push("outcome");
                        values.push(Value::Text(json(outcome)));
                    }
                    let mut sets: Vec<String> = sets
                        .iter()
                        .enumerate()
                        .map(|(i, c)| format!("{c} = ?{}", i + 2))
                        .collect();
                    if terminal {
                        sets.extend(["wake_at = NULL".into(), "callback = NULL".into()]);
                        if cp.state.is_none() {
                            sets.push(
                                "waiting = CASE WHEN json_valid(waiting) THEN waiting END".into(),
                            );
                        }
                    }
                    Write::Checkpoint {
                        sql: format!("UPDATE executions SET {} WHERE key = ?1", sets.join(", ")),
                        values,
                        events: events(&cp.events),
                    }
                }
            })
            .collect();
        Trace { writes }
    }

    /// Checkpoints per execution (the creation is not a transition).
    pub fn checkpoints(&self) -> usize {
        self.writes
            .iter()
            .filter(|w| matches!(w, Write::Checkpoint { .. }))
            .count()
    }

    /// Bytes of events, states and other values per execution, for the table's note.
    pub fn bytes(&self) -> usize {
        let v = |x: &Value| match x {
            Value::Text(s) => s.len(),
            Value::Blob(b) => b.len(),
            _ => 8,
        };
        self.writes
            .iter()
            .map(|w| match w {
                Write::Create { values, events } | Write::Checkpoint { values, events, .. } => {
                    values.iter().map(v).sum::<usize>()
                        + events.iter().map(String::len).sum::<usize>()
                }
            })
            .sum()
    }
}

/// What a replay took and how it batched.
pub struct Replayed {
    pub elapsed: Duration,
    pub transactions: u64,
    pub writes: u64,
}

/// Ids like the runtime's (UUID text, random order), made before the clock starts.
fn ids(n: usize, seed: u64) -> Vec<String> {
    let mut x = seed;
    let mut next = move || {
        // splitmix64
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    (0..n)
        .map(|_| {
            let (a, b) = (next(), next());
            format!(
                "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
                a >> 32,
                (a >> 16) & 0xffff,
                a & 0xfff,
                b >> 52,
                b & 0xffff_ffff_ffff
            )
        })
        .collect()
}

/// The writer's connection settings (`store/sqlite/mod.rs`, `configure`).
fn configure(conn: &Connection, durability: Durability) -> rusqlite::Result<()> {
    let sync = match durability {
        Durability::PowerLoss => "FULL",
        _ => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", sync)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.pragma_update(None, "cache_size", -65_536)?;
    let page_size: i64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
    conn.pragma_update(None, "wal_autocheckpoint", (64 << 20) / page_size.max(512))?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// The store's checkpointer thread (`store/sqlite/checkpointer.rs`): a `PASSIVE` WAL
/// checkpoint on its own connection, at most every 200 ms, after commits.
fn checkpointer(
    path: &Path,
    durability: Durability,
) -> (mpsc::SyncSender<()>, std::thread::JoinHandle<()>) {
    let conn = Connection::open(path).expect("opens");
    conn.pragma_update(None, "wal_autocheckpoint", 0)
        .expect("pragma");
    configure(&conn, durability).expect("pragmas");
    conn.pragma_update(None, "wal_autocheckpoint", 0)
        .expect("pragma");
    let (tx, rx) = mpsc::sync_channel::<()>(1);
    let thread = std::thread::spawn(move || {
        let mut last = Instant::now();
        while rx.recv().is_ok() {
            let wait = Duration::from_millis(200).saturating_sub(last.elapsed());
            std::thread::sleep(wait);
            last = Instant::now();
            let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(0));
        }
    });
    (tx, thread)
}

/// Writes `trace` for `n` executions, `inflight` at a time, into a new store file at
/// `path`, in transactions of up to `max_batch` writes.
pub fn replay(
    path: &Path,
    trace: &Trace,
    n: usize,
    inflight: usize,
    durability: Durability,
    seed: u64,
) -> Replayed {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    // The store makes the file: its schema, page size and WAL mode.
    drop(
        SqliteStore::open_with(path, SqliteOptions::new().durability(durability))
            .expect("the store opens"),
    );
    let conn = Connection::open(path).expect("opens");
    configure(&conn, durability).expect("pragmas");
    let (notify, thread) = checkpointer(path, durability);
    let ids = ids(n, seed);
    let per = trace.writes.len();
    // Per execution: its row's key and its next event number (the writer's cache, here
    // a vector indexed by execution).
    let mut keys = vec![(0i64, 1i64); n];
    let mut queue: VecDeque<(usize, usize)> = (0..inflight.min(n)).map(|e| (e, 0)).collect();
    let mut started = queue.len();
    let (mut transactions, mut writes) = (0, 0);
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let t0 = Instant::now();
    while !queue.is_empty() {
        batch.clear();
        let take = queue.len().min(MAX_BATCH);
        batch.extend(queue.drain(..take));
        conn.execute_batch("BEGIN IMMEDIATE").expect("begins");
        {
            // Each statement taken from the connection's cache once per transaction and
            // held until it commits, as the store's writer does (`rows::Statements`).
            let mut insert_execution: Option<CachedStatement<'_>> = None;
            let mut insert_event: Option<CachedStatement<'_>> = None;
            let mut updates: Vec<(&str, CachedStatement<'_>)> = Vec::new();
            for &(e, step) in &batch {
                let (key, seq) = &mut keys[e];
                let evs = match &trace.writes[step] {
                    Write::Create { values, events } => {
                        let insert = insert_execution.get_or_insert_with(|| {
                            conn.prepare_cached(
                                "INSERT INTO executions (id, workflow, fingerprint, parent, \
                                 call_node, call_batch, call_index, status, input, state, \
                                 waiting, batches, outcome, wake_at, created_at, updated_at, \
                                 redrives, redriven_at) \
                                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, \
                                 ?13, ?14, ?15, ?16, ?17, ?18)",
                            )
                            .expect("prepares")
                        });
                        let params = std::iter::once(&ids[e] as &dyn ToSql)
                            .chain(values.iter().map(|v| v as &dyn ToSql));
                        insert.execute(params_from_iter(params)).expect("inserts");
                        *key = conn.last_insert_rowid();
                        events
                    }
                    Write::Checkpoint {
                        sql,
                        values,
                        events,
                    } => {
                        let i = match updates.iter().position(|(q, _)| *q == sql.as_str()) {
                            Some(i) => i,
                            None => {
                                updates.push((sql, conn.prepare_cached(sql).expect("prepares")));
                                updates.len() - 1
                            }
                        };
                        let params = std::iter::once(&*key as &dyn ToSql)
                            .chain(values.iter().map(|v| v as &dyn ToSql));
                        updates[i]
                            .1
                            .execute(params_from_iter(params))
                            .expect("updates");
                        events
                    }
                };
                for body in evs {
                    let insert = insert_event.get_or_insert_with(|| {
                        conn.prepare_cached(
                            "INSERT INTO events (execution, seq, body) VALUES (?1, ?2, ?3)",
                        )
                        .expect("prepares")
                    });
                    insert
                        .execute(rusqlite::params![*key, *seq, body])
                        .expect("appends");
                    *seq += 1;
                }
            }
        }
        conn.execute_batch("COMMIT").expect("commits");
        let _ = notify.try_send(());
        transactions += 1;
        writes += batch.len() as u64;
        // Each execution queues its next write now that this one has committed; one
        // that has ended makes room for the next execution.
        for &(e, step) in &batch {
            if step + 1 < per {
                queue.push_back((e, step + 1));
            } else if started < n {
                queue.push_back((started, 0));
                started += 1;
            }
        }
    }
    let elapsed = t0.elapsed();
    drop(notify);
    thread.join().expect("the checkpointer ends");
    drop(conn);
    Replayed {
        elapsed,
        transactions,
        writes,
    }
}

/// Executions, events, and bytes of event bodies and states in a store file: what the
/// first run prints for ours and the raw baseline side by side, to show that they wrote
/// the same (up to the job ids' digits, which the trace repeats as recorded).
pub fn footprint(path: &Path) -> String {
    let conn = Connection::open(path).expect("opens");
    let q = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).expect("reads") };
    format!(
        "{} executions, {} events, {} bytes of events, {} of states, {} of outcomes",
        q("SELECT count(*) FROM executions"),
        q("SELECT count(*) FROM events"),
        q("SELECT coalesce(sum(length(body)), 0) FROM events"),
        q("SELECT coalesce(sum(length(state)), 0) FROM executions"),
        q("SELECT coalesce(sum(length(outcome)), 0) FROM executions"),
    )
}
