//! The WAL checkpointer thread: copies committed pages from the write-ahead log back
//! into the database file, beside the writer instead of on it.
//!
//! SQLite's default is for the connection that commits to do it, when the log passes a
//! size (`wal_autocheckpoint`): with thousands of executions in flight that copy (and its
//! `fsync`s) was an eighth of the writer thread's time, during which no checkpoint of any
//! execution could commit. A `PASSIVE` checkpoint on another connection copies the same
//! pages while the writer goes on appending to the log.
//!
//! The writer keeps its own automatic checkpoint as a backstop: it is what lets the log
//! start over from its beginning (only a checkpoint that finds every frame copied does),
//! and since this thread has copied nearly everything by then, it is cheap.

use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

/// At most one checkpoint per this interval: a page rewritten by many commits in between
/// is copied once.
const INTERVAL: Duration = Duration::from_millis(200);

pub(super) struct Checkpointer {
    /// A commit happened (a full queue already says so).
    notify: Option<mpsc::SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts the thread on a connection of its own to `path`, which syncs as the
    /// writer's does (`synchronous`).
    pub(super) fn start(path: &Path, synchronous: &str) -> rusqlite::Result<Checkpointer> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // Only ever checkpoints; never waits on a lock (a busy checkpoint is skipped).
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        // Not even when it closes: the writer closes last and does that, unless the
        // store is broken, when nothing may write the file (health.rs).
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        )?;
        conn.pragma_update(None, "synchronous", synchronous)?;
        let (notify, commits) = mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("sqlite-wal-ckpt".into())
            .spawn(move || run(&conn, &commits))
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        Ok(Checkpointer {
            notify: Some(notify),
            thread: Some(thread),
        })
    }

    /// Tells the thread that the log has grown.
    pub(super) fn committed(&self) {
        if let Some(notify) = &self.notify {
            // Full: a notification is already pending, which is all this one would say.
            let _ = notify.try_send(());
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.notify.take());
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the store's checkpointer thread panicked");
            }
        }
    }
}

fn run(conn: &Connection, commits: &mpsc::Receiver<()>) {
    let mut last = Instant::now();
    while commits.recv().is_ok() {
        let wait = INTERVAL.saturating_sub(last.elapsed());
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        last = Instant::now();
        // A failure (the writer's own checkpoint running, an I/O error) leaves the pages
        // in the log, where they are as safe; the writer's checkpoint copies them later.
        let result: rusqlite::Result<(i64, i64, i64)> =
            conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            });
        if let Err(e) = result {
            tracing::debug!(error = %e, "background WAL checkpoint failed");
        }
    }
}
