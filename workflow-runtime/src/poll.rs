//! The bookkeeping behind `poll_until!`: durable attempt and error counts, and its errors.

use std::borrow::Cow;
use std::fmt::Display;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::context::StepCx;
use crate::history::{EventKind, PollOutcome};
use crate::retry::WorkflowError;
use crate::time::Timestamp;

/// The value a `poll_until!` found ready, with what it took to get there.
///
/// ```
/// # use std::time::Duration;
/// # use workflow_runtime::Polled;
/// let polled = Polled { value: "done", attempts: 3, elapsed: Duration::from_secs(30) };
/// assert_eq!(*polled, "done"); // derefs to the value
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Polled<T> {
    /// The ready value.
    pub value: T,
    /// How many times the call was made, the ready one included.
    pub attempts: u32,
    /// Time from the start of the poll to the ready answer.
    pub elapsed: Duration,
}

impl<T> Polled<T> {
    /// The ready value, without the meta information.
    pub fn into_inner(self) -> T {
        self.value
    }
}

impl<T> std::ops::Deref for Polled<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

/// Why a `poll_until!` gave up. Convert it into the workflow's error with `?` (via `From`).
///
/// The last error is kept as its message: it has to survive checkpoints between attempts,
/// and a call's error type (an HTTP client's, say) is rarely serializable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum PollError {
    /// `timeout` elapsed (no attempt starts past the deadline) without a ready answer.
    #[error("poll timed out after {attempts} attempts in {elapsed:?}")]
    TimedOut {
        /// Attempts made.
        attempts: u32,
        /// Time spent polling.
        elapsed: Duration,
        /// The message of the most recent failed call, if any failed.
        last_error: Option<String>,
    },
    /// `max_attempts` calls were made without a ready answer.
    #[error("poll gave up after {attempts} attempts in {elapsed:?}")]
    AttemptsExhausted {
        /// Attempts made.
        attempts: u32,
        /// Time spent polling.
        elapsed: Duration,
        /// The message of the most recent failed call, if any failed.
        last_error: Option<String>,
    },
    /// The call failed more than `max_errors` times.
    #[error("poll failed {errors} times in {attempts} attempts; last error: {last_error}")]
    TooManyErrors {
        /// Attempts made.
        attempts: u32,
        /// Failed calls.
        errors: u32,
        /// Time spent polling.
        elapsed: Duration,
        /// The message of the call error that exceeded the limit.
        last_error: String,
    },
}

impl PollError {
    /// The name of [`PollError::TimedOut`].
    pub const TIMED_OUT: &'static str = "Workflow.PollTimedOut";
    /// The name of [`PollError::AttemptsExhausted`].
    pub const ATTEMPTS_EXHAUSTED: &'static str = "Workflow.PollAttemptsExhausted";
    /// The name of [`PollError::TooManyErrors`].
    pub const TOO_MANY_ERRORS: &'static str = "Workflow.PollTooManyErrors";
}

impl WorkflowError for PollError {
    fn error_name(&self) -> Cow<'static, str> {
        Cow::Borrowed(match self {
            PollError::TimedOut { .. } => Self::TIMED_OUT,
            PollError::AttemptsExhausted { .. } => Self::ATTEMPTS_EXHAUSTED,
            PollError::TooManyErrors { .. } => Self::TOO_MANY_ERRORS,
        })
    }
}

/// The options of one `poll_until!`, evaluated once when the poll starts.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, Deserialize)]
pub struct PollConfig {
    pub every: Duration,
    pub timeout: Option<Duration>,
    pub max_attempts: Option<u32>,
    pub max_errors: u32,
}

/// Persisted progress of one `poll_until!`, part of the workflow's state while it polls.
#[doc(hidden)]
#[derive(Clone, Debug, Deserialize)]
pub struct PollState {
    config: PollConfig,
    started_at: Timestamp,
    attempts: u32,
    errors: u32,
    last_error: Option<String>,
}

// A polling state is written at every attempt, so it is written as arrays in field order
// (`[[every, timeout, max_attempts, max_errors], started_at, attempts, errors,
// last_error]`, a duration as `[secs, nanos]`) rather than as objects: a third of the
// bytes, and no keys to escape. The derived `Deserialize` reads arrays and objects alike,
// so states written as objects by earlier versions still resume.
impl Serialize for PollConfig {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let c = self;
        let timeout = c.timeout.map(Compact);
        (Compact(c.every), timeout, c.max_attempts, c.max_errors).serialize(s)
    }
}

impl Serialize for PollState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let p = self;
        (p.config, p.started_at, p.attempts, p.errors, &p.last_error).serialize(s)
    }
}

