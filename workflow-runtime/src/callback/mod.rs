//! Callbacks: a workflow hands an unguessable token to the outside world and waits,
//! durably and with a timeout, until someone completes or fails it
//! (`wait_for_callback!`; `.waitForTaskToken` in ASL).
//!
//! # How a callback runs natively
//!
//! 1. **Enter.** The step that reaches `wait_for_callback!` evaluates its `timeout` and
//!    `heartbeat` and stops. The driver draws the callback's id (64 random bits) and
//!    secret (128 bits) and checkpoints the state waiting in the callback's node, with
//!    the [`PendingCallback`] as its [`Wait`](crate::Wait) and a `CallbackStarted`
//!    event: the callback exists in the store before anyone can know its token.
//! 2. **Send.** The next step runs the macro's closure with the [`CallbackToken`]
//!    (a task: after a crash before step 3 it runs again, with the same token).
//! 3. **Wait.** The driver marks the callback sent and waits for its resolution, its
//!    heartbeats, its deadline and its heartbeat deadline.
//! 4. **Resolve.** The first of [`Runtime::complete`](crate::Runtime::complete),
//!    [`Runtime::fail`](crate::Runtime::fail), the timeout, a missed heartbeat or a
//!    failed send is written into the stored callback ([`Store::callback`], a compare
//!    and set); every later one is refused. So nothing resumes twice, and a resolution
//!    that comes while the token is still being sent (step 2) is kept, not lost.
//! 5. **Resume.** The step after the callback gets the resolution: the value, decoded
//!    as the type the workflow waits for, or a [`CallbackError`] that `?` converts.
//!
//! This module holds the types, below the store and the driver that use them; the
//! `completion` module, above them, completes callbacks from outside.
//!
//! [`Store::callback`]: crate::Store::callback

mod token;

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use token::fresh;
pub use token::CallbackToken;
pub(crate) use token::{same_secret, Parts};

use crate::deps::Fault;
use crate::error::StoreError;
use crate::execution::{ExecutionId, Status};
use crate::json::Json;
use crate::retry::WorkflowError;
use crate::time::Timestamp;

/// Why a `wait_for_callback!` did not give the workflow a value. Convert it into the
/// workflow's error with `?` (via `From`), as a poll's [`PollError`](crate::PollError).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum CallbackError {
    /// The token was failed ([`Runtime::fail`](crate::Runtime::fail), or
    /// `SendTaskFailure` on Step Functions). Named as the error it was failed with.
    #[error("the callback failed with {error}: {cause}")]
    Failed {
        /// The error's name, as the failing side gave it.
        error: String,
        /// What happened, as the failing side gave it.
        cause: String,
    },
    /// Nobody completed or failed the token within the callback's `timeout`.
    #[error("the callback was not completed within {timeout:?}")]
    TimedOut {
        /// The timeout that elapsed.
        timeout: Duration,
    },
    /// No heartbeat came within the callback's `heartbeat` interval.
    #[error("the callback had no heartbeat for {heartbeat:?}")]
    HeartbeatTimedOut {
        /// The heartbeat interval that elapsed.
        heartbeat: Duration,
    },
    /// The closure that sends the token failed: nobody has it.
    #[error("the callback's token could not be sent: {message}")]
    NotSent {
        /// The closure's error, as its message.
        message: String,
    },
}

impl CallbackError {
    /// The name of [`CallbackError::TimedOut`].
    pub const TIMED_OUT: &'static str = "Workflow.CallbackTimedOut";
    /// The name of [`CallbackError::HeartbeatTimedOut`].
    pub const HEARTBEAT_TIMED_OUT: &'static str = "Workflow.CallbackHeartbeatTimedOut";
    /// The name of [`CallbackError::NotSent`].
    pub const NOT_SENT: &'static str = "Workflow.CallbackNotSent";
}

