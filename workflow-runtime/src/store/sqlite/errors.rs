//! How SQLite's errors are classified: "not now" (worth another try), "never, for this
//! write" (the write's own fault), or "never, for any write" (the file is unusable).
//!
//! The last class is what stops the store ([`StoreError::Broken`]). Retrying it is
//! what used to hang a runtime: a corrupted page answered every transaction with the
//! same error, each was reported as unavailable and retried forever, and executions sat
//! in `Running` with nothing surfaced. Only conditions that go away on their own are
//! transient: another connection's lock, a full disk (or the size cap of
//! [`SqliteOptions::max_size`](super::SqliteOptions::max_size), which SQLite reports
//! exactly as a full disk), memory. An I/O error is not among them: SQLite returns it
//! when the kernel refused a read, write or sync, after which what the file holds is
//! not known (a failed `fsync` may have dropped the pages it was to write), so going on
//! could acknowledge writes that are not on disk.

use rusqlite::ErrorCode;

use crate::error::StoreError;

/// A failed SQLite call (or a refusal found by the store), classified by what the store
/// does next.
#[derive(Debug)]
pub(super) enum Cause {
    /// Not now: nothing was written, and the same write can succeed once the disk has
    /// room or the lock is free. Answered as [`StoreError::Unavailable`].
    Transient(String),
    /// Never, for any write: the file is corrupted or the disk fails. The store stops
    /// ([`StoreError::Broken`]).
    Broken(String),
    /// This operation's own failure: a refusal (unknown or ended execution), or a value
    /// or constraint SQLite refuses. The other writes of a batch are not concerned.
    Store(StoreError),
}

impl From<rusqlite::Error> for Cause {
    fn from(e: rusqlite::Error) -> Self {
        let code = e.sqlite_error_code();
        let extended = match &e {
            rusqlite::Error::SqliteFailure(f, _) => f.extended_code,
            _ => 0,
        };
        match code {
            Some(
                ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::DiskFull
                | ErrorCode::OutOfMemory
                // A race on the shared-memory index between connections; SQLite
                // retries it itself and gives up only after many tries.
                | ErrorCode::FileLockingProtocolFailed,
            ) => Cause::Transient(e.to_string()),
            // Out of memory inside the VFS is memory, not the disk.
            Some(ErrorCode::SystemIoFailure) if extended == rusqlite::ffi::SQLITE_IOERR_NOMEM => {
                Cause::Transient(e.to_string())
            }
            Some(
                ErrorCode::DatabaseCorrupt
                | ErrorCode::NotADatabase
                | ErrorCode::SystemIoFailure
                | ErrorCode::ReadOnly
                | ErrorCode::CannotOpen
                | ErrorCode::PermissionDenied,
            ) => Cause::Broken(e.to_string()),
            _ => Cause::Store(StoreError::Backend(e.to_string())),
        }
    }
}

impl From<StoreError> for Cause {
    fn from(e: StoreError) -> Self {
        Cause::Store(e)
    }
}

pub(super) fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}
