//! Who an execution is and how it ends: its id, its status, its outcome.
//!
//! A leaf: it imports nothing else of the crate but [`Json`](crate::json::Json) and
//! [`Fault`](crate::deps::Fault), so every
//! other module can name an execution without importing the ones that run it.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::deps::Fault;
use crate::json::Json;

/// The identifier of one execution.
///
/// Top-level executions get a random id; a child's id is its parent's id followed by
/// `/{batch}.{index}` (the parent's n-th `call_nested!`, the child's place in it), so it is
/// the same every time the parent reaches that point.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ExecutionId(Arc<str>);

impl ExecutionId {
    pub(crate) fn new_random() -> Self {
        ExecutionId(uuid::Uuid::new_v4().to_string().into())
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for ExecutionId {
    fn from(s: String) -> Self {
        ExecutionId(s.into())
    }
}

impl From<&str> for ExecutionId {
    fn from(s: &str) -> Self {
        ExecutionId(s.into())
    }
}

impl fmt::Display for ExecutionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How an execution ended, with its output or error as JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", content = "value")]
pub enum Outcome {
    /// It returned this output.
    Succeeded(Json),
    /// It failed with this error.
    Failed(Json),
    /// It was cancelled.
    Cancelled,
    /// It ran past its workflow's timeout (`#[workflow(timeout = …)]`).
    TimedOut,
    /// The runtime could not go on with it (a panic of its code is one such fault).
    Faulted(Fault),
}

impl Outcome {
    pub(crate) fn is_success(&self) -> bool {
        matches!(self, Outcome::Succeeded(_))
    }
}

/// Where an execution is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Status {
    /// Not finished: running a step, waiting on a timer or on children.
    Running,
    /// Returned its output.
    Succeeded,
    /// Returned its error.
    Failed,
    /// Was cancelled.
    Cancelled,
    /// Ran past its workflow's timeout.
    TimedOut,
    /// The runtime could not go on with it.
    Faulted,
    /// Parked by [`Runtime::recover`](crate::Runtime::recover): its state was written by a
    /// definition of the workflow with another fingerprint than the registered one. Its
    /// data is untouched; a later `recover` with a matching definition resumes it.
    VersionMismatch,
}

impl Status {
    /// Whether the execution has ended. A parked ([`Status::VersionMismatch`]) execution
    /// has not: it can still be resumed.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Status::Succeeded
                | Status::Failed
                | Status::Cancelled
                | Status::TimedOut
                | Status::Faulted
        )
    }

    pub(crate) fn of(outcome: &Outcome) -> Status {
        match outcome {
            Outcome::Succeeded(_) => Status::Succeeded,
            Outcome::Failed(_) => Status::Failed,
            Outcome::Cancelled => Status::Cancelled,
            Outcome::TimedOut => Status::TimedOut,
            Outcome::Faulted(_) => Status::Faulted,
        }
    }

    /// The name stored in the SQLite file, which is also the variant's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "Running",
            Status::Succeeded => "Succeeded",
            Status::Failed => "Failed",
            Status::Cancelled => "Cancelled",
            Status::TimedOut => "TimedOut",
            Status::Faulted => "Faulted",
            Status::VersionMismatch => "VersionMismatch",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "Running" => Status::Running,
            "Succeeded" => Status::Succeeded,
            "Failed" => Status::Failed,
            "Cancelled" => Status::Cancelled,
            "TimedOut" => Status::TimedOut,
            "Faulted" => Status::Faulted,
            "VersionMismatch" => Status::VersionMismatch,
            _ => return None,
        })
    }
}
