//! Error names, retry policies and timeouts: the native side of ASL's `Retry`,
//! `TimeoutSeconds` and `Catch`.
//!
//! A policy is written on a yield statement of a workflow body, or once for the whole
//! workflow on `#[workflow]` (see the `workflow` crate's docs); the macro puts it on the
//! state-graph node, where the runtime reads it when a call fails and the ASL emitter
//! turns it into the node's `Retry` entry.
//!
//! Retries match errors by name. An error type says, per variant, what its name is and
//! whether it may be retried at all by implementing [`WorkflowError`], usually through
//! `#[derive(WorkflowError)]`.

use std::borrow::Cow;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The prefix Step Functions reserves for its own errors; no user error may use it.
pub const RESERVED_PREFIX: &str = "States.";

/// An error with a stable name: what retry policies match (`on = […]`), what the history
/// records and what the ASL calls it (`ErrorEquals`, a Fail state's `Error`).
///
/// Derive it: each variant is named after itself (`Unavailable`) unless it says
/// otherwise, and a variant marked `transparent` takes the name of the error it wraps.
///
/// ```
/// use workflow::prelude::*;
///
/// #[derive(Debug, WorkflowError)]
/// enum ShopError {
///     Unavailable,                          // "Unavailable"
///     #[workflow_error(name = "Shop.OutOfStock", non_retryable)]
///     OutOfStock { sku: String },           // "Shop.OutOfStock", never retried
///     #[workflow_error(transparent)]
///     Poll(PollError),                      // "Workflow.PollTimedOut", …
/// }
///
/// assert_eq!(ShopError::Unavailable.error_name(), "Unavailable");
/// let out = ShopError::OutOfStock { sku: "x".into() };
/// assert_eq!(out.error_name(), "Shop.OutOfStock");
/// assert!(!out.is_retryable());
/// ```
///
/// Names starting with `States.` are Step Functions' own and are refused, by the derive
/// at compile time and by [`Builder::build`](crate::Builder::build) for policies.
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no error names",
    label = "needs `#[derive(WorkflowError)]`",
    note = "a workflow's error type, and the error of a task that has a retry policy or a timeout, must implement `WorkflowError`: retries, the history and the ASL match errors by name"
)]
pub trait WorkflowError {
    /// This error's stable name.
    fn error_name(&self) -> Cow<'static, str>;

    /// Whether a retry policy may retry it at all (`true` unless marked
    /// `non_retryable`). A policy that names a non-retryable error still does not retry
    /// it.
    fn is_retryable(&self) -> bool {
        true
    }
}

/// The error of a task that ran longer than its timeout (`#[timeout(…)]`). Its name is
/// `Workflow.Timeout`; a task with a timeout must have an error type with a
/// `From<TaskTimeout>` conversion, so that the timeout is one of its own errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("the task did not finish within {timeout:?}")]
pub struct TaskTimeout {
    /// The timeout that elapsed.
    pub timeout: Duration,
}

impl TaskTimeout {
    /// The name of the timeout error.
    pub const NAME: &'static str = "Workflow.Timeout";
}

/// The error of a call with a `#[timeout]`: its error type converts from
/// [`TaskTimeout`]. Generated code names [`timeout_error`] on the `#[timeout]`
/// attribute, so that a type without the conversion is reported there, once.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`#[timeout]` needs the call's error type `{Self}` to convert from `TaskTimeout`",
    label = "`{Self}` has no `From<TaskTimeout>`",
    note = "a timed-out call fails with its own error type: add a variant such as `#[error(transparent)] #[workflow_error(transparent)] Timeout(#[from] TaskTimeout)`, or `impl From<TaskTimeout> for {Self}`"
)]
pub trait FromTimeout {
    /// The call's error for `timeout`.
    fn from_timeout(timeout: TaskTimeout) -> Self;
}

impl<E: From<TaskTimeout>> FromTimeout for E {
    fn from_timeout(timeout: TaskTimeout) -> Self {
        E::from(timeout)
    }
}

/// The call's error for a timeout; see [`FromTimeout`].
#[doc(hidden)]
pub fn timeout_error<E: FromTimeout>(timeout: TaskTimeout) -> E {
    E::from_timeout(timeout)
}