/// `Failed` is named as the error the token was failed with; the others are the
/// runtime's own.
impl WorkflowError for CallbackError {
    fn error_name(&self) -> Cow<'static, str> {
        match self {
            CallbackError::Failed { error, .. } => Cow::Owned(error.clone()),
            CallbackError::TimedOut { .. } => Cow::Borrowed(Self::TIMED_OUT),
            CallbackError::HeartbeatTimedOut { .. } => Cow::Borrowed(Self::HEARTBEAT_TIMED_OUT),
            CallbackError::NotSent { .. } => Cow::Borrowed(Self::NOT_SENT),
        }
    }
}

/// Why [`Runtime::complete`](crate::Runtime::complete), [`fail`](crate::Runtime::fail)
/// or [`heartbeat`](crate::Runtime::heartbeat) refused a token. Nothing was changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CompletionError {
    /// The text is not a callback token.
    #[error("not a callback token: {reason}")]
    Malformed {
        /// What is wrong with it.
        reason: String,
    },
    /// The token wraps a Step Functions task token: complete it through Step Functions
    /// (`SendTaskSuccess`, see [`asl::TaskCompletion`](crate::asl::TaskCompletion)), not
    /// through a native runtime.
    #[error("the token is a Step Functions task token: complete it with SendTaskSuccess or SendTaskFailure (asl::TaskCompletion)")]
    StepFunctionsToken,
    /// The token was issued by a native runtime: complete it with
    /// [`Runtime::complete`](crate::Runtime::complete), not through Step Functions.
    #[error("the token was issued by a native runtime: complete it with Runtime::complete")]
    NativeToken,
    /// The store has no execution with the token's id (a token of another store, or
    /// an execution deleted since).
    #[error("no execution `{execution}` is waiting on a callback in this runtime's store")]
    UnknownExecution {
        /// The execution the token names.
        execution: ExecutionId,
    },
    /// The execution never issued this token: its id or secret is made up.
    #[error("execution `{execution}` issued no callback token like this one (callback `{callback}`): it is forged, or was changed")]
    Forged {
        /// The execution the token names.
        execution: ExecutionId,
        /// The callback id the token names.
        callback: String,
    },
    /// The callback was completed, failed or timed out already; the first resolution
    /// stands.
    #[error("callback `{callback}` of execution `{execution}` was resolved already (completed, failed or timed out); the first resolution stands")]
    AlreadyResolved {
        /// The execution.
        execution: ExecutionId,
        /// The callback.
        callback: String,
    },
    /// The execution has ended; it waits on nothing any more.
    #[error(
        "execution `{execution}` has ended ({status:?}); its callbacks take no more completions"
    )]
    Ended {
        /// The execution.
        execution: ExecutionId,
        /// How it ended.
        status: Status,
    },
    /// The value does not decode as the type the workflow waits for.
    #[error("callback `{callback}` of execution `{execution}` waits for a `{expected}`, and the value does not decode as one: {message}")]
    WrongType {
        /// The execution.
        execution: ExecutionId,
        /// The callback.
        callback: String,
        /// The type the workflow waits for.
        expected: &'static str,
        /// Why the value does not decode.
        message: String,
    },
    /// The value does not serialize, or is over the runtime's payload limit.
    #[error("the callback's value cannot be used: {reason}")]
    InvalidValue {
        /// Why.
        reason: String,
    },
    /// The error name given to [`Runtime::fail`](crate::Runtime::fail) cannot be used
    /// (empty, Step Functions' own `States.` prefix, longer than 256 characters), or the
    /// cause is longer than 32,768 characters (Step Functions' limits).
    #[error("the callback's failure cannot be used: {reason}")]
    InvalidFailure {
        /// Why.
        reason: String,
    },
    /// The execution's workflow is not registered in this runtime, which then cannot
    /// check the value's type: complete it through a runtime that registers it.
    #[error(
        "execution `{execution}` is of workflow `{workflow}`, which this runtime does not register"
    )]
    NotRegistered {
        /// The execution.
        execution: ExecutionId,
        /// Its workflow.
        workflow: String,
    },
    /// The store failed; nothing was changed.
    #[error(transparent)]
    Store(StoreError),
}

