//! The writer thread: every write of a store goes through it, in group commits.
//!
//! A commit costs about the same whether it carries one checkpoint or a hundred (in WAL
//! mode it is one append to the log, plus an `fsync` at [`Durability::PowerLoss`]). So
//! the thread takes whatever writes are queued when it becomes free, applies them in one
//! transaction, commits once, and answers each caller on its oneshot. With one execution
//! that is one transaction per checkpoint; with a thousand, the queue fills while a
//! commit runs and each commit carries many checkpoints, so throughput grows with
//! concurrency instead of being bound by one commit per transition.
//!
//! A write that fails on its own (an unknown or ended execution) fails alone: the rest of
//! the batch commits. Most such failures are refusals found before the write changes
//! anything, and the batch goes on. A write that fails halfway (a constraint, a value
//! SQLite refuses) rolls the transaction back, and the batch is applied again with each
//! write in a savepoint of its own, so that the failing one undoes only itself. Savepoints
//! are not the default because each one costs a statement journal and two statements per
//! write, a third of the writer's time when every write succeeds.
//!
//! A failure of the transaction itself rolls all of it back. If it is one that goes away
//! (disk full, the file locked by another process for too long), every write of the batch
//! is answered with [`StoreError::Unavailable`]: nothing was written, and the runtime
//! retries. The thread logs a warning when such failures start, an error once they have
//! lasted [`STALLED`], and a line when writes go through again, rather than one line per
//! failed transaction; [`StoreStats`] counts them. If it is one that does not go away (a
//! corrupted page, an I/O error: see `errors.rs`), the store stops ([`Health`]).
//!
//! After each commit the thread checks that the store's path still reaches the file it
//! wrote (`Lock::still_reaches`): a write committed into a file that was deleted or
//! replaced meanwhile is in no file anyone will open again, so the batch is answered with
//! [`StoreError::Broken`] instead of being acknowledged, and the store stops.
//!
//! [`Durability::PowerLoss`]: super::Durability::PowerLoss
//! [`StoreStats`]: super::StoreStats

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::config::DbConfig;
use rusqlite::Connection;
use tokio::sync::oneshot;

use super::cache::Cache;
use super::checkpointer::Checkpointer;
use super::errors::{is_busy, Cause};
use super::health::Health;
use super::lock::Lock;
use super::rows::{
    self, CallbackRows, CheckpointRows, CreateRows, EventRows, Failure, ReopenRows, Statements,
};
use crate::error::StoreError;
use crate::execution::ExecutionId;

/// How long transactions may keep failing (transiently) before the writer logs an error
/// rather than a warning: executions are paused at their last checkpoint meanwhile, and
/// someone should look (a full disk, a backup holding the lock).
pub(super) const STALLED: Duration = Duration::from_secs(30);

/// One write, encoded by its caller.
pub(super) enum Op {
    Create(CreateRows),
    Checkpoint(CheckpointRows),
    /// Ended executions set running again, all or none (a redrive).
    Reopen(Vec<ReopenRows>),
    /// A change to the callback an execution waits on.
    Callback(CallbackRows),
    Append {
        id: ExecutionId,
        events: EventRows,
    },
    /// Caps the database file (`PRAGMA max_page_count`); `None` lifts the cap.
    MaxSize(Option<u64>),
}

/// One write and where its result goes. The write travels boxed, there and back: a job
/// is moved several times on its way (into the channel, out of it into the batch, into
/// the reply), and an `Op` inline is a few hundred bytes, copied at each move.
pub(super) struct Job {
    pub(super) op: Box<Op>,
    pub(super) reply: oneshot::Sender<Reply>,
}

/// The write's result, and the write itself: its caller drops it. Freed on the writer
/// thread, the rows (allocated on the runtime's threads) were a tenth of its time, and
/// the allocator's cross-thread frees slowed the runtime's own allocations.
pub(super) type Reply = (Result<(), StoreError>, Box<Op>);

