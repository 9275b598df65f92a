//! The durable store: one SQLite file. [`SqliteStore`]'s docs describe the layout, the
//! group commit and the lock; `schema.rs`, `writer.rs` and `lock.rs` implement them.

mod cache;
mod checkpointer;
mod errors;
mod health;
mod lock;
mod rows;
mod schema;
mod writer;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use tokio::sync::oneshot;

use self::cache::{Cache, IdHasher};
use self::checkpointer::Checkpointer;
use self::errors::Cause;
use self::health::Health;
use self::lock::Lock;
use self::rows::{CallbackRows, CheckpointRows, CreateRows, EventRows, ReopenRows};
use self::writer::{Counters, Job, Op, Writer};
use super::{
    CallbackUpdate, Checkpoint, ExecutionFilter, ExecutionRecord, ExecutionSummary, Reopen, Store,
};
use crate::callback::PendingCallback;
use crate::error::{CorruptRow, OpenError, StoreError};
use crate::execution::ExecutionId;
use crate::history::Event;

/// What a commit promises to survive.
///
/// Both levels keep the file consistent whatever happens: SQLite's write-ahead log makes
/// every transaction all or nothing, and a crash never leaves half a checkpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// `synchronous = NORMAL`: a commit is in the operating system's hands when the
    /// write returns, so it survives the process being killed (`kill -9`, a panic, an
    /// OOM kill). A power loss or an OS crash can lose the last commits made before it
    /// (executions resume from an earlier checkpoint: their tasks run again), but never
    /// corrupts the file. The log is synced at each WAL checkpoint. The default.
    #[default]
    Process,
    /// `synchronous = FULL`: every commit is synced to the disk before the write
    /// returns, so it also survives a power loss, on hardware that honours `fsync`.
    /// Group commit shares each sync among all the checkpoints queued meanwhile.
    PowerLoss,
}

impl Durability {
    fn pragma(self) -> &'static str {
        match self {
            Durability::Process => "NORMAL",
            Durability::PowerLoss => "FULL",
        }
    }
}

/// How a [`SqliteStore`] is opened.
#[derive(Clone, Debug)]
#[must_use]
pub struct SqliteOptions {
    durability: Durability,
    busy_budget: Duration,
    max_batch: usize,
    max_size: Option<u64>,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            durability: Durability::default(),
            busy_budget: Duration::from_secs(5),
            max_batch: 4096,
            max_size: None,
        }
    }
}

impl SqliteOptions {
    /// The default options: [`Durability::Process`], a 5 s busy budget, batches of up to
    /// 4096 writes, no size cap.
    pub fn new() -> Self {
        Self::default()
    }

    /// What a commit survives.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// How long a write waits, retrying with backoff, while another process (a backup,
    /// an `sqlite3` shell) holds the database lock. Past it the write fails as
    /// [`StoreError::Unavailable`], which the runtime retries too (and logs as an error
    /// once writes have been failing for 30 s).
    pub fn busy_timeout(mut self, budget: Duration) -> Self {
        self.busy_budget = budget;
        self
    }

    /// At most this many writes per transaction. A commit writes each page its writes
    /// changed once, however many of them changed it, so bigger batches write less per
    /// checkpoint when many executions are in flight; the cost is the wait of the writes
    /// queued behind a big batch.
    pub fn max_batch(mut self, writes: usize) -> Self {
        self.max_batch = writes.max(1);
        self
    }

    /// Caps the database file at about this many bytes: past it, writes fail as on a full
    /// disk (and are retried) until the cap is raised with
    /// [`SqliteStore::set_max_size`]. For a quota on a shared disk.
    pub fn max_size(mut self, bytes: u64) -> Self {
        self.max_size = Some(bytes);
        self
    }
}