/// A callback an execution waits on, as its [`Wait`](crate::Wait) keeps it: what the
/// token is checked against after a restart too, and how the callback was resolved
/// once it is.
///
/// The secret is kept in the store as it is (a restart must be able to send the same
/// token again): whoever can read the store's file can complete its callbacks, as they
/// can change any state in it. The history, errors, `Debug` and the console show only
/// the public id.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingCallback {
    /// The state-graph node of the `wait_for_callback!`.
    pub node: usize,
    /// Its public id: 64 random bits as hex, as the history and errors name it.
    pub id: String,
    /// Its secret: 128 random bits as hex, which the token carries.
    pub secret: String,
    /// When the wait started: its timeout (and first heartbeat interval) counts from here.
    pub started: Timestamp,
    /// How long the token may take to be completed.
    pub timeout: Duration,
    /// The longest time allowed between two heartbeats, if the callback has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat: Option<Duration>,
    /// When the last heartbeat came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heartbeat: Option<Timestamp>,
    /// Whether the token was sent (the closure returned): a restart does not send it
    /// again.
    #[serde(default)]
    pub sent: bool,
    /// How it was resolved, once it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<CallbackResolution>,
}

/// Without the secret.
impl fmt::Debug for PendingCallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingCallback")
            .field("node", &self.node)
            .field("id", &self.id)
            .field("started", &self.started)
            .field("timeout", &self.timeout)
            .field("heartbeat", &self.heartbeat)
            .field("last_heartbeat", &self.last_heartbeat)
            .field("sent", &self.sent)
            .field("resolution", &self.resolution)
            .finish_non_exhaustive()
    }
}

/// How a callback was resolved: the first of these wins.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "resolution")]
pub enum CallbackResolution {
    /// Completed with this value.
    Completed {
        /// The value, as JSON.
        value: Json,
    },
    /// Failed with this error.
    Failed {
        /// The error's name.
        error: String,
        /// What happened.
        cause: String,
    },
    /// Its timeout elapsed.
    TimedOut,
    /// Its heartbeat interval elapsed without a heartbeat.
    HeartbeatTimedOut,
    /// The closure that sends the token failed.
    NotSent {
        /// The closure's error, as its message.
        message: String,
    },
}

impl PendingCallback {
    /// A new callback of node `node`, started at `started`, with a fresh id and secret.
    pub(crate) fn new(
        node: usize,
        started: Timestamp,
        timeout: Duration,
        heartbeat: Option<Duration>,
    ) -> Result<Self, Fault> {
        let (id, secret) = fresh().map_err(|e| {
            Fault::new(format!(
                "the operating system gave no random bits for a callback token: {e}"
            ))
        })?;
        Ok(PendingCallback {
            node,
            id,
            secret,
            started,
            timeout,
            heartbeat,
            last_heartbeat: None,
            sent: false,
            resolution: None,
        })
    }

    /// When it times out.
    pub fn deadline(&self) -> Timestamp {
        self.started.after(self.timeout)
    }

    /// When it misses its next heartbeat, if it has a heartbeat.
    pub fn heartbeat_due(&self) -> Option<Timestamp> {
        self.heartbeat
            .map(|h| self.last_heartbeat.unwrap_or(self.started).after(h))
    }

    /// What resolves it if nothing else does first, and when: its timeout or its next
    /// heartbeat, whichever is earlier. `None` once it is resolved.
    pub(crate) fn due(&self) -> Option<(Timestamp, CallbackResolution)> {
        if self.resolution.is_some() {
            return None;
        }
        let timeout = (self.deadline(), CallbackResolution::TimedOut);
        Some(match self.heartbeat_due() {
            Some(h) if h < timeout.0 => (h, CallbackResolution::HeartbeatTimedOut),
            _ => timeout,
        })
    }

    /// Whether it still waits for the outside world: not resolved yet.
    pub fn is_waiting(&self) -> bool {
        self.resolution.is_none()
    }

    /// The same callback waited on again from `now` (a redrive): its timeout and
    /// heartbeat count from there, and a timeout that ended it is forgotten. A value or
    /// a failure that came before stays.
    pub(crate) fn again(self, now: Timestamp) -> Self {
        let resolution = self.resolution.filter(|r| {
            !matches!(
                r,
                CallbackResolution::TimedOut | CallbackResolution::HeartbeatTimedOut
            )
        });
        PendingCallback {
            started: now,
            last_heartbeat: None,
            resolution,
            ..self
        }
    }
}

