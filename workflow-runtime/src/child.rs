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
/// Returned by `call_nested!`, with the child's own error type: `?` converts it into the
/// parent's error through `From`, and a `match` sees the child's typed error in
/// [`Failed`](NestedError::Failed).
///
/// # A chain of workflows
///
/// A workflow whose error is `NestedError<E>` can call a child whose error is
/// `NestedError<E>` too, with `?`: the child's failure, a `NestedError<NestedError<E>>`,
/// flattens into the parent's `NestedError<E>` (`From`), naming the execution that
/// failed first, deepest in the chain. Its id is its path from the top-level execution
/// (`top/1.1/2.0`: child 0 of the second batch of children started by child 1 of the
/// first batch `top` started). So every level of a chain names the same
/// `NestedError<E>`, however deep it is:
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use workflow_runtime::{NestedError, WorkflowError};
///
/// #[derive(Debug, PartialEq, Serialize, Deserialize)]
/// enum JobError { Refused }
/// # impl WorkflowError for JobError {
/// #     fn error_name(&self) -> std::borrow::Cow<'static, str> { "Refused".into() }
/// # }
///
/// // What the top of a chain gets from its child: the grandchild's error, wrapped twice.
/// let twice: NestedError<NestedError<JobError>> = NestedError::Failed {
///     child: "top/1.0".into(),
///     error: NestedError::Failed { child: "top/1.0/1.1".into(), error: JobError::Refused },
/// };
/// let flat: NestedError<JobError> = twice.into(); // what `?` does
/// assert_eq!(flat.child().as_str(), "top/1.0/1.1");
/// assert!(matches!(flat, NestedError::Failed { error: JobError::Refused, .. }));
/// assert_eq!(flat.error_name(), "Refused"); // the name is kept: the ASL's `Error` too
/// ```
///
/// A workflow whose error is an enum of its own keeps the direct child's typed error in
/// a variant instead (`#[error(transparent)] Child(#[from] NestedError<JobError>)`).
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

    /// Converts the child's error type with `From`.
    pub fn convert<F: From<E>>(self) -> NestedError<F> {
        self.map(F::from)
    }

    /// Converts the child's error with `f`; the other variants stay as they are.
    pub fn map<F>(self, f: impl FnOnce(E) -> F) -> NestedError<F> {
        match self {
            NestedError::Failed { child, error } => NestedError::Failed {
                child,
                error: f(error),
            },
            NestedError::Cancelled { child } => NestedError::Cancelled { child },
            NestedError::TimedOut { child } => NestedError::TimedOut { child },
            NestedError::Faulted { child, message } => NestedError::Faulted { child, message },
        }
    }
}

impl<E> NestedError<NestedError<E>> {
    /// The failure of a grandchild as its grandparent sees it: when the child failed
    /// because of its own child, that child's error, naming that execution (whose id
    /// is its path: `parent/1.1/2.0`); otherwise the child's own cancellation, timeout
    /// or fault. The [error name](WorkflowError::error_name) stays the same. `?` does it
    /// through `From`.
    pub fn flatten(self) -> NestedError<E> {
        match self {
            NestedError::Failed { error, .. } => error,
            NestedError::Cancelled { child } => NestedError::Cancelled { child },
            NestedError::TimedOut { child } => NestedError::TimedOut { child },
            NestedError::Faulted { child, message } => NestedError::Faulted { child, message },
        }
    }
}

/// A grandchild's failure, flattened ([`NestedError::flatten`]): a chain of workflows
/// can all return `NestedError<E>`.
impl<E> From<NestedError<NestedError<E>>> for NestedError<E> {
    fn from(nested: NestedError<NestedError<E>>) -> Self {
        nested.flatten()
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