/// Counters the writer keeps, read by [`SqliteStore::stats`](super::SqliteStore::stats).
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) transactions: AtomicU64,
    pub(super) writes: AtomicU64,
    pub(super) failed_transactions: AtomicU64,
    pub(super) consecutive_failures: AtomicU64,
    pub(super) largest_batch: AtomicU64,
    /// Time spent in transactions, in nanoseconds (584 years fit).
    pub(super) writing_nanos: AtomicU64,
}

/// Since when transactions have been failing, and whether that was logged as an error.
pub(super) struct Failing {
    since: Instant,
    reported: bool,
}

pub(super) struct Writer {
    pub(super) conn: Connection,
    pub(super) jobs: mpsc::Receiver<Job>,
    pub(super) counters: Arc<Counters>,
    pub(super) max_batch: usize,
    /// How long a transaction waits for another process's lock before giving up.
    pub(super) busy_budget: Duration,
    pub(super) cache: Cache,
    /// Told of every commit; stopped before the connection closes, or when the store
    /// breaks.
    pub(super) checkpointer: Option<Checkpointer>,
    pub(super) health: Arc<Health>,
    pub(super) failing: Option<Failing>,
    /// Held for as long as this thread can write. Declared after the connection and the
    /// checkpointer, so dropped after them: see `lock.rs` for why the order matters.
    pub(super) lock: Arc<Lock>,
}