/// What the step of a waiting callback gets from the driver (or the step handler).
#[doc(hidden)]
pub enum CallbackStep {
    /// Send this token (run the closure).
    Send(CallbackToken),
    /// The callback is resolved: its value or its error.
    Resolved(Resolved),
}

/// A resolution, with what the errors it becomes report.
#[doc(hidden)]
pub struct Resolved {
    pub(crate) resolution: CallbackResolution,
    pub(crate) timeout: Duration,
    pub(crate) heartbeat: Option<Duration>,
    /// The node's name, for a value that does not decode.
    pub(crate) node: &'static str,
}

impl Resolved {
    /// The callback's value decoded as `T`, or its error. A value that does not decode
    /// is a fault: natively [`Runtime::complete`](crate::Runtime::complete) checked it
    /// already, so only a value sent to Step Functions unchecked can get here.
    pub fn value<T: DeserializeOwned>(self) -> Result<Result<T, CallbackError>, Fault> {
        Ok(Err(match self.resolution {
            CallbackResolution::Completed { value } => {
                return value.decode().map(Ok).map_err(|e| {
                    Fault::new(format!(
                        "the value that completed callback `{}` is not a `{}`: {e}",
                        self.node,
                        std::any::type_name::<T>()
                    ))
                });
            }
            CallbackResolution::Failed { error, cause } => CallbackError::Failed { error, cause },
            CallbackResolution::TimedOut => CallbackError::TimedOut {
                timeout: self.timeout,
            },
            CallbackResolution::HeartbeatTimedOut => CallbackError::HeartbeatTimedOut {
                heartbeat: self.heartbeat.unwrap_or_default(),
            },
            CallbackResolution::NotSent { message } => CallbackError::NotSent { message },
        }))
    }
}

/// What the closure of a `wait_for_callback!` may return: nothing, or a `Result` whose
/// error says why the token could not be sent.
#[diagnostic::on_unimplemented(
    message = "the closure of `wait_for_callback!` returns `{Self}`, which says neither that the token was sent nor why not",
    label = "this sends the token",
    note = "return a future of `()` or of `Result<T, E>` with `E: Display` (an `async fn` call, or an `async` block)"
)]
pub trait Sent {
    /// `Err` with the error's message if the token was not sent.
    fn into_sent(self) -> Result<(), String>;
}

impl Sent for () {
    fn into_sent(self) -> Result<(), String> {
        Ok(())
    }
}

impl<T, E: fmt::Display> Sent for Result<T, E> {
    fn into_sent(self) -> Result<(), String> {
        self.map(drop).map_err(|e| e.to_string())
    }
}

/// Calls the closure of a `wait_for_callback!` with the token: through a function, so
/// that the closure's parameter is known to be the token, and the call is not a closure
/// called where it is written (which Clippy reports, on the user's code).
#[doc(hidden)]
pub fn send<F: FnOnce(CallbackToken) -> R, R>(send: F, token: CallbackToken) -> R {
    send(token)
}

/// Whether `value` decodes as `T`: the check [`Runtime::complete`](crate::Runtime::complete)
/// makes before it writes anything (the graph's `NodeKind::Callback::accepts`).
#[doc(hidden)]
pub fn accepts<T: DeserializeOwned>(value: &Json) -> Result<(), String> {
    value.decode::<T>().map(drop).map_err(|e| e.to_string())
}

/// The value type of a `wait_for_callback!` bound without `?`: the `T` of its
/// `Result<T, CallbackError>`.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "a `wait_for_callback!` without `?` is a `Result<T, CallbackError>`, not `{Self}`",
    label = "annotate it as `Result<T, CallbackError>`, or add `?`"
)]
pub trait CallbackValue {
    type Value;
}

impl<T> CallbackValue for Result<T, CallbackError> {
    type Value = T;
}