impl WorkflowError for TaskTimeout {
    fn error_name(&self) -> Cow<'static, str> {
        Cow::Borrowed(Self::NAME)
    }
}

impl<E: WorkflowError + ?Sized> WorkflowError for Box<E> {
    fn error_name(&self) -> Cow<'static, str> {
        (**self).error_name()
    }
    fn is_retryable(&self) -> bool {
        (**self).is_retryable()
    }
}

/// How a retry's delay is randomized ([ASL's `JitterStrategy`]).
///
/// [ASL's `JitterStrategy`]: https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Jitter {
    /// The computed delay, exactly.
    #[default]
    None,
    /// A delay drawn uniformly between zero and the computed delay.
    Full,
}

/// When and how often a failed call is retried: ASL's `Retry` fields.
///
/// The delay before retry `n` (from 1) is `interval × backoff_rate^(n-1)`, capped at
/// `max_delay`, then randomized by `jitter`. After `max_attempts` retries, the error is
/// the call's result, for the Rust code to handle or propagate.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RetryPolicy {
    /// The error names it retries; empty for every retryable error.
    pub on: &'static [&'static str],
    /// The delay before the first retry.
    pub interval: Duration,
    /// How many retries at most (not counting the first call).
    pub max_attempts: u32,
    /// The factor each further retry's delay grows by; at least 1.
    pub backoff_rate: f64,
    /// The longest delay, after backoff.
    pub max_delay: Option<Duration>,
    /// How the delay is randomized.
    pub jitter: Jitter,
}

impl Default for RetryPolicy {
    /// ASL's defaults: every error, 1 s, 3 retries, backoff 2, no cap, no jitter.
    fn default() -> Self {
        RetryPolicy {
            on: &[],
            interval: Duration::from_secs(1),
            max_attempts: 3,
            backoff_rate: 2.0,
            max_delay: None,
            jitter: Jitter::None,
        }
    }
}

impl RetryPolicy {
    /// Whether this policy retries `error` after `retries` retries already made.
    pub fn retries<E: WorkflowError + ?Sized>(&self, error: &E, retries: u32) -> bool {
        retries < self.max_attempts && error.is_retryable() && self.matches(&error.error_name())
    }

    /// Whether `name` is one of the errors this policy retries.
    pub fn matches(&self, name: &str) -> bool {
        self.on.is_empty() || self.on.contains(&name)
    }

    /// The delay before retry number `retry` (from 1), before jitter.
    pub fn base_delay(&self, retry: u32) -> Duration {
        let factor = self
            .backoff_rate
            .powi(retry.saturating_sub(1).min(i32::MAX as u32) as i32);
        let secs = self.interval.as_secs_f64() * factor;
        let cap = self.max_delay.map_or(f64::MAX, |d| d.as_secs_f64());
        // `try_from_secs_f64` refuses infinities and overflow; a delay that large is capped.
        Duration::try_from_secs_f64(secs.min(cap)).unwrap_or(Duration::MAX)
    }

    /// The delay before retry number `retry` (from 1), jitter applied.
    pub fn delay(&self, retry: u32) -> Duration {
        let base = self.base_delay(retry);
        match self.jitter {
            Jitter::None => base,
            Jitter::Full => base.mul_f64(fastrand::f64()),
        }
    }

    /// Checks the values: what `#[retry(…)]` cannot check at compile time.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.backoff_rate.is_finite() && self.backoff_rate >= 1.0) {
            return Err(format!(
                "backoff rate {} is below 1: delays would shrink",
                self.backoff_rate
            ));
        }
        if self.max_attempts == 0 && !self.interval.is_zero() {
            // ASL refuses neither, but it is always a mistake: a delay nothing waits for.
            return Err("max_attempts = 0 never retries, so an interval means nothing: remove the policy or allow attempts".into());
        }
        if self.max_attempts > 0 && self.interval.is_zero() {
            return Err("the interval is zero: retries would hammer the failing service".into());
        }
        if let Some(max) = self.max_delay {
            if max < self.interval {
                return Err(format!(
                    "max_delay {max:?} is shorter than the interval {:?}",
                    self.interval
                ));
            }
        }
        for name in self.on {
            check_name(name)?;
        }
        Ok(())
    }
}