/// A duration as `[secs, nanos]`, which `Duration`'s `Deserialize` reads back.
struct Compact(Duration);

impl Serialize for Compact {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (self.0.as_secs(), self.0.subsec_nanos()).serialize(s)
    }
}

/// What a poll does after an attempt.
#[doc(hidden)]
pub enum PollNext<T> {
    /// Wait this long, then call again.
    Wait(Duration),
    /// The poll is over.
    Done(Result<Polled<T>, PollError>),
}

impl PollState {
    /// Starts a poll now; the first call happens after the first wait.
    pub fn begin(cx: &StepCx, config: PollConfig) -> Self {
        PollState {
            config,
            started_at: cx.now(),
            attempts: 0,
            errors: 0,
            last_error: None,
        }
    }

    /// The interval to wait before the next call.
    pub fn every(&self) -> Duration {
        self.config.every
    }

    /// Records the answer of one call and decides what comes next.
    pub fn attempt<T, E: Display>(
        &mut self,
        cx: &mut StepCx,
        node: usize,
        answer: Result<T, E>,
        ready: impl FnOnce(&T) -> bool,
    ) -> PollNext<T> {
        self.attempts = self.attempts.saturating_add(1);
        let elapsed = cx.now().since(self.started_at);
        // The driver runs an attempt's step in a `workflow.poll` span.
        let span = crate::telemetry::current();
        span.record("workflow.poll.attempt", self.attempts);
        let outcome = match answer {
            Ok(value) if ready(&value) => {
                span.record("workflow.poll.ready", true);
                cx.record(node, poll_event(self.attempts, PollOutcome::Ready));
                return PollNext::Done(Ok(Polled {
                    value,
                    attempts: self.attempts,
                    elapsed,
                }));
            }
            Ok(_) => {
                span.record("workflow.poll.ready", false);
                PollOutcome::NotReady
            }
            Err(e) => {
                self.errors = self.errors.saturating_add(1);
                let message = e.to_string();
                span.record("workflow.poll.ready", false);
                span.record("workflow.poll.error", message.as_str());
                self.last_error = Some(message.clone());
                PollOutcome::Error { message }
            }
        };
        cx.record(node, poll_event(self.attempts, outcome));
        let c = &self.config;
        if self.errors > c.max_errors {
            return PollNext::Done(Err(PollError::TooManyErrors {
                attempts: self.attempts,
                errors: self.errors,
                elapsed,
                last_error: self.last_error.take().unwrap_or_default(),
            }));
        }
        if c.max_attempts.is_some_and(|max| self.attempts >= max) {
            return PollNext::Done(Err(PollError::AttemptsExhausted {
                attempts: self.attempts,
                elapsed,
                last_error: self.last_error.take(),
            }));
        }
        if c.timeout.is_some_and(|t| elapsed + c.every > t) {
            return PollNext::Done(Err(PollError::TimedOut {
                attempts: self.attempts,
                elapsed,
                last_error: self.last_error.take(),
            }));
        }
        PollNext::Wait(c.every)
    }
}

fn poll_event(attempt: u32, outcome: PollOutcome) -> EventKind {
    EventKind::PollAttempt { attempt, outcome }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> PollState {
        PollState {
            config: PollConfig {
                every: Duration::from_millis(1500),
                timeout: Some(Duration::from_secs(60)),
                max_attempts: None,
                max_errors: 3,
            },
            started_at: Timestamp(1_700_000_000_000_000),
            attempts: 2,
            errors: 1,
            last_error: Some("503 \"busy\"".into()),
        }
    }

    fn fields(p: &PollState) -> String {
        format!("{p:?}")
    }

    #[test]
    fn a_poll_state_is_written_as_arrays_and_read_back() {
        let json = serde_json::to_string(&state()).unwrap();
        assert_eq!(
            json,
            r#"[[[1,500000000],[60,0],null,3],1700000000000000,2,1,"503 \"busy\""]"#
        );
        let back: PollState = serde_json::from_str(&json).unwrap();
        assert_eq!(fields(&back), fields(&state()));
    }

    #[test]
    fn a_poll_state_written_as_objects_still_reads() {
        let json = r#"{"config":{"every":{"secs":1,"nanos":500000000},
            "timeout":{"secs":60,"nanos":0},"max_attempts":null,"max_errors":3},
            "started_at":1700000000000000,"attempts":2,"errors":1,"last_error":"503 \"busy\""}"#;
        let back: PollState = serde_json::from_str(json).unwrap();
        assert_eq!(fields(&back), fields(&state()));
    }
}
