//! The runtime's errors.

use crate::deps::Fault;
use crate::execution::{ExecutionId, Status};
use crate::time::Timestamp;
use std::path::PathBuf;

/// `Builder::build` refused the configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A workflow has a `&T` parameter and no `T` was given to `Builder::dependency`.
    #[error("workflow `{workflow}` needs a dependency of type `{type_name}`; provide it with `Builder::dependency`")]
    MissingDependency {
        /// The workflow's name.
        workflow: &'static str,
        /// The dependency's type.
        type_name: &'static str,
    },
    /// Two different workflows were registered under one name.
    #[error("two different workflows are named `{name}`; give one another name with #[workflow(name = \"…\")]")]
    DuplicateName {
        /// The name.
        name: &'static str,
    },
    /// A retry policy or timeout has values that cannot work (a backoff rate below 1, a
    /// zero interval, a reserved error name, …).
    #[error("the policy of `{node}` in workflow `{workflow}` is invalid: {message}")]
    InvalidPolicy {
        /// The workflow's name.
        workflow: &'static str,
        /// The node (yield point) the policy is on.
        node: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The step handler's signing key is missing (an unset environment variable) or
    /// too short; see
    /// [`StepHandlerBuilder::signing_key`](crate::asl::StepHandlerBuilder::signing_key).
    #[error("the step handler's signing key cannot be used: {message}")]
    SigningKey {
        /// What is wrong with it.
        message: String,
    },
    /// The SQLite file given to `Builder::sqlite` could not be opened.
    #[error(transparent)]
    Open(#[from] OpenError),
}

/// An execution could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The id given to `start_with_id` is empty or contains `/` (which child ids use).
    #[error("`{id}` cannot be an execution id: it must be non-empty and without `/`")]
    InvalidId {
        /// The id asked for.
        id: ExecutionId,
    },
    /// No workflow of that name (or type) is registered.
    #[error("no workflow named `{name}` is registered")]
    NotRegistered {
        /// The name asked for.
        name: String,
    },
    /// The input does not deserialize into the workflow's input type.
    #[error("invalid input for workflow `{workflow}`: {source}")]
    InvalidInput {
        /// The workflow's name.
        workflow: &'static str,
        /// Why it does not deserialize.
        #[source]
        source: serde_json::Error,
    },
    /// The input (or the first state) is over the runtime's payload limit; nothing was
    /// stored.
    #[error(transparent)]
    TooLarge(#[from] PayloadTooLarge),
    /// The store refused the new execution.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// [`Runtime::execution`](crate::Runtime::execution) has no handle of this workflow for
/// this id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LookupError {
    /// There is no execution with this id in the store.
    #[error("no execution with id `{0}`")]
    NotFound(ExecutionId),
    /// The execution is one of another workflow.
    #[error("execution `{id}` is an execution of workflow `{found}`, not of `{expected}`")]
    WrongWorkflow {
        /// The execution.
        id: ExecutionId,
        /// The workflow asked for.
        expected: &'static str,
        /// The workflow it is an execution of.
        found: String,
    },
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An execution did not produce its output.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum RunError<E> {
    /// The workflow returned its error.
    #[error("execution failed: {0}")]
    Failed(E),
    /// The execution was cancelled.
    #[error("execution was cancelled")]
    Cancelled,
    /// The execution ran past its workflow's timeout (`#[workflow(timeout = …)]`).
    #[error("execution timed out")]
    TimedOut,
    /// The runtime could not go on with the execution.
    #[error("execution faulted: {0}")]
    Faulted(Fault),
}

/// A store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// There is no execution with this id.
    #[error("no execution with id `{0}`")]
    NotFound(ExecutionId),
    /// An execution with this id exists already.
    #[error("an execution with id `{0}` exists already")]
    AlreadyExists(ExecutionId),
    /// The execution has not ended, and is not running in this runtime (parked, of a
    /// workflow this runtime does not register, or not recovered yet).
    #[error(
        "execution `{id}` has not ended (status {status:?}) and is not running in this runtime"
    )]
    NotEnded {
        /// The execution.
        id: ExecutionId,
        /// Its stored status.
        status: Status,
    },
    /// The execution has ended; its record takes no more checkpoints.
    #[error("execution `{0}` has ended and takes no more checkpoints")]
    Ended(ExecutionId),
    /// The execution changed since it was read: [`Store::reopen`](crate::Store::reopen)
    /// found another status or redrive count than the one it expected (another redrive,
    /// or an end, came first). Nothing was written.
    #[error(
        "execution `{0}` changed since it was read (another redrive, or a new end, came \
         first); nothing was written"
    )]
    Changed(ExecutionId),
    /// The execution does not wait on this callback (or not with this secret): nothing
    /// was written. See [`Store::callback`](crate::Store::callback).
    #[error("execution `{id}` does not wait on callback `{callback}`")]
    NoCallback {
        /// The execution.
        id: ExecutionId,
        /// The callback's id.
        callback: String,
    },
    /// The callback was resolved already: its first resolution stands, and nothing was
    /// written.
    #[error("callback `{callback}` of execution `{id}` was resolved already")]
    CallbackResolved {
        /// The execution.
        id: ExecutionId,
        /// The callback's id.
        callback: String,
    },
    /// The store cannot write right now (disk full, I/O error, database locked by
    /// another process for too long). Nothing was written; the same write may succeed
    /// later, and the runtime retries checkpoints that fail this way.
    #[error("store temporarily unavailable: {0}")]
    Unavailable(String),
    /// A stored row does not decode.
    #[error("execution `{id}` has a corrupted row: {message}")]
    Corrupt {
        /// The execution whose row it is.
        id: ExecutionId,
        /// What does not decode.
        message: String,
    },
    /// The backend failed.
    #[error("store backend error: {0}")]
    Backend(String),
    /// The store was opened read-only ([`SqliteStore::open_read_only`](crate::SqliteStore::open_read_only)):
    /// it reads, and refuses every write. Nothing was written.
    #[error("the store {} is open read-only; writes go through the runtime that owns the file", path.display())]
    ReadOnly {
        /// The database file.
        path: PathBuf,
    },
    /// The store's file cannot be used any more: a page is corrupted, the disk answers
    /// with I/O errors, the file became read-only, or it was deleted or replaced while
    /// the store had it open. No retry can help, so the store stops: this write, every
    /// later one and every read answer this same error. Nothing was acknowledged that is
    /// not in the file. Restore the file (or move it aside) and restart the program.
    #[error("the store {} is broken and has stopped: {reason}", path.display())]
    Broken {
        /// The database file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The store was released by its runtime, which has stopped (its last handle was
    /// dropped; see [`Store::release`](crate::Store::release)): it reads and writes no
    /// more. An [`Execution`](crate::Execution) handle that outlived its runtime gets it.
    #[error("the store was released by its runtime, which has stopped")]
    Stopped,
}

