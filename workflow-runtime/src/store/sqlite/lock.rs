//! The lock that keeps a second runtime off a database file.
//!
//! SQLite's own locks serialize writers but let any number of processes open the file,
//! and two runtimes on one file would both resume the same executions and run every task
//! twice. So the first runtime takes an exclusive advisory lock (`flock` on Unix,
//! `LockFileEx` on Windows) on `{database}.lock` and keeps it while its store lives. The
//! kernel drops the lock when the process dies, even by `kill -9`, so a restart never
//! finds a stale lock; the pid written into the file only makes the error readable.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use fs4::fs_std::FileExt;

use crate::error::OpenError;

/// The held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub(super) struct LockFile {
    _file: File,
}

/// `{database}.lock`, beside the database.
pub(super) fn lock_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

impl LockFile {
    /// Takes the lock of `database`, or says who holds it.
    pub(super) fn acquire(database: &Path) -> Result<LockFile, OpenError> {
        let path = lock_path(database);
        let io = |source| OpenError::Io {
            path: path.clone(),
            source,
        };
        // Not truncated on open: the holder's pid must survive a refused attempt.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        // Called through the trait: `File::try_lock` is a different, newer std method.
        if !FileExt::try_lock_exclusive(&file).map_err(io)? {
            let mut holder = String::new();
            // Best effort: the holder may be writing the file right now.
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(OpenError::Locked {
                path: database.to_owned(),
                holder: (!holder.is_empty()).then(|| holder.to_owned()),
            });
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        writeln!(file, "pid {}", std::process::id()).map_err(io)?;
        Ok(LockFile { _file: file })
    }
}