/// What the writer thread has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreStats {
    /// Transactions committed.
    pub transactions: u64,
    /// Writes (creations, checkpoints, appends) committed.
    pub writes: u64,
    /// The most writes one transaction carried.
    pub largest_batch: u64,
    /// Transactions rolled back as a whole (disk full, I/O error, lock held too long).
    pub failed_transactions: u64,
    /// Transactions failed since the last one that committed: not zero while the store
    /// cannot write (executions wait at their last checkpoint, and are retried).
    pub consecutive_failures: u64,
    /// Whether the store has stopped ([`StoreError::Broken`]): every call fails.
    pub broken: bool,
    /// How long the writer thread has spent in transactions (applying writes and
    /// committing, whether they committed or not). Against the time that passed, how
    /// busy the writer is: near all of it, the store is what limits throughput, and
    /// more executions in flight only make the batches larger.
    pub writing: Duration,
}

/// A durable [`Store`]: executions and histories in one SQLite file, in WAL mode.
///
/// ```
/// use workflow_runtime::{Runtime, SqliteStore};
///
/// let dir = tempfile::tempdir().unwrap();
/// let store = SqliteStore::open(dir.path().join("workflows.sqlite")).unwrap();
/// let runtime = Runtime::builder().store(store).build().unwrap();
/// # drop(runtime);
/// ```
///
/// Cheap to clone: clones share the file, the writer thread and the lock. Each clone
/// holds the store open until it is dropped or released by the runtime it was given to
/// ([`Store::release`], when that runtime stops; the calls it still has in flight then
/// do not keep the store open). When the last clone lets go, the store commits what it
/// was given, closes the file, unlocks it once a read still running has finished, and
/// answers [`StoreError::Stopped`]. [`Durability`] says what a commit survives.
///
/// # What is stored
///
/// Two tables: `executions`, one row per execution (an integer `key` in creation order,
/// the `id`, workflow, definition fingerprint, parent's key and call site, status, input,
/// state, what it waits for, outcome, timestamps, `wake_at`, how many times and when it
/// was last redriven, the id of the callback it waits on), and `events`, the
/// append-only history: one row per event (the execution's key, its number in the
/// history, its JSON), in the order they were written. A child's call site is unique per
/// parent, so a child can be created only once. Pending timers are the rows with a
/// `wake_at`. Rows refer to each other by key rather than id so that what the executions
/// in flight write sits at the end of each table instead of all over the file.
///
/// The schema is versioned (`PRAGMA user_version`). A file of an older version is
/// upgraded in place when it is opened, in one transaction (version 1 keyed rows and
/// events by the text id; version 2 had no redrive columns, version 3 no `callback`); a
/// file written by a newer schema is refused with
/// [`OpenError::SchemaTooNew`] and left as it is.
///
/// # Writes: group commit
///
/// One thread owns the write connection. A checkpoint and its history events are always
/// one transaction; the thread takes every write queued while it was busy and commits
/// them together, so throughput grows with the number of concurrent executions instead of
/// being bound by one commit per transition. Reads use a second connection, beside the
/// writer (WAL). The thread is named `sqlite-writer`, and a second one, `sqlite-wal-ckpt`,
/// copies the log back into the file; [`StoreStats::writing`] says how busy the writer is.
///
/// With thousands of executions in flight, the process's memory allocator matters: each
/// write is encoded on one runtime thread and freed on whichever thread its execution
/// resumes on, in bursts of a batch. On Linux, glibc's allocator cost a quarter or more
/// of the throughput at 10,000 executions in flight in this crate's benchmark, against
/// jemalloc (workload 3 in `BENCHMARKS.md`); a program that needs that throughput can set
/// another allocator (`#[global_allocator]`, e.g. from the `tikv-jemallocator` or
/// `mimalloc` crates).
///
/// # Faults
///
/// A write that fails as a whole for a reason that goes away (disk full, the file locked
/// by another process past the busy timeout) writes nothing and returns
/// [`StoreError::Unavailable`]; the runtime retries such checkpoints with backoff, so an
/// execution pauses at its last checkpoint and goes on once the disk has room. The store
/// logs a warning when writes start failing and an error once they have failed for 30 s;
/// [`StoreStats::consecutive_failures`] counts them.
///
/// A fault that does not go away stops the store with [`StoreError::Broken`], naming the
/// file: a corrupted page, a file that is not a database any more, an I/O error (after
/// which what the disk holds is not known), a file that became read-only, or the file
/// deleted or replaced while the store had it open (checked after every commit, so a
/// write is acknowledged only if it is in the file at the path). Every later write and
/// read answers that error, the executions that write end (faulted, which the store
/// cannot record), and the file is left as it is for inspection.
///
/// # One runtime per file
///
/// Opening takes an exclusive lock on the database file itself (on Unix; see below for
/// Windows): a second store on the same file, in this process or another, through any
/// path (a symlink, a relative path, another mount), gets [`OpenError::Locked`] naming
/// the holder's pid and host, so two runtimes never drive the same executions. The kernel
/// drops the lock with the process, so a restart after `kill -9` opens the file at once.
/// A file with a second hard link is refused ([`OpenError::HardLinked`]): SQLite names
/// its log after the path, and two names would have two logs.
///
/// The lock is advisory: a program that does not use this crate can still write the
/// file. Network file systems may not honour it. On Windows it is a lock on
/// `{file}.lock` next to the file's real path.
pub struct SqliteStore {
    shared: Arc<Shared>,
    /// Set once this clone no longer keeps the store open: released by the runtime
    /// that held it ([`Store::release`]), or dropped.
    let_go: AtomicBool,
}

