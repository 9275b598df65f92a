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
//! A failure of the transaction itself (disk full, I/O error, the file locked by another
//! process for too long) rolls all of it back, and every write of the batch is answered
//! with [`StoreError::Unavailable`]: nothing was written, and the runtime retries.
//!
//! [`Durability::PowerLoss`]: super::Durability::PowerLoss

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::cache::Cache;
use super::checkpointer::Checkpointer;
use super::errors::{is_busy, store_error};
use super::lock::LockFile;
use super::rows::{self, CheckpointRows, CreateRows, EventRow, Failure};
use crate::error::StoreError;
use crate::execution::ExecutionId;

/// One write, encoded by its caller.
pub(super) enum Op {
    Create(CreateRows),
    Checkpoint(CheckpointRows),
    Append {
        id: ExecutionId,
        events: Vec<EventRow>,
    },
    /// Caps the database file (`PRAGMA max_page_count`); `None` lifts the cap.
    MaxSize(Option<u64>),
}

pub(super) struct Job {
    pub(super) op: Op,
    pub(super) reply: oneshot::Sender<Reply>,
}

/// The write's result, and the write itself: its caller drops it. Freed on the writer
/// thread, the rows (allocated on the runtime's threads) were a tenth of its time, and
/// the allocator's cross-thread frees slowed the runtime's own allocations.
pub(super) type Reply = (Result<(), StoreError>, Op);

/// Counters the writer keeps, read by [`SqliteStore::stats`](super::SqliteStore::stats).
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) transactions: AtomicU64,
    pub(super) writes: AtomicU64,
    pub(super) failed_transactions: AtomicU64,
    pub(super) largest_batch: AtomicU64,
}

pub(super) struct Writer {
    pub(super) conn: Connection,
    pub(super) jobs: mpsc::Receiver<Job>,
    pub(super) counters: Arc<Counters>,
    pub(super) max_batch: usize,
    /// How long a transaction waits for another process's lock before giving up.
    pub(super) busy_budget: Duration,
    pub(super) cache: Cache,
    /// Told of every commit; stopped before the connection closes.
    pub(super) checkpointer: Option<Checkpointer>,
    /// Held for as long as this thread can write; released after the last commit.
    pub(super) _lock: LockFile,
}

impl Writer {
    /// Runs until every sender is gone, then closes the connection.
    pub(super) fn run(mut self) {
        while let Ok(first) = self.jobs.recv() {
            let mut batch = vec![first];
            while batch.len() < self.max_batch {
                match self.jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            self.commit(batch);
        }
        // Its connection closes first, so that the writer's, the last one, is the one
        // that checkpoints everything and removes the log.
        drop(self.checkpointer.take());
    }

    fn commit(&mut self, batch: Vec<Job>) {
        // A size cap is a setting, not a write: applied on its own, so that a checkpoint
        // failing on the full disk in the same batch cannot fail the call that lifts it.
        let (settings, batch): (Vec<Job>, Vec<Job>) = batch
            .into_iter()
            .partition(|j| matches!(j.op, Op::MaxSize(_)));
        for job in settings {
            if let Op::MaxSize(bytes) = job.op {
                let result = max_page_count(&self.conn, bytes).map_err(store_error);
                let _ = job.reply.send((result, job.op));
            }
        }
        if batch.is_empty() {
            return;
        }
        let (ops, replies): (Vec<Op>, Vec<_>) = batch.into_iter().map(|j| (j.op, j.reply)).unzip();
        let results = match self.transaction(&ops) {
            Ok(results) => {
                self.counters.transactions.fetch_add(1, Ordering::Relaxed);
                self.counters
                    .writes
                    .fetch_add(ops.len() as u64, Ordering::Relaxed);
                self.counters
                    .largest_batch
                    .fetch_max(ops.len() as u64, Ordering::Relaxed);
                results
            }
            Err(e) => {
                self.counters
                    .failed_transactions
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, writes = ops.len(), "store transaction failed");
                vec![Err(e); ops.len()]
            }
        };
        for ((reply, result), op) in replies.into_iter().zip(results).zip(ops) {
            // The caller may have stopped waiting (its task was aborted); the write stands.
            let _ = reply.send((result, op));
        }
    }

