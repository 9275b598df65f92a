//! The lock that keeps a second runtime off a database file, and the check that the
//! file a store writes is still the one at its path.
//!
//! SQLite's own locks serialize writers but let any number of processes open the file,
//! and two runtimes on one file would both resume the same executions and run every task
//! twice. So a store takes an exclusive advisory lock (`flock`) and keeps it while it
//! lives. The kernel drops it when the process dies, even by `kill -9`, so a restart
//! never finds a stale lock.
//!
//! # Why the database file itself
//!
//! The lock used to be on `{path}.lock`, named after the path the store was given. Any
//! other name of the database got another lock file: a symlink, a second hard link, a
//! relative path from another directory, or the same path after someone deleted the lock
//! file. Two runtimes then ran every task twice. On Unix the lock is now on the database
//! file, that is on its inode, which every path that reaches the file shares.
//!
//! That descriptor must stay open for the store's whole life, and close only after every
//! SQLite connection of the store has closed: SQLite locks the file with POSIX `fcntl`
//! locks, which belong to the process and the inode, and closing *any* descriptor of the
//! inode drops all of them (SQLite defers the closes of its own descriptors for this
//! reason; it does not know about ours). So the [`Lock`] is shared (`Arc`) by the writer,
//! the reader and the checkpointer, each of which drops it after its connection. For the
//! same reason a second store of this process on a held file is refused from a table of
//! the files this process holds, before it opens a descriptor it would then close.
//!
//! # Hard links
//!
//! SQLite names its write-ahead log and shared-memory index after the path it was given
//! (it resolves symlinks first, so a symlink is harmless). Two names of one file, however,
//! have two logs: a commit in one log is invisible through the other name, and a
//! checkpoint through that name can overwrite it. A file with more than one link is
//! refused ([`OpenError::HardLinked`]).
//!
//! # Who holds it
//!
//! A refused opener cannot read anything from the holder through the lock. The holder
//! writes who it is ([`Holder`]: pid, host, since when) to `{file}.holder` beside the
//! database, named after the file's real path (symlinks resolved), so that every path
//! to the file finds it. It is only ever read to word the refusal; deleting it does not
//! unlock anything. The holder removes it when it closes, while it still holds the lock.
//!
//! # Limits
//!
//! The lock is advisory: a process that does not use this crate (an `sqlite3` shell, a
//! backup) can still open and write the file. Network file systems may not implement
//! `flock` (NFS emulates it with `fcntl` locks, which then mix with SQLite's own). On
//! Windows the lock is on `{file}.lock` (from the file's real path), because Windows'
//! file locks are mandatory and a lock on the database would stop SQLite's own reads.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use fs4::fs_std::FileExt;

use crate::error::{Holder, OpenError};
use crate::time::Timestamp;

/// What identifies a database file in this process's table of held files: its device
/// and inode on Unix, its real path elsewhere.
#[cfg(unix)]
#[derive(Clone, Debug, PartialEq, Eq)]
struct Key {
    dev: u64,
    ino: u64,
}
#[cfg(not(unix))]
#[derive(Clone, Debug, PartialEq, Eq)]
struct Key(PathBuf);

/// The files this process's stores hold, and who holds each (for the refusal).
static HELD: Mutex<Vec<(Key, Holder)>> = Mutex::new(Vec::new());

fn held() -> std::sync::MutexGuard<'static, Vec<(Key, Holder)>> {
    // The table is changed by single pushes and removals: a panic cannot leave it torn.
    HELD.lock().unwrap_or_else(|e| e.into_inner())
}

/// The held lock; released when the last clone of its `Arc` is dropped (or when the
/// process ends).
#[derive(Debug)]
pub(super) struct Lock {
    /// The path the store was given, which must keep reaching the locked file.
    path: PathBuf,
    /// `{file}.holder`, removed (while the lock is still held) on drop.
    holder_file: Option<PathBuf>,
    /// The locked descriptor: the database file itself on Unix.
    file: Option<File>,
    key: Key,
}