impl Writer {
    /// Runs until every sender is gone, then closes the connection.
    pub(super) fn run(mut self) {
        // One vector for every batch: its capacity stays, and a job is moved into it once.
        let mut batch = Vec::new();
        while let Ok(first) = self.jobs.recv() {
            batch.push(first);
            while batch.len() < self.max_batch {
                match self.jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            self.commit(&mut batch);
        }
        // Its connection closes first, so that the writer's, the last one, is the one
        // that checkpoints everything and removes the log.
        drop(self.checkpointer.take());
        self.stop_if_broken();
    }

    /// Once the store is broken, nothing may copy the log into the file (or delete the
    /// log) any more: the file may be corrupted, or another file may have its name now,
    /// with a log of the same name that is not ours.
    fn stop_if_broken(&mut self) {
        if !self.health.is_broken() {
            return;
        }
        drop(self.checkpointer.take());
        if let Err(e) = self
            .conn
            .set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
        {
            tracing::debug!(error = %e, "cannot turn off the checkpoint on close");
        }
    }

    /// Applies and answers `batch`, leaving it empty.
    fn commit(&mut self, batch: &mut Vec<Job>) {
        if let Err(error) = self.health.check() {
            self.stop_if_broken();
            for job in batch.drain(..) {
                let _ = job.reply.send((Err(error.clone()), job.op));
            }
            return;
        }
        // A size cap is a setting, not a write: applied on its own, so that a checkpoint
        // failing on the full disk in the same batch cannot fail the call that lifts it.
        let setting = |j: &Job| matches!(*j.op, Op::MaxSize(_));
        if batch.iter().any(setting) {
            let (settings, writes): (Vec<Job>, Vec<Job>) = batch.drain(..).partition(setting);
            *batch = writes;
            for job in settings {
                if let Op::MaxSize(bytes) = *job.op {
                    let result = max_page_count(&self.conn, bytes)
                        .map_err(|e| self.health.error(Cause::from(e)));
                    let _ = job.reply.send((result, job.op));
                }
            }
        }
        if batch.is_empty() {
            return;
        }
        let writes = batch.len();
        let started = Instant::now();
        let transaction = self.transaction(batch);
        let took = started.elapsed();
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.counters
            .writing_nanos
            .fetch_add(nanos, Ordering::Relaxed);
        let results = match transaction {
            Ok(results) => {
                let metrics = crate::telemetry::metrics();
                metrics.checkpoint_duration.record(took.as_secs_f64(), &[]);
                metrics.checkpoint_batch.record(writes as u64, &[]);
                self.committed(writes);
                match self.lock.still_reaches() {
                    Ok(()) => results,
                    Err(reason) => vec![Err(self.health.broke(reason)); writes],
                }
            }
            Err(cause) => {
                let error = self.health.error(cause);
                self.failed(&error, writes);
                vec![Err(error); writes]
            }
        };
        self.stop_if_broken();
        for (job, result) in batch.drain(..).zip(results) {
            // The caller may have stopped waiting (its task was aborted); the write stands.
            let _ = job.reply.send((result, job.op));
        }
    }

    fn committed(&mut self, writes: usize) {
        let c = &self.counters;
        c.transactions.fetch_add(1, Ordering::Relaxed);
        c.writes.fetch_add(writes as u64, Ordering::Relaxed);
        c.largest_batch.fetch_max(writes as u64, Ordering::Relaxed);
        let failures = c.consecutive_failures.swap(0, Ordering::Relaxed);
        if let Some(failing) = self.failing.take() {
            tracing::info!(
                failed_transactions = failures, failing_for = ?failing.since.elapsed(),
                "store writes go through again"
            );
        }
    }

    /// Counts a failed transaction, and says so when failures start and once they have
    /// lasted too long (not at each one: the runtime retries every checkpoint).
    fn failed(&mut self, error: &StoreError, writes: usize) {
        let c = &self.counters;
        c.failed_transactions.fetch_add(1, Ordering::Relaxed);
        c.consecutive_failures.fetch_add(1, Ordering::Relaxed);
        if !error.is_transient() {
            // Broken: logged once by `Health`.
            return;
        }
        match &mut self.failing {
            None => {
                tracing::warn!(
                    %error, writes,
                    "store transaction failed; executions wait at their last checkpoint and are retried"
                );
                self.failing = Some(Failing {
                    since: Instant::now(),
                    reported: false,
                });
            }
            Some(failing) if !failing.reported && failing.since.elapsed() >= STALLED => {
                failing.reported = true;
                tracing::error!(
                    %error, failing_for = ?failing.since.elapsed(),
                    failed_transactions = c.consecutive_failures.load(Ordering::Relaxed),
                    "the store has not been able to write for a long time; executions are \
                     paused at their last checkpoint until it can"
                );
            }
            Some(_) => tracing::debug!(%error, writes, "store transaction failed again"),
        }
    }

    /// One transaction for the whole batch: `Ok` with each write's own result if it
    /// committed, `Err` if nothing was written.
    fn transaction(&mut self, jobs: &[Job]) -> Result<Vec<Result<(), StoreError>>, Cause> {
        self.retry_busy(|conn| run(conn, "BEGIN IMMEDIATE"))?;
        let mut results = Vec::with_capacity(jobs.len());
        let mut failed = None;
        {
            // Back to the connection's cache before the transaction commits or rolls back.
            let sql = Statements::new(&self.conn);
            for job in jobs {
                match apply(&sql, &mut self.cache, &job.op) {
                    Ok(()) => results.push(Ok(())),
                    Err(Failure {
                        error: Cause::Store(error),
                        partial: false,
                    }) => results.push(Err(error)),
                    Err(failure) => {
                        failed = Some(failure);
                        break;
                    }
                }
            }
        }
        match failed {
            None => {}
            Some(Failure {
                error: Cause::Store(_),
                partial: true,
            }) => {
                self.rollback();
                return self.one_by_one(jobs);
            }
            Some(Failure { error, .. }) => {
                self.rollback();
                return Err(error);
            }
        }
        self.commit_transaction()?;
        Ok(results)
    }

    /// The batch again, after a write failed halfway: each write in a savepoint, so that
    /// a failing one undoes only itself.
    fn one_by_one(&mut self, jobs: &[Job]) -> Result<Vec<Result<(), StoreError>>, Cause> {
        self.retry_busy(|conn| run(conn, "BEGIN IMMEDIATE"))?;
        let mut results = Vec::with_capacity(jobs.len());
        for job in jobs {
            match self.apply_in_savepoint(&job.op) {
                Ok(()) => results.push(Ok(())),
                Err(Cause::Store(e)) if !self.conn.is_autocommit() => results.push(Err(e)),
                Err(cause) => {
                    // Disk full, I/O, or SQLite rolled the transaction back already: make
                    // sure of it and report the whole batch unwritten.
                    self.rollback();
                    return Err(whole(cause));
                }
            }
        }
        self.commit_transaction()?;
        Ok(results)
    }

    fn commit_transaction(&mut self) -> Result<(), Cause> {
        match self.retry_busy(|conn| run(conn, "COMMIT")) {
            Ok(()) => {
                self.cache.committed();
                if let Some(checkpointer) = &self.checkpointer {
                    checkpointer.committed();
                }
                Ok(())
            }
            Err(cause) => {
                self.rollback();
                Err(whole(cause))
            }
        }
    }

    /// Applies one write inside a savepoint, so that its failure undoes only itself.
    fn apply_in_savepoint(&mut self, op: &Op) -> Result<(), Cause> {
        run(&self.conn, "SAVEPOINT op")?;
        let applied = apply(&Statements::new(&self.conn), &mut self.cache, op);
        match applied {
            Ok(()) => Ok(run(&self.conn, "RELEASE op")?),
            Err(Failure { error, .. }) => {
                self.cache.rolled_back();
                if !self.conn.is_autocommit() {
                    // If even this fails the transaction is gone, which the caller sees.
                    let _ = self.conn.execute_batch("ROLLBACK TO op; RELEASE op");
                }
                Err(error)
            }
        }
    }

    fn rollback(&mut self) {
        self.cache.rolled_back();
        if !self.conn.is_autocommit() {
            if let Err(e) = self.conn.execute_batch("ROLLBACK") {
                tracing::error!(error = %e, "rollback failed");
            }
        }
    }

    /// Runs `f`, retrying with exponential backoff while another connection holds the
    /// database lock (`SQLITE_BUSY`), for up to the busy budget.
    fn retry_busy(&self, f: impl Fn(&Connection) -> rusqlite::Result<()>) -> Result<(), Cause> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            match f(&self.conn) {
                Ok(()) => return Ok(()),
                Err(e) if is_busy(&e) && started.elapsed() < self.busy_budget => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(100));
                }
                Err(e) => return Err(Cause::from(e)),
            }
        }
    }
}