    /// One transaction for the whole batch: `Ok` with each write's own result if it
    /// committed, `Err` if nothing was written.
    fn transaction(&mut self, ops: &[Op]) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        self.retry_busy(|conn| run(conn, "BEGIN IMMEDIATE"))?;
        let mut results = Vec::with_capacity(ops.len());
        for op in ops {
            match self.apply(op) {
                Ok(()) => results.push(Ok(())),
                Err(Failure {
                    error,
                    partial: false,
                }) if !error.is_transient() => results.push(Err(error)),
                Err(failure) => {
                    self.rollback();
                    if failure.error.is_transient() {
                        return Err(transient(failure.error));
                    }
                    return self.one_by_one(ops);
                }
            }
        }
        self.commit_transaction()?;
        Ok(results)
    }

    /// The batch again, after a write failed halfway: each write in a savepoint, so that
    /// a failing one undoes only itself.
    fn one_by_one(&mut self, ops: &[Op]) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        self.retry_busy(|conn| run(conn, "BEGIN IMMEDIATE"))?;
        let mut results = Vec::with_capacity(ops.len());
        for op in ops {
            match self.apply_in_savepoint(op) {
                Ok(()) => results.push(Ok(())),
                Err(e) => {
                    if e.is_transient() || self.conn.is_autocommit() {
                        // Disk full, I/O: SQLite may have rolled the transaction back
                        // already; make sure of it and report the whole batch unwritten.
                        self.rollback();
                        return Err(transient(e));
                    }
                    results.push(Err(e));
                }
            }
        }
        self.commit_transaction()?;
        Ok(results)
    }

    fn commit_transaction(&mut self) -> Result<(), StoreError> {
        match self.retry_busy(|conn| run(conn, "COMMIT")) {
            Ok(()) => {
                self.cache.committed();
                if let Some(checkpointer) = &self.checkpointer {
                    checkpointer.committed();
                }
                Ok(())
            }
            Err(e) => {
                self.rollback();
                Err(transient(e))
            }
        }
    }

    /// Applies one write in the open transaction.
    fn apply(&mut self, op: &Op) -> Result<(), Failure> {
        let (conn, cache) = (&self.conn, &mut self.cache);
        match op {
            Op::Create(rows) => rows::insert_execution(conn, cache, rows),
            Op::Checkpoint(rows) => rows::apply_checkpoint(conn, cache, rows),
            Op::Append { id, events } => rows::append(conn, cache, id, events),
            Op::MaxSize(bytes) => max_page_count(conn, *bytes).map_err(|e| Failure {
                error: store_error(e),
                partial: true,
            }),
        }
    }

    /// Applies one write inside a savepoint, so that its failure undoes only itself.
    fn apply_in_savepoint(&mut self, op: &Op) -> Result<(), StoreError> {
        run(&self.conn, "SAVEPOINT op").map_err(store_error)?;
        match self.apply(op) {
            Ok(()) => run(&self.conn, "RELEASE op").map_err(store_error),
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
    fn retry_busy(
        &self,
        f: impl Fn(&Connection) -> rusqlite::Result<()>,
    ) -> Result<(), StoreError> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            match f(&self.conn) {
                Ok(()) => return Ok(()),
                Err(e) if is_busy(&e) && started.elapsed() < self.busy_budget => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(100));
                }
                Err(e) => return Err(store_error(e)),
            }
        }
    }
}

/// Runs one statement, prepared once per connection: the writer runs these four for
/// every write, and parsing them each time was a visible share of a small commit.
fn run(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

/// A failure of the transaction as a whole is always worth retrying: whatever the
/// single write said, nothing of the batch was written.
fn transient(e: StoreError) -> StoreError {
    match e {
        StoreError::Unavailable(_) => e,
        other => StoreError::Unavailable(other.to_string()),
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