struct Shared {
    /// The clones that keep the store open; the one that brings it to 0 closes it.
    ///
    /// Not `Arc::strong_count`: a runtime that stopped has released its clone, but the
    /// calls it had in flight may hold that clone a little longer, and the store must
    /// close when the caller drops the last clone of theirs, not when those calls end.
    holders: AtomicUsize,
    path: PathBuf,
    read_only: bool,
    /// `None`s once the store is closed: dropped, or released by its runtime.
    open: RwLock<Open>,
    counters: Arc<Counters>,
    health: Arc<Health>,
    /// The writer's cache's hasher: a checkpoint's id is hashed when it is encoded.
    hasher: IdHasher,
}

/// What an open store writes and reads with.
struct Open {
    /// `None` for a read-only store.
    jobs: Option<mpsc::Sender<Job>>,
    writer: Option<JoinHandle<()>>,
    /// Its own `Arc`: a read still running on a blocking thread when the store is closed
    /// keeps only this connection (and the lock), not the writer, alive.
    reader: Option<Arc<Reader>>,
}

/// The read connection, and the lock it must not outlive (`lock.rs`): fields drop in
/// order, the connection first.
struct Reader {
    conn: Mutex<Connection>,
    /// `None` for a read-only store, which takes no lock.
    lock: Option<Arc<Lock>>,
}

impl Shared {
    /// Closes the store: its writer's last commit, then its connections and its lock.
    fn close(&self) {
        // Taken whole: a poisoned lock still holds `Option`s, each consistent.
        let open = std::mem::replace(
            &mut *self.open.write().unwrap_or_else(PoisonError::into_inner),
            Open {
                jobs: None,
                writer: None,
                reader: None,
            },
        );
        // Closing the queue ends the writer after its last commit; waiting for it means
        // the lock is free when the store is closed, so the file can be reopened at once.
        drop(open.jobs);
        if let Some(writer) = open.writer {
            if writer.join().is_err() {
                tracing::error!(path = %self.path.display(), "the store's writer thread panicked");
            }
        }
        // The reader (and with it the lock) last, unless a read still running has it.
        drop(open.reader);
    }

    fn open(&self) -> std::sync::RwLockReadGuard<'_, Open> {
        self.open.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// What a closed store answers.
    fn closed(&self) -> StoreError {
        if self.read_only {
            StoreError::ReadOnly {
                path: self.path.clone(),
            }
        } else {
            StoreError::Stopped
        }
    }
}

impl SqliteStore {
    fn holding(shared: Shared) -> SqliteStore {
        SqliteStore {
            shared: Arc::new(shared),
            let_go: AtomicBool::new(false),
        }
    }

    /// This clone stops keeping the store open; the last one to do so closes it.
    fn let_go(&self) {
        if !self.let_go.swap(true, Ordering::AcqRel)
            && self.shared.holders.fetch_sub(1, Ordering::AcqRel) == 1
        {
            self.shared.close();
        }
    }
}