/// Checks an error name: not empty, not one of Step Functions' own.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        Err("an error name cannot be empty".into())
    } else if name.starts_with(RESERVED_PREFIX) {
        Err(format!(
            "`{name}`: names starting with `{RESERVED_PREFIX}` are Step Functions' own; the runtime's errors are `Workflow.…`"
        ))
    } else {
        Ok(())
    }
}

/// The policies of one yield point: its retry policy and its timeout.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Policy {
    /// Retries of a failed call.
    pub retry: Option<RetryPolicy>,
    /// How long one call (a task, one poll attempt) or a child execution may take.
    pub timeout: Option<Duration>,
}

impl Policy {
    /// Checks the values (see [`RetryPolicy::validate`]).
    pub fn validate(&self) -> Result<(), String> {
        if self.timeout.is_some_and(|t| t.is_zero()) {
            return Err("the timeout is zero: every call would time out".into());
        }
        self.retry.as_ref().map_or(Ok(()), RetryPolicy::validate)
    }
}

/// A retry the generated code asks for: the call of `node` failed with a retryable
/// error, and the runtime waits `delay` before running the step again.
#[doc(hidden)]
#[derive(Clone, Debug, PartialEq)]
pub struct Retry {
    /// The node whose call failed.
    pub node: usize,
    /// The retry's number, from 1.
    pub attempt: u32,
    /// How long to wait first.
    pub delay: Duration,
    /// The error's name.
    pub error: String,
    /// The error as JSON.
    pub cause: serde_json::Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            on: &["Unavailable"],
            interval: Duration::from_secs(2),
            max_attempts: 4,
            backoff_rate: 3.0,
            max_delay: Some(Duration::from_secs(30)),
            jitter: Jitter::None,
        }
    }

    struct Named(&'static str, bool);
    impl WorkflowError for Named {
        fn error_name(&self) -> Cow<'static, str> {
            Cow::Borrowed(self.0)
        }
        fn is_retryable(&self) -> bool {
            self.1
        }
    }

    #[test]
    fn delays_grow_by_the_backoff_rate_up_to_the_cap() {
        let p = policy();
        let secs: Vec<u64> = (1..=4).map(|n| p.delay(n).as_secs()).collect();
        assert_eq!(secs, [2, 6, 18, 30]);
    }

    #[test]
    fn full_jitter_stays_between_zero_and_the_delay() {
        let p = RetryPolicy {
            jitter: Jitter::Full,
            ..policy()
        };
        let delays: Vec<Duration> = (0..200).map(|_| p.delay(2)).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(6)));
        // 200 draws from [0, 6 s] are not all equal.
        assert!(delays.iter().any(|d| *d != delays[0]));
    }

    #[test]
    fn matching_needs_the_name_a_retryable_error_and_attempts_left() {
        let p = policy();
        assert!(p.retries(&Named("Unavailable", true), 0));
        assert!(p.retries(&Named("Unavailable", true), 3));
        assert!(!p.retries(&Named("Unavailable", true), 4));
        assert!(!p.retries(&Named("Other", true), 0));
        assert!(!p.retries(&Named("Unavailable", false), 0));
        let all = RetryPolicy::default();
        assert!(all.retries(&Named("Anything", true), 0));
    }

    #[test]
    fn bad_values_are_refused() {
        let bad = |p: RetryPolicy| p.validate().unwrap_err();
        assert!(bad(RetryPolicy {
            backoff_rate: 0.5,
            ..policy()
        })
        .contains("below 1"));
        assert!(bad(RetryPolicy {
            max_attempts: 0,
            ..policy()
        })
        .contains("never retries"));
        assert!(bad(RetryPolicy {
            on: &["States.Timeout"],
            ..policy()
        })
        .contains("Step Functions' own"));
        assert!(bad(RetryPolicy {
            max_delay: Some(Duration::from_secs(1)),
            ..policy()
        })
        .contains("shorter"));
        assert!(policy().validate().is_ok());
    }
}
