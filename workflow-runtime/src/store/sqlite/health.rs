//! Whether the store can still be used.
//!
//! Once the file is found broken (a corrupted page, an I/O error, the file deleted or
//! replaced: see `errors.rs`), retrying cannot help and going on could acknowledge writes
//! that are in no file. The store stops: the first to find out (the writer, or a read)
//! records the error here and logs it, once; from then on every write and every read
//! answers that same error without touching the file, and the connections close without
//! copying the log back into it.

use std::path::PathBuf;
use std::sync::OnceLock;

use super::errors::Cause;
use crate::error::StoreError;

#[derive(Debug)]
pub(super) struct Health {
    path: PathBuf,
    broken: OnceLock<StoreError>,
}

impl Health {
    pub(super) fn new(path: PathBuf) -> Health {
        Health {
            path,
            broken: OnceLock::new(),
        }
    }

    /// `Err` with the store's error once it is broken.
    pub(super) fn check(&self) -> Result<(), StoreError> {
        match self.broken.get() {
            Some(error) => Err(error.clone()),
            None => Ok(()),
        }
    }

    pub(super) fn is_broken(&self) -> bool {
        self.broken.get().is_some()
    }

    /// Stops the store for `reason`, or returns the error it stopped with already.
    pub(super) fn broke(&self, reason: String) -> StoreError {
        let mut first = false;
        let error = self.broken.get_or_init(|| {
            first = true;
            StoreError::Broken {
                path: self.path.clone(),
                reason,
            }
        });
        if first {
            tracing::error!(
                path = %self.path.display(), %error,
                "the store has stopped: every write and read fails from now on"
            );
        }
        error.clone()
    }

    /// What a caller is told of `cause`.
    pub(super) fn error(&self, cause: Cause) -> StoreError {
        match cause {
            Cause::Transient(message) => StoreError::Unavailable(message),
            Cause::Broken(reason) => self.broke(reason),
            Cause::Store(error) => error,
        }
    }
}
