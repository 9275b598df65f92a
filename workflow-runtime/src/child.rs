//! Child executions: the batch a `call_nested!` asks for and the results it gets back.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use std::borrow::Cow;

use crate::deps::Fault;
use crate::execution::{ExecutionId, Outcome};
use crate::json::Json;
use crate::retry::{TaskTimeout, WorkflowError};

/// Why a child execution did not give its parent a value.
///
/// Returned by `call_nested!`; `?` converts it into the parent's error through `From`.
#[derive(Clone, Debug, PartialEq, thiserror::Error, Serialize, Deserialize)]
pub enum NestedError<E> {
    /// The child failed with its own error.
    #[error("child execution {child} failed: {error}")]
    Failed {
        /// The child's execution id.
        child: ExecutionId,
        /// The child's error.
        error: E,
    },
    /// The child was cancelled before it finished.
    #[error("child execution {child} was cancelled")]
    Cancelled {
        /// The child's execution id.
        child: ExecutionId,
    },
    /// The `call_nested!`'s `#[timeout]` passed before the child finished; it was
    /// cancelled.
    #[error("child execution {child} timed out")]
    TimedOut {
        /// The child's execution id.
        child: ExecutionId,
    },
    /// The runtime could not run the child or read its result.
    #[error("child execution {child} faulted: {message}")]
    Faulted {
        /// The child's execution id.
        child: ExecutionId,
        /// What went wrong.
        message: String,
    },
}

/// `Failed` has the child's error's name; the others are the runtime's own.
impl<E: WorkflowError> WorkflowError for NestedError<E> {
    fn error_name(&self) -> Cow<'static, str> {
        match self {
            NestedError::Failed { error, .. } => error.error_name(),
            NestedError::Cancelled { .. } => Cow::Borrowed("Workflow.ChildCancelled"),
            NestedError::TimedOut { .. } => Cow::Borrowed(TaskTimeout::NAME),
            NestedError::Faulted { .. } => Cow::Borrowed("Workflow.ChildFaulted"),
        }
    }

    fn is_retryable(&self) -> bool {
        match self {
            NestedError::Failed { error, .. } => error.is_retryable(),
            NestedError::Cancelled { .. } => false,
            NestedError::TimedOut { .. } | NestedError::Faulted { .. } => true,
        }
    }
}

impl<E> NestedError<E> {
    /// The child execution this error is about.
    pub fn child(&self) -> &ExecutionId {
        match self {
            NestedError::Failed { child, .. }
            | NestedError::Cancelled { child }
            | NestedError::TimedOut { child }
            | NestedError::Faulted { child, .. } => child,
        }
    }

    /// Converts the child's error type (used to give parallel children one error type).
    pub fn convert<F: From<E>>(self) -> NestedError<F> {
        match self {
            NestedError::Failed { child, error } => NestedError::Failed {
                child,
                error: error.into(),
            },
            NestedError::Cancelled { child } => NestedError::Cancelled { child },
            NestedError::TimedOut { child } => NestedError::TimedOut { child },
            NestedError::Faulted { child, message } => NestedError::Faulted { child, message },
        }
    }
}

/// The children one `call_nested!` starts.
#[doc(hidden)]
#[derive(Debug)]
pub struct ChildBatch {
    pub(crate) node: usize,
    pub(crate) max_concurrency: Option<usize>,
    pub(crate) calls: Vec<ChildCall>,
    pub(crate) fault: Option<Fault>,
}

#[derive(Debug)]
pub(crate) struct ChildCall {
    pub(crate) workflow: &'static str,
    pub(crate) input: Json,
}

impl ChildBatch {
    /// An empty batch for graph node `node`; `max_concurrency` of `None` is unbounded.
    pub fn new(node: usize, max_concurrency: Option<usize>) -> Self {
        ChildBatch {
            node,
            max_concurrency,
            calls: Vec::new(),
            fault: None,
        }
    }

    /// Adds one child of workflow `workflow`, with its input as encoded; an input that
    /// does not encode faults the batch. (The typed `push` is beside `Workflow`.)
    pub(crate) fn push_encoded(
        &mut self,
        workflow: &'static str,
        input: Result<Json, serde_json::Error>,
    ) {
        match input {
            Ok(input) => self.calls.push(ChildCall { workflow, input }),
            Err(e) => {
                self.fault.get_or_insert_with(|| {
                    Fault::new(format!(
                        "input of child `{workflow}` does not serialize: {e}"
                    ))
                });
            }
        }
    }
}

/// One finished (or never started) child.
#[derive(Clone, Debug)]
pub(crate) struct ChildResult {
    pub(crate) id: ExecutionId,
    pub(crate) outcome: Outcome,
}

/// The results of a batch, in input order, and which child failed first.
#[doc(hidden)]
#[derive(Debug)]
pub struct ChildrenOutcome {
    pub(crate) results: Vec<ChildResult>,
    pub(crate) failure: Option<usize>,
}

impl ChildrenOutcome {
    /// Index of the child whose failure ended the batch (its siblings were cancelled).
    pub fn failure(&self) -> Option<usize> {
        self.failure
    }

    /// Decodes child `index` as output `O` or error `E`. (The typed `decode` is beside
    /// `Workflow`.)
    pub(crate) fn decode_as<O: DeserializeOwned, E: DeserializeOwned>(
        &mut self,
        index: usize,
    ) -> Result<O, NestedError<E>> {
        let Some(result) = self.results.get_mut(index) else {
            return Err(NestedError::Faulted {
                child: ExecutionId::from(format!("<missing child {index}>")),
                message: format!("the batch has no child at index {index}"),
            });
        };
        let child = result.id.clone();
        let faulted = |message: String| NestedError::Faulted {
            child: child.clone(),
            message,
        };
        match std::mem::replace(&mut result.outcome, Outcome::Cancelled) {
            Outcome::Succeeded(v) => v
                .decode()
                .map_err(|e| faulted(format!("output does not decode: {e}"))),
            Outcome::Failed(v) => match v.decode() {
                Ok(error) => Err(NestedError::Failed {
                    child: child.clone(),
                    error,
                }),
                Err(e) => Err(faulted(format!("error does not decode: {e}"))),
            },
            Outcome::TimedOut => Err(NestedError::TimedOut {
                child: child.clone(),
            }),
            Outcome::Cancelled => Err(NestedError::Cancelled {
                child: child.clone(),
            }),
            Outcome::Faulted(fault) => Err(faulted(fault.to_string())),
        }
    }

    /// Decodes every child, in input order; the first failure wins.
    pub(crate) fn decode_all_as<O: DeserializeOwned, E: DeserializeOwned>(
        &mut self,
    ) -> Result<Vec<O>, NestedError<E>> {
        if let Some(i) = self.failure {
            return match self.decode_as::<O, E>(i) {
                Err(e) => Err(e),
                Ok(_) => Err(NestedError::Faulted {
                    child: self.results[i].id.clone(),
                    message: "the failed child has a successful result".into(),
                }),
            };
        }
        (0..self.results.len()).map(|i| self.decode_as(i)).collect()
    }
}
