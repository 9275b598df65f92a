//! The execution history: what happened, when, in which state.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::deps::Fault;
use crate::execution::ExecutionId;
use crate::json::Json;
use crate::time::Timestamp;

/// One entry in an execution's history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// When it happened (runtime clock).
    pub at: Timestamp,
    /// The state-graph node it belongs to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<Cow<'static, str>>,
    /// What happened.
    pub kind: EventKind,
}

/// What happened. The names follow Step Functions' history event types.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
#[non_exhaustive]
pub enum EventKind {
    /// The execution was created with this input.
    ExecutionStarted {
        /// The input, as JSON.
        input: Json,
        /// The parent execution, for a child.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parent: Option<ExecutionId>,
    },
    /// A task (an awaited call) started.
    TaskScheduled,
    /// A task returned; the output is recorded when the workflow keeps it.
    TaskSucceeded {
        /// The value the workflow bound, as JSON.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        output: Option<Json>,
    },
    /// A task's error ended the workflow (through `?`).
    TaskFailed {
        /// The workflow error it became, as JSON.
        error: Json,
        /// Its name ([`WorkflowError`](crate::WorkflowError)).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// A call failed with an error its retry policy retries; the step runs again after
    /// `delay`.
    RetryScheduled {
        /// The retry's number, from 1.
        attempt: u32,
        /// The error's name.
        error: String,
        /// The delay chosen (jitter applied).
        delay: std::time::Duration,
    },
    /// A durable timer was armed.
    WaitStarted {
        /// When it is due.
        until: Timestamp,
    },
    /// A durable timer fired.
    WaitEnded,
    /// One call of a `poll_until!` loop.
    PollAttempt {
        /// 1-based attempt number.
        attempt: u32,
        /// What the attempt found.
        outcome: PollOutcome,
    },
    /// A child execution was started.
    ChildStarted {
        /// The child's id.
        child: ExecutionId,
        /// The child's workflow name.
        workflow: String,
    },
    /// A child execution succeeded.
    ChildSucceeded {
        /// The child's id.
        child: ExecutionId,
    },
    /// A child execution failed (with its own error, or a fault).
    ChildFailed {
        /// The child's id.
        child: ExecutionId,
        /// The child's error, as JSON.
        error: Json,
    },
    /// A child ran past its workflow's timeout.
    ChildTimedOut {
        /// The child's execution id.
        child: ExecutionId,
    },
    /// A child execution was cancelled.
    ChildCancelled {
        /// The child's id.
        child: ExecutionId,
    },
    /// A callback was started (`wait_for_callback!`): its token is made, and the
    /// execution waits until it is completed, failed, or times out.
    CallbackStarted {
        /// The callback's public id (the token's secret is not recorded).
        callback: String,
        /// How long the token may take to be completed.
        timeout: std::time::Duration,
        /// The longest time allowed between two heartbeats, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        heartbeat: Option<std::time::Duration>,
    },
    /// A heartbeat of the callback came ([`Runtime::heartbeat`](crate::Runtime::heartbeat)).
    CallbackHeartbeat {
        /// The callback's id.
        callback: String,
    },
    /// The callback was completed with a value
    /// ([`Runtime::complete`](crate::Runtime::complete)).
    CallbackCompleted {
        /// The callback's id.
        callback: String,
        /// The value, as JSON.
        output: Json,
    },
    /// The callback was failed ([`Runtime::fail`](crate::Runtime::fail)), or its token
    /// could not be sent (`Workflow.CallbackNotSent`).
    CallbackFailed {
        /// The callback's id.
        callback: String,
        /// The error's name.
        error: String,
        /// What happened.
        cause: String,
    },
    /// Nobody completed the callback in time: its timeout elapsed, or (`heartbeat`) a
    /// heartbeat interval passed without one.
    CallbackTimedOut {
        /// The callback's id.
        callback: String,
        /// Whether a missed heartbeat, rather than the timeout, ended it.
        #[serde(default)]
        heartbeat: bool,
    },
    /// The execution succeeded.
    ExecutionSucceeded {
        /// The output, as JSON.
        output: Json,
    },
    /// The execution failed with the workflow's error.
    ExecutionFailed {
        /// The error, as JSON.
        error: Json,
        /// Its name ([`WorkflowError`](crate::WorkflowError)).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// The execution was cancelled.
    ExecutionCancelled,
    /// The execution, which had ended without succeeding, runs again from its last
    /// checkpoint ([`Runtime::redrive`](crate::Runtime::redrive)); a child redriven with
    /// its parent records it too.
    ExecutionRedriven {
        /// How many times it has been redriven, this one included (from 1).
        count: u32,
    },
    /// The execution ran past its workflow's timeout.
    ExecutionTimedOut,
    /// The runtime could not go on with the execution (see the message).
    ExecutionFaulted {
        /// What went wrong.
        message: String,
        /// The fault's [name](crate::Fault::name): `Workflow.Panic` for a panic.
        #[serde(default = "fault_name")]
        name: String,
    },
}

/// The name of a fault recorded before faults had names.
fn fault_name() -> String {
    Fault::NAME.to_owned()
}

impl EventKind {
    /// The event that records `fault`.
    pub(crate) fn faulted(fault: &Fault) -> Self {
        EventKind::ExecutionFaulted {
            message: fault.message().to_owned(),
            name: fault.name().to_owned(),
        }
    }
}

/// The result of one poll attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result")]
pub enum PollOutcome {
    /// The predicate held.
    Ready,
    /// The call answered, the predicate did not hold.
    NotReady,
    /// The call returned an error.
    Error {
        /// The error's message.
        message: String,
    },
}

impl EventKind {
    /// The Step Functions-style name of the event type.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::ExecutionStarted { .. } => "ExecutionStarted",
            EventKind::TaskScheduled => "TaskScheduled",
            EventKind::TaskSucceeded { .. } => "TaskSucceeded",
            EventKind::TaskFailed { .. } => "TaskFailed",
            EventKind::RetryScheduled { .. } => "RetryScheduled",
            EventKind::WaitStarted { .. } => "WaitStarted",
            EventKind::WaitEnded => "WaitEnded",
            EventKind::PollAttempt { .. } => "PollAttempt",
            EventKind::ChildStarted { .. } => "ChildStarted",
            EventKind::ChildSucceeded { .. } => "ChildSucceeded",
            EventKind::ChildFailed { .. } => "ChildFailed",
            EventKind::ChildCancelled { .. } => "ChildCancelled",
            EventKind::ChildTimedOut { .. } => "ChildTimedOut",
            EventKind::CallbackStarted { .. } => "CallbackStarted",
            EventKind::CallbackHeartbeat { .. } => "CallbackHeartbeat",
            EventKind::CallbackCompleted { .. } => "CallbackCompleted",
            EventKind::CallbackFailed { .. } => "CallbackFailed",
            EventKind::CallbackTimedOut { .. } => "CallbackTimedOut",
            EventKind::ExecutionSucceeded { .. } => "ExecutionSucceeded",
            EventKind::ExecutionFailed { .. } => "ExecutionFailed",
            EventKind::ExecutionCancelled => "ExecutionCancelled",
            EventKind::ExecutionRedriven { .. } => "ExecutionRedriven",
            EventKind::ExecutionTimedOut => "ExecutionTimedOut",
            EventKind::ExecutionFaulted { .. } => "ExecutionFaulted",
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.name())?;
        if let Some(state) = &self.state {
            write!(f, " [{state}]")?;
        }
        Ok(())
    }
}
