//! The runtime's errors.

use crate::ExecutionId;

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
}

/// An execution could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
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
    /// The store refused the new execution.
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
    /// The runtime could not go on with the execution.
    #[error("execution faulted: {0}")]
    Faulted(String),
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
    /// The backend failed.
    #[error("store backend error: {0}")]
    Backend(String),
}