impl Lock {
    /// Takes the lock of `database` (created if missing), or says who holds it.
    pub(super) fn acquire(database: &Path) -> Result<Lock, OpenError> {
        let mut held = held();
        let io = |source| OpenError::Io {
            path: database.to_owned(),
            source,
        };
        let locked = |holder| OpenError::Locked {
            path: database.to_owned(),
            holder,
        };
        // Checked by name before anything is opened, so that a refusal in this process
        // opens (and closes) no descriptor of a file this process holds.
        match std::fs::metadata(database) {
            Ok(meta) => {
                let key = key_of(database, &meta);
                if let Some((_, holder)) = held.iter().find(|(k, _)| *k == key) {
                    return Err(locked(Some(holder.clone())));
                }
                check_links(database, &meta)?;
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        let file = open_target(database).map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        let key = key_of(database, &meta);
        if let Some((_, holder)) = held.iter().find(|(k, _)| *k == key) {
            // The path was pointed at a held file between the look-up and the open.
            // Closing this descriptor would drop the holder's SQLite locks; it is kept
            // open for the rest of the process instead, in a race that needs someone to
            // swap files under the program.
            std::mem::forget(file);
            return Err(locked(Some(holder.clone())));
        }
        check_links(database, &meta)?;
        // Called through the trait: `File::try_lock` is a different, newer std method.
        if !FileExt::try_lock_exclusive(&file).map_err(io)? {
            return Err(locked(read_holder(database)));
        }
        let holder = Holder {
            pid: std::process::id(),
            host: host(),
            since: Timestamp::wall_now(),
        };
        let holder_file = write_holder(database, &holder);
        held.push((key.clone(), holder));
        Ok(Lock {
            path: database.to_owned(),
            holder_file,
            file: Some(file),
            key,
        })
    }

    /// Whether the store's path still reaches the file it locked: `Err` says why not
    /// (deleted, replaced, renamed away). Two `stat`s' worth of work, made after each
    /// commit so that a write is acknowledged only if it is in the file at the path.
    ///
    /// A deleted file whose inode is still open has no path to it (`nlink == 0`), so
    /// comparing the inode the path reaches with the locked one covers deletion too, as
    /// well as a file moved or replaced by another (a restored backup, `mv`).
    pub(super) fn still_reaches(&self) -> Result<(), String> {
        let path = &self.path;
        match std::fs::metadata(path) {
            Ok(meta) if key_of(path, &meta) == self.key => Ok(()),
            Ok(_) => Err(format!(
                "{} is now another file: the database was deleted or replaced while the \
                 store had it open",
                path.display()
            )),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(format!(
                "{} no longer exists: the database was deleted or moved while the store \
                 had it open",
                path.display()
            )),
            Err(e) => Err(format!(
                "cannot check that {} is still there: {e}",
                path.display()
            )),
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // While the lock is still held: a later holder's file is never the one removed.
        if let Some(holder_file) = &self.holder_file {
            let _ = std::fs::remove_file(holder_file);
        }
        // Unlocks. Only then may this process open the file again.
        drop(self.file.take());
        held().retain(|(k, _)| *k != self.key);
    }
}

/// The descriptor the lock is taken on: the database itself on Unix (created empty if
/// missing, which SQLite takes as a new database).
#[cfg(unix)]
fn open_target(database: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(database)
}

/// On Windows `{file}.lock`: see the module docs.
#[cfg(not(unix))]
fn open_target(database: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(database)?;
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(beside(database, "lock"))
}

#[cfg(unix)]
fn key_of(_path: &Path, meta: &std::fs::Metadata) -> Key {
    use std::os::unix::fs::MetadataExt;
    Key {
        dev: meta.dev(),
        ino: meta.ino(),
    }
}

#[cfg(not(unix))]
fn key_of(path: &Path, _meta: &std::fs::Metadata) -> Key {
    Key(std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned()))
}

#[cfg(unix)]
fn check_links(database: &Path, meta: &std::fs::Metadata) -> Result<(), OpenError> {
    use std::os::unix::fs::MetadataExt;
    match meta.nlink() {
        0 | 1 => Ok(()),
        links => Err(OpenError::HardLinked {
            path: database.to_owned(),
            links,
        }),
    }
}

#[cfg(not(unix))]
fn check_links(_database: &Path, _meta: &std::fs::Metadata) -> Result<(), OpenError> {
    Ok(())
}

/// `{real path of the database}.{extension}`: the same for every path to the file.
fn beside(database: &Path, extension: &str) -> PathBuf {
    let mut name = std::fs::canonicalize(database)
        .unwrap_or_else(|_| database.to_owned())
        .into_os_string();
    name.push(".");
    name.push(extension);
    PathBuf::from(name)
}

/// Writes who holds the lock, atomically (a refused opener reads either the whole of it
/// or nothing). Best effort: it only words a refusal.
fn write_holder(database: &Path, holder: &Holder) -> Option<PathBuf> {
    let path = beside(database, "holder");
    let mut temporary = path.clone().into_os_string();
    temporary.push(format!(".{}", std::process::id()));
    let written = serde_json::to_vec(holder)
        .map_err(std::io::Error::other)
        .and_then(|json| std::fs::write(&temporary, json))
        .and_then(|()| std::fs::rename(&temporary, &path));
    match written {
        Ok(()) => Some(path),
        Err(e) => {
            let _ = std::fs::remove_file(&temporary);
            tracing::debug!(path = %path.display(), error = %e, "cannot record the lock's holder");
            None
        }
    }
}

fn read_holder(database: &Path) -> Option<Holder> {
    let json = std::fs::read(beside(database, "holder")).ok()?;
    serde_json::from_slice(&json).ok()
}

/// This machine's name, for a refusal read on another host (a shared file system).
#[cfg(unix)]
fn host() -> Option<String> {
    let name = rustix::system::uname();
    let name = name.nodename().to_string_lossy();
    (!name.is_empty()).then(|| name.into_owned())
}

#[cfg(not(unix))]
fn host() -> Option<String> {
    std::env::var("COMPUTERNAME").ok()
}