/// Applies one write in the open transaction.
fn apply(sql: &Statements<'_>, cache: &mut Cache, op: &Op) -> Result<(), Failure> {
    match op {
        Op::Create(rows) => rows::insert_execution(sql, cache, rows),
        Op::Checkpoint(rows) => rows::apply_checkpoint(sql, cache, rows),
        Op::Reopen(rows) => rows::reopen(sql, cache, rows),
        Op::Callback(rows) => rows::apply_callback(sql, cache, rows),
        Op::Append { id, events } => rows::append(sql, cache, id, events),
        Op::MaxSize(bytes) => max_page_count(sql.conn, *bytes).map_err(|e| Failure {
            error: Cause::from(e),
            partial: true,
        }),
    }
}

/// Runs one statement, prepared once per connection: the writer runs these four for
/// every write, and parsing them each time was a visible share of a small commit.
fn run(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

/// A failure of the transaction as a whole: whatever the single write said, nothing of
/// the batch was written, so it is worth retrying, unless the file is broken.
fn whole(cause: Cause) -> Cause {
    match cause {
        Cause::Store(e) => Cause::Transient(e.to_string()),
        other => other,
    }
}

/// `PRAGMA max_page_count` for a cap of about `bytes` (`None`: SQLite's own ceiling).
pub(super) fn max_page_count(conn: &Connection, bytes: Option<u64>) -> rusqlite::Result<()> {
    let page_size: i64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
    let pages = bytes.map_or(4_294_967_294, |b| {
        i64::try_from(b).unwrap_or(i64::MAX) / page_size.max(1)
    });
    conn.pragma_update(None, "max_page_count", pages.max(1))
}
