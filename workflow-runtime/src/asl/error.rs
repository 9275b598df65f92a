//! Why the step handler refuses a request.

use crate::deps::Fault;

/// Why the step handler refused a request. Answered to Step Functions as a Lambda error
/// whose type is [`name`](Self::name).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StepError {
    /// The request is not the JSON the Task states send.
    #[error("invalid step request: {0}")]
    InvalidRequest(String),
    /// No workflow of that name is registered with the handler.
    #[error("no workflow named `{0}` is registered with the step handler")]
    UnknownWorkflow(String),
    /// The execution's input does not deserialize into the workflow's input type.
    #[error("invalid input for workflow `{workflow}`: {message}")]
    InvalidInput {
        /// The workflow.
        workflow: &'static str,
        /// Why.
        message: String,
    },
    /// The document's state does not decode, or is not where `at` says.
    #[error("invalid state for workflow `{workflow}`: {message}")]
    InvalidState {
        /// The workflow.
        workflow: &'static str,
        /// Why.
        message: String,
    },
    /// The state was written by another version of the workflow.
    #[error("the state of `{workflow}` has fingerprint {found}, this handler's definition has {expected}; deploy the matching handler (if an earlier version of the `workflow` crate wrote it, build with that crate's `legacy-fingerprints` feature)")]
    IncompatibleState {
        /// The workflow.
        workflow: &'static str,
        /// The fingerprint in the document.
        found: String,
        /// This handler's.
        expected: u64,
    },
    /// The request, or the answer the step would give, is over the handler's payload
    /// limit ([`StepHandlerBuilder::payload_limit`], 256 KiB by default: Step Functions'
    /// own limit, and the native runtime's). A request is refused before it is parsed.
    ///
    /// [`StepHandlerBuilder::payload_limit`]: super::StepHandlerBuilder::payload_limit
    #[error("the step {what} is {size} bytes, over the {limit}-byte limit")]
    PayloadTooLarge {
        /// The request or the answer.
        what: StepPayload,
        /// Its size in bytes (for a JSON line that was skipped, what was read of it).
        size: usize,
        /// The limit it is over, in bytes.
        limit: usize,
    },
    /// The runtime could not go on (a panic of the workflow's code, a missing
    /// dependency, an input that does not serialize), as `ExecutionFaulted` natively.
    /// Named as the fault: `Workflow.Panic` or `Workflow.Fault`.
    #[error("{0}")]
    Fault(Fault),
    /// The call of a task or poll failed with an error its retry policy retries: the
    /// Task state's `Retry` (with the same error names) runs the step again, and once
    /// it gives up, its `Catch` hands the error to the code. Not a problem of the
    /// request: the handler's way to say "retry me".
    #[error("{cause}")]
    Task {
        /// The error's name ([`WorkflowError::error_name`]).
        ///
        /// [`WorkflowError::error_name`]: crate::WorkflowError::error_name
        name: String,
        /// The error as JSON text (what a `Catch` gets as `Cause`).
        cause: String,
    },
}

impl StepError {
    /// The names of the handler's own errors, which are never a workflow's.
    pub(crate) const OWN: [&'static str; 8] = [
        "Workflow.InvalidRequest",
        "Workflow.UnknownWorkflow",
        "Workflow.InvalidInput",
        "Workflow.InvalidState",
        "Workflow.IncompatibleState",
        "Workflow.PayloadTooLarge",
        Fault::NAME,
        Fault::PANIC,
    ];

    /// The ASL error name (`Workflow.InvalidState`, …; a call's own error name for
    /// [`StepError::Task`]).
    pub fn name(&self) -> &str {
        match self {
            StepError::InvalidRequest(_) => Self::OWN[0],
            StepError::UnknownWorkflow(_) => Self::OWN[1],
            StepError::InvalidInput { .. } => Self::OWN[2],
            StepError::InvalidState { .. } => Self::OWN[3],
            StepError::IncompatibleState { .. } => Self::OWN[4],
            StepError::PayloadTooLarge { .. } => Self::OWN[5],
            StepError::Fault(fault) => fault.name(),
            StepError::Task { name, .. } => name,
        }
    }

    /// Whether an ASL error of this name says the execution could not go on (the
    /// handler refused a request, or Step Functions' own `States.…` errors) rather than
    /// that the workflow failed with one of its errors.
    pub(crate) fn is_fault(name: &str) -> bool {
        Self::is_own(name) || name.starts_with(crate::retry::RESERVED_PREFIX)
    }

    /// Whether an ASL error of this name is one the handler raises itself.
    pub(crate) fn is_own(name: &str) -> bool {
        Self::OWN.contains(&name)
    }
}

/// Which payload of the step handler is over its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StepPayload {
    /// A request (a Lambda event, a JSON line).
    Request,
    /// The answer a step would give (the next execution document).
    Answer,
}

impl std::fmt::Display for StepPayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StepPayload::Request => "request",
            StepPayload::Answer => "answer",
        })
    }
}