impl StoreError {
    /// Whether the same operation may succeed if retried later (nothing was written).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// A stored execution whose row does not decode, as a listing reports it: the other
/// executions are listed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("execution `{id}` has a corrupted row: {message}")]
pub struct CorruptRow {
    /// The execution whose row it is (its id as stored, if even that does not decode).
    pub id: ExecutionId,
    /// What does not decode.
    pub message: String,
}

impl From<CorruptRow> for StoreError {
    fn from(row: CorruptRow) -> Self {
        StoreError::Corrupt {
            id: row.id,
            message: row.message,
        }
    }
}

/// Which payload of an execution is over the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    /// The execution's input.
    Input,
    /// A checkpointed state.
    State,
}

impl std::fmt::Display for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Payload::Input => "input",
            Payload::State => "state",
        })
    }
}

/// A serialized input or state is bigger than the runtime's payload limit
/// ([`Builder::payload_limit`](crate::Builder::payload_limit), 256 KiB by default, the
/// Step Functions limit, so that the workflow stays deployable as ASL).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the {what} of execution `{execution}` is {size} bytes, over the {limit}-byte payload limit"
)]
pub struct PayloadTooLarge {
    /// The execution.
    pub execution: ExecutionId,
    /// Which payload.
    pub what: Payload,
    /// Its serialized size in bytes.
    pub size: usize,
    /// The limit in bytes.
    pub limit: usize,
}