impl Clone for SqliteStore {
    fn clone(&self) -> Self {
        // A new clone holds the store, even one made from a clone that has let go.
        self.shared.holders.fetch_add(1, Ordering::AcqRel);
        SqliteStore {
            shared: Arc::clone(&self.shared),
            let_go: AtomicBool::new(false),
        }
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.let_go();
    }
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.shared.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (or creates) the store at `path` with the default [`SqliteOptions`].
    ///
    /// Creates missing parent directories. Fails if another runtime has the file open,
    /// by this path or any other ([`OpenError::Locked`]), if the file has another name
    /// ([`OpenError::HardLinked`]), if it was written by a newer schema
    /// ([`OpenError::SchemaTooNew`]), or if it is not a workflow store.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore, OpenError> {
        Self::open_with(path, SqliteOptions::default())
    }

    /// Opens (or creates) the store at `path`.
    pub fn open_with(
        path: impl AsRef<Path>,
        options: SqliteOptions,
    ) -> Result<SqliteStore, OpenError> {
        let path = path.as_ref().to_owned();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| OpenError::Io {
                path: dir.to_owned(),
                source,
            })?;
        }
        let lock = Arc::new(Lock::acquire(&path)?);
        let sqlite = |source| OpenError::Sqlite {
            path: path.clone(),
            source,
        };
        let mut conn = Connection::open(&path).map_err(sqlite)?;
        schema::prepare(&mut conn, &path)?;
        configure(&conn, &options).map_err(sqlite)?;
        if options.max_size.is_some() {
            writer::max_page_count(&conn, options.max_size).map_err(sqlite)?;
        }
        let reader = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sqlite)?;
        reader
            .pragma_update(None, "query_only", true)
            .and_then(|()| reader.busy_timeout(options.busy_budget))
            // The writer closes last and checkpoints then; if a read outlives it, the
            // log stays for the next open to replay rather than be copied by a reader.
            .and_then(|()| {
                reader
                    .set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
                    .map(drop)
            })
            .map_err(sqlite)?;
        let checkpointer =
            Checkpointer::start(&path, options.durability.pragma()).map_err(sqlite)?;
        // SQLite opened the path after the lock did: it must have opened the same file.
        lock.still_reaches().map_err(|reason| OpenError::Io {
            path: path.clone(),
            source: std::io::Error::other(reason),
        })?;
        let counters = Arc::new(Counters::default());
        let health = Arc::new(Health::new(path.clone()));
        let (tx, rx) = mpsc::channel();
        let hasher = IdHasher::default();
        let writer = Writer {
            conn,
            jobs: rx,
            counters: Arc::clone(&counters),
            max_batch: options.max_batch,
            busy_budget: options.busy_budget,
            cache: Cache::new(hasher.clone()),
            checkpointer: Some(checkpointer),
            health: Arc::clone(&health),
            failing: None,
            lock: Arc::clone(&lock),
        };
        let writer = std::thread::Builder::new()
            // Linux shows 15 bytes of a thread's name (`top -H`, `perf`): the store's
            // two threads have names that fit, and stay apart.
            .name("sqlite-writer".into())
            .spawn(move || writer.run())
            .map_err(|source| OpenError::Io {
                path: path.clone(),
                source,
            })?;
        Ok(SqliteStore::holding(Shared {
            holders: AtomicUsize::new(1),
            path,
            read_only: false,
            open: RwLock::new(Open {
                jobs: Some(tx),
                writer: Some(writer),
                reader: Some(Arc::new(Reader {
                    conn: Mutex::new(reader),
                    lock: Some(lock),
                })),
            }),
            counters,
            health,
            hasher,
        }))
    }

    /// Opens the store at `path` to read it only, beside the runtime that may be using
    /// it: what the `workflow` command-line tool and a console over a file use.
    ///
    /// Takes no lock and never writes: SQLite's write-ahead log lets it read a
    /// consistent snapshot while the runtime commits, and the runtime never waits for
    /// it. Every write answers [`StoreError::ReadOnly`]. Fails if the file does not
    /// exist, is not a workflow store, or has another schema version than this one
    /// ([`OpenError::SchemaTooOld`], [`OpenError::SchemaTooNew`]).
    ///
    /// ```
    /// use workflow_runtime::{OpenError, SqliteStore};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("workflows.sqlite");
    /// assert!(matches!(SqliteStore::open_read_only(&path), Err(OpenError::Io { .. })));
    /// let runtime = SqliteStore::open(&path).unwrap(); // creates it, and keeps it open
    /// let reader = SqliteStore::open_read_only(&path).unwrap();
    /// # drop((runtime, reader));
    /// ```
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<SqliteStore, OpenError> {
        let path = path.as_ref().to_owned();
        // SQLite would report a missing file as "unable to open database file".
        std::fs::metadata(&path).map_err(|source| OpenError::Io {
            path: path.clone(),
            source,
        })?;
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .and_then(|conn| {
            conn.busy_timeout(SqliteOptions::default().busy_budget)?;
            Ok(conn)
        })
        .map_err(|source| OpenError::Sqlite {
            path: path.clone(),
            source,
        })?;
        schema::check_readable(&conn, &path)?;
        Ok(SqliteStore::holding(Shared {
            holders: AtomicUsize::new(1),
            path: path.clone(),
            read_only: true,
            open: RwLock::new(Open {
                jobs: None,
                writer: None,
                reader: Some(Arc::new(Reader {
                    conn: Mutex::new(conn),
                    lock: None,
                })),
            }),
            counters: Arc::default(),
            health: Arc::new(Health::new(path)),
            hasher: IdHasher::default(),
        }))
    }

    /// Whether the store was opened with [`open_read_only`](Self::open_read_only).
    pub fn is_read_only(&self) -> bool {
        self.shared.read_only
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// What the writer has done so far.
    pub fn stats(&self) -> StoreStats {
        let c = &self.shared.counters;
        StoreStats {
            transactions: c.transactions.load(Ordering::Relaxed),
            writes: c.writes.load(Ordering::Relaxed),
            largest_batch: c.largest_batch.load(Ordering::Relaxed),
            failed_transactions: c.failed_transactions.load(Ordering::Relaxed),
            consecutive_failures: c.consecutive_failures.load(Ordering::Relaxed),
            broken: self.shared.health.is_broken(),
            writing: Duration::from_nanos(c.writing_nanos.load(Ordering::Relaxed)),
        }
    }

    /// Caps the database file at about `bytes` (`None`: no cap), as
    /// [`SqliteOptions::max_size`] does at open. Writes that would grow the file past the
    /// cap fail as on a full disk; checkpoints are retried until they fit.
    pub async fn set_max_size(&self, bytes: Option<u64>) -> Result<(), StoreError> {
        self.write(Op::MaxSize(bytes)).await
    }

    /// Hands `op` to the writer thread; done once the transaction holding it committed.
    fn write(&self, op: Op) -> impl Future<Output = Result<(), StoreError>> + Send + '_ {
        let written = self.write_back(op);
        async move { written.await.map(drop) }
    }

    /// [`write`](Self::write), handing back the write, which a callback update fills in.
    ///
    /// The write is boxed before the future is made, so that the future holds a pointer
    /// rather than the write itself: every store call's future is boxed (`async_trait`),
    /// and with the write inline a checkpoint's was 1,272 bytes, past the 1,032 that
    /// glibc's per-thread cache serves without taking the arena's lock.
    fn write_back(&self, op: Op) -> impl Future<Output = Result<Box<Op>, StoreError>> + Send + '_ {
        let op = Box::new(op);
        async move {
            self.shared.health.check()?;
            let (reply, answer) = oneshot::channel();
            let gone = || StoreError::Backend("the store's writer thread has stopped".into());
            {
                let open = self.shared.open();
                let Some(jobs) = &open.jobs else {
                    return Err(self.shared.closed());
                };
                jobs.send(Job { op, reply }).map_err(|_| gone())?;
            }
            let (result, op) = answer.await.map_err(|_| gone())?;
            result.map(|()| op)
        }
    }

    /// Runs `f` on the read connection, off the async threads. What it read is returned
    /// only if the path still reaches the store's file: a deleted file's contents are in
    /// no file a restart would open.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, Cause> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.shared.health.check()?;
        let reader = self
            .shared
            .open()
            .reader
            .clone()
            .ok_or_else(|| self.shared.closed())?;
        let health = Arc::clone(&self.shared.health);
        tokio::task::spawn_blocking(move || {
            // A connection has no state a panicking query could leave half-changed.
            let read = f(&reader.conn.lock().unwrap_or_else(|e| e.into_inner()));
            let read = read.map_err(|cause| health.error(cause))?;
            if let Some(lock) = &reader.lock {
                lock.still_reaches()
                    .map_err(|reason| health.broke(reason))?;
            }
            Ok(read)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("read task failed: {e}")))?
    }
}

fn configure(conn: &Connection, options: &SqliteOptions) -> rusqlite::Result<()> {
    conn.pragma_update(None, "synchronous", options.durability.pragma())?;
    conn.pragma_update(None, "foreign_keys", true)?;
    // A write that is replayed in a savepoint (writer.rs) has a journal of its own (the
    // "statement journal"), which SQLite keeps in a temporary file by default: with many
    // writes per group commit, writing pages to that file was a sixth of the writer's
    // time. In memory it costs a copy of each page.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // 64 MiB of page cache instead of 2 MiB: the pages of thousands of executions in flight
    // stay cached instead of being read back from the OS between commits.
    conn.pragma_update(None, "cache_size", -65_536)?;
    // Copy the WAL back into the database every 64 MiB of log instead of every 4 MiB: a
    // page that many commits rewrite (a busy execution's row) is copied back once, not
    // once per 4 MiB. Durability is the same; the WAL file gets bigger. The checkpointer
    // thread (checkpointer.rs) copies most pages before this; this checkpoint copies the
    // rest and lets the log start over.
    let page_size: i64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
    conn.pragma_update(None, "wal_autocheckpoint", (64 << 20) / page_size.max(512))?;
    // The writer's statements: the four of every transaction, the inserts, and an
    // UPDATE per shape of checkpoint (rows.rs). At the default of 16 they could evict
    // each other and be parsed again.
    conn.set_prepared_statement_cache_capacity(64);
    // Short: the writer's own retry loop does the backing off, within its budget.
    conn.busy_timeout(Duration::from_millis(20))
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn create(
        &self,
        record: ExecutionRecord,
        events: Vec<Event>,
        parent_events: Vec<Event>,
    ) -> Result<(), StoreError> {
        let rows = CreateRows::encode(record, &events, &parent_events)?;
        self.write(Op::Create(rows)).await
    }

    async fn checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        let rows = CheckpointRows::encode(checkpoint, &self.shared.hasher)?;
        self.write(Op::Checkpoint(rows)).await
    }

    async fn reopen(&self, executions: &[Reopen]) -> Result<(), StoreError> {
        self.write(Op::Reopen(ReopenRows::encode_all(executions)?))
            .await
    }

    async fn callback(&self, update: &CallbackUpdate) -> Result<PendingCallback, StoreError> {
        let op = self
            .write_back(Op::Callback(CallbackRows::encode(update)?))
            .await?;
        let after = match *op {
            Op::Callback(rows) => rows.after.into_inner().unwrap_or_else(|e| e.into_inner()),
            _ => None,
        };
        after.ok_or_else(|| StoreError::Backend("the callback update wrote no callback".into()))
    }

    async fn append(&self, id: &ExecutionId, events: Vec<Event>) -> Result<(), StoreError> {
        let id = id.clone();
        let events = EventRows::encode(&events)?;
        self.write(Op::Append { id, events }).await
    }

    async fn get(&self, id: &ExecutionId) -> Result<Option<ExecutionRecord>, StoreError> {
        let id = id.clone();
        self.read(move |conn| {
            let sql = format!(
                "SELECT {} FROM executions e WHERE e.id = ?1",
                rows::RECORD_COLUMNS
            );
            let row = conn
                .prepare_cached(&sql)
                .and_then(|mut s| s.query_row([id.as_str()], rows::record).optional())?;
            Ok(row.transpose().map_err(StoreError::from)?)
        })
        .await
    }

    async fn history(&self, id: &ExecutionId) -> Result<Vec<Event>, StoreError> {
        let id = id.clone();
        self.read(move |conn| {
            let bodies: Vec<String> = conn
                .prepare_cached(
                    "SELECT body FROM events \
                     WHERE execution = (SELECT key FROM executions WHERE id = ?1) \
                     ORDER BY seq",
                )
                .and_then(|mut s| {
                    s.query_map([id.as_str()], |r| r.get(0))?
                        .collect::<rusqlite::Result<_>>()
                })?;
            if bodies.is_empty() && !exists(conn, &id)? {
                return Err(StoreError::NotFound(id).into());
            }
            Ok(bodies
                .iter()
                .map(|b| rows::event(&id, b))
                .collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn children(&self, id: &ExecutionId) -> Result<Vec<ExecutionId>, StoreError> {
        let id = id.clone();
        self.read(move |conn| {
            let children: Vec<String> = conn
                .prepare_cached(
                    "SELECT id FROM executions \
                     WHERE parent = (SELECT key FROM executions WHERE id = ?1) \
                     ORDER BY key",
                )
                .and_then(|mut s| {
                    s.query_map([id.as_str()], |r| r.get(0))?
                        .collect::<rusqlite::Result<_>>()
                })?;
            if children.is_empty() && !exists(conn, &id)? {
                return Err(StoreError::NotFound(id).into());
            }
            Ok(children.into_iter().map(ExecutionId::from).collect())
        })
        .await
    }

    async fn list(
        &self,
        filter: &ExecutionFilter,
    ) -> Result<Vec<Result<ExecutionSummary, CorruptRow>>, StoreError> {
        let filter = filter.clone();
        self.read(move |conn| {
            // The callbacks' partial index serves only a condition that implies its own,
            // written out: a parameter would not do.
            let sql = format!(
                "SELECT {} FROM executions e \
                 WHERE {}(?1 IS NULL OR e.workflow = ?1) AND (?2 IS NULL OR e.status = ?2) \
                   AND (?3 = 0 OR e.parent IS NULL) AND (?4 IS NULL OR e.created_at >= ?4) \
                 ORDER BY e.key {} LIMIT ?5 OFFSET ?6",
                rows::SUMMARY_COLUMNS,
                if filter.waiting_on_callback {
                    "e.callback IS NOT NULL AND "
                } else {
                    ""
                },
                if filter.newest_first { "DESC" } else { "ASC" },
            );
            let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
            let limit = filter.limit.map_or(-1, count);
            let since = filter.since.map(|t| i64::try_from(t.0).unwrap_or(i64::MAX));
            let rows = conn.prepare_cached(&sql).and_then(|mut s| {
                s.query_map(
                    rusqlite::params![
                        filter.workflow,
                        filter.status.map(|s| s.as_str()),
                        filter.top_level,
                        since,
                        limit,
                        count(filter.offset),
                    ],
                    rows::summary,
                )?
                .collect()
            })?;
            Ok(rows)
        })
        .await
    }

    /// Closes the store, unless a clone of it is still held elsewhere.
    fn release(&self) {
        self.let_go();
    }

    async fn unfinished(&self) -> Result<Vec<Result<ExecutionRecord, CorruptRow>>, StoreError> {
        self.read(move |conn| {
            // Word for word the condition of the partial index `executions_unfinished`
            // (schema.rs): SQLite uses a partial index only for a condition that matches.
            let sql = format!(
                "SELECT {} FROM executions e \
                 WHERE e.status IN ('Running', 'VersionMismatch') ORDER BY e.key",
                rows::RECORD_COLUMNS
            );
            let rows = conn
                .prepare_cached(&sql)
                .and_then(|mut s| s.query_map([], rows::record)?.collect())?;
            Ok(rows)
        })
        .await
    }
}

fn exists(conn: &Connection, id: &ExecutionId) -> Result<bool, Cause> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM executions WHERE id = ?1")
        .and_then(|mut s| s.exists([id.as_str()]))?)
}

#[cfg(test)]
mod tests;