/// The payload limit of a new runtime (and step handler): 256 KiB, the Step Functions
/// limit for an input or a state, so that a workflow that runs here stays deployable as
/// ASL.
pub const DEFAULT_PAYLOAD_LIMIT: usize = 256 * 1024;

/// A [`SqliteStore`](crate::SqliteStore) could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Another runtime (in this or another process) has the file open, under this path
    /// or any other that reaches the same file. Two runtimes driving the same
    /// executions would run every task twice, so the second is refused.
    #[error("{path} is in use by another workflow runtime{}; {}", holder.as_ref().map(|h| format!(" ({h})")).unwrap_or_default(), stop_it(holder.as_ref()))]
    Locked {
        /// The database file.
        path: PathBuf,
        /// Who holds it, as the holder wrote it down when it opened the file, if known.
        holder: Option<Holder>,
    },
    /// The file has more than one name (hard links). SQLite names its write-ahead log
    /// after the path it was given, so two names of one file have two logs, and commits
    /// made through one name are lost to the other. Remove the other names (`ls -i`,
    /// `find -samefile`) and open it by the one left.
    #[error("{path} has {links} hard links; a store needs a file with one name, since SQLite's write-ahead log is named after the path and two names could lose commits")]
    HardLinked {
        /// The database file.
        path: PathBuf,
        /// How many names it has.
        links: u64,
    },
    /// The file was written by a newer version of this crate, with a schema this version
    /// does not know. Nothing was changed; upgrade the program.
    #[error("{path} has store schema version {found}, newer than the {supported} this version supports; upgrade the program (the file was not changed)")]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// The schema version found in the file.
        found: i64,
        /// The newest schema version this version supports.
        supported: i64,
    },
    /// The file was written by an older version of this crate: opening it with a runtime
    /// ([`SqliteStore::open`](crate::SqliteStore::open)) upgrades it, which a read-only
    /// store cannot do. Nothing was changed.
    #[error("{path} has store schema version {found}, older than the {supported} this version reads; open it once with a runtime to upgrade it (the file was not changed)")]
    SchemaTooOld {
        /// The database file.
        path: PathBuf,
        /// The schema version found in the file (0: not a store yet).
        found: i64,
        /// The schema version this version reads.
        supported: i64,
    },
    /// The file is an SQLite database of another application.
    #[error("{path} is an SQLite database, but not a workflow store (application id {application_id:#x}); refusing to touch it")]
    ForeignDatabase {
        /// The database file.
        path: PathBuf,
        /// The `PRAGMA application_id` found.
        application_id: i64,
    },
    /// The file system does not support SQLite's write-ahead log (some network file
    /// systems), which the store needs for its durability guarantees.
    #[error("{path} cannot use SQLite's write-ahead log (journal mode stayed `{mode}`); put the file on a local file system")]
    WalUnavailable {
        /// The database file.
        path: PathBuf,
        /// The journal mode SQLite kept.
        mode: String,
    },
    /// SQLite refused the file (not a database, permissions, I/O).
    #[error("cannot open {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The database file (or its directory) could not be created, opened or locked.
    #[error("cannot open {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Who holds a [`SqliteStore`](crate::SqliteStore)'s file, as [`OpenError::Locked`]
/// reports it: what the holder wrote down when it opened the file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Holder {
    /// Its process id.
    pub pid: u32,
    /// The host it runs on, if known.
    pub host: Option<String>,
    /// When it opened the file.
    pub since: Timestamp,
}

/// What to do about a held file: in this process, the holder is a runtime (or a store)
/// still alive here, which the program itself has to let go of.
fn stop_it(holder: Option<&Holder>) -> &'static str {
    match holder {
        Some(h) if h.pid == std::process::id() => {
            "it is this process's: drop that runtime (and any clone of its `SqliteStore`) or call its `shutdown().await` first"
        }
        _ => "stop it first",
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {}", self.pid)?;
        if let Some(host) = &self.host {
            write!(f, " on {host}")?;
        }
        let now = std::time::SystemTime::now();
        match now.duration_since(self.since.to_system_time()) {
            Ok(age) => write!(f, ", open for {}s", age.as_secs()),
            // The holder's clock is ahead of ours (another host).
            Err(_) => Ok(()),
        }
    }
}
