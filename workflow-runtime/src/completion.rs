//! Completing, failing and heartbeating a callback from outside: [`Runtime::complete`],
//! [`Runtime::fail`], [`Runtime::heartbeat`].

use std::sync::Arc;

use serde::Serialize;

use crate::callback::{CallbackResolution, CallbackToken, CompletionError, Parts, PendingCallback};
use crate::driver::Inner;
use crate::error::StoreError;
use crate::execution::ExecutionId;
use crate::graph::NodeKind;
use crate::history::{Event, EventKind};
use crate::json::Json;
use crate::retry::check_name;
use crate::runtime::Runtime;
use crate::store::{CallbackChange, CallbackUpdate, ExecutionRecord, Wait};

/// Step Functions' limits on `SendTaskFailure`'s error and cause, kept natively so that
/// what works here works there.
const MAX_ERROR: usize = 256;
const MAX_CAUSE: usize = 32_768;

impl Runtime {
    /// Completes the callback of `token` with `value`: the execution waiting on it goes
    /// on with `value` as the `wait_for_callback!`'s value.
    ///
    /// Call it from anywhere (another task, another thread, the handler of an HTTP
    /// request that carries the token), before or after a restart: the pending callback
    /// is in the store, and the completion is written there before this returns, so it
    /// is never lost. It must go through a running runtime, which checks `value`
    /// against the type the workflow waits for and wakes the execution if it drives it
    /// (one it has not [recovered](Self::recover) yet finds the completion when it is).
    /// A completion that arrives while the workflow is still sending the token, before
    /// its wait is under way, is kept the same way.
    ///
    /// The first completion, failure or timeout of a callback wins; anything later is
    /// refused with [`CompletionError::AlreadyResolved`], and nothing resumes twice.
    /// Refused too, with nothing changed: a malformed token, one the execution never
    /// issued ([`Forged`](CompletionError::Forged)), one of an execution that has ended,
    /// and a value that does not decode as the expected type
    /// ([`WrongType`](CompletionError::WrongType), naming that type).
    ///
    /// ```
    /// use serde::{Deserialize, Serialize};
    /// use workflow::prelude::*;
    /// use workflow::{CallbackToken, CompletionError};
    ///
    /// #[derive(Debug, PartialEq, Serialize, Deserialize)]
    /// enum Decision { Approve, Reject }
    ///
    /// /// Where the token goes: an inbox a person (here, the test) reads.
    /// #[derive(Default)]
    /// struct Inbox(tokio::sync::Mutex<Vec<CallbackToken>>);
    ///
    /// #[workflow]
    /// async fn approval(inbox: &Inbox, order: u32) -> Result<Decision, CallbackError> {
    ///     let decision: Decision = wait_for_callback!(
    ///         |token| async move { inbox.0.lock().await.push(token) },
    ///         timeout = 3.secs(),
    ///     )?;
    ///     Ok(decision)
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let inbox = std::sync::Arc::new(Inbox::default());
    /// let runtime = Runtime::builder()
    ///     .register(approval)
    ///     .dependency_arc(inbox.clone())
    ///     .build()?;
    /// let run = runtime.start(approval, 7).await?;
    /// let token = loop {
    ///     if let Some(token) = inbox.0.lock().await.pop() { break token; }
    ///     tokio::task::yield_now().await;
    /// };
    /// // The token travels as text, and is parsed back where the answer comes in.
    /// let token: CallbackToken = token.to_string().parse()?;
    /// let wrong = runtime.complete(&token, "yes").await;
    /// assert!(matches!(wrong, Err(CompletionError::WrongType { .. })));
    /// runtime.complete(&token, Decision::Approve).await?;
    /// let twice = runtime.complete(&token, Decision::Reject).await;
    /// assert!(matches!(twice, Err(CompletionError::AlreadyResolved { .. })));
    /// assert_eq!(run.result().await?, Decision::Approve);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn complete<T: Serialize>(
        &self,
        token: &CallbackToken,
        value: T,
    ) -> Result<(), CompletionError> {
        let value = Json::encode(&value).map_err(|e| CompletionError::InvalidValue {
            reason: format!("it does not serialize: {e}"),
        })?;
        self.complete_json(token, value).await
    }

    /// [`complete`](Self::complete) with a value as JSON (a [`Json`] or a
    /// [`serde_json::Value`]), as an HTTP endpoint receives it.
    pub async fn complete_json(
        &self,
        token: &CallbackToken,
        value: impl Into<Json>,
    ) -> Result<(), CompletionError> {
        let value = value.into();
        let size = value.as_str().len();
        let limit = self.inner().payload_limit;
        if size > limit {
            return Err(CompletionError::InvalidValue {
                reason: format!(
                    "it is {size} bytes, over the runtime's {limit}-byte payload limit"
                ),
            });
        }
        change(
            self.inner(),
            token,
            CallbackChange::Resolve(CallbackResolution::Completed { value }),
        )
        .await
    }

    /// Fails the callback of `token` with error `error` and `cause`: the
    /// `wait_for_callback!` gives the workflow
    /// [`CallbackError::Failed`](crate::CallbackError::Failed), named `error` (a retry
    /// policy or a `match` can tell failures apart by it), as Step Functions'
    /// `SendTaskFailure` does. The same rules as [`complete`](Self::complete); `error`
    /// must be a valid error name (not empty, not `States.…`, at most 256 characters)
    /// and `cause` at most 32,768 characters.
    pub async fn fail(
        &self,
        token: &CallbackToken,
        error: &str,
        cause: &str,
    ) -> Result<(), CompletionError> {
        let invalid = |reason: String| Err(CompletionError::InvalidFailure { reason });
        if let Err(reason) = check_name(error) {
            return invalid(reason);
        }
        if error.chars().count() > MAX_ERROR {
            return invalid(format!("the error name is over {MAX_ERROR} characters"));
        }
        if cause.chars().count() > MAX_CAUSE {
            return invalid(format!("the cause is over {MAX_CAUSE} characters"));
        }
        let resolution = CallbackResolution::Failed {
            error: error.to_owned(),
            cause: cause.to_owned(),
        };
        change(self.inner(), token, CallbackChange::Resolve(resolution)).await
    }

    /// Records a heartbeat of the callback of `token`: a callback with a `heartbeat`
    /// interval fails with [`CallbackError::HeartbeatTimedOut`](crate::CallbackError::HeartbeatTimedOut)
    /// if that long passes without one (counted from the start of the wait, then from
    /// the last heartbeat), as Step Functions' `SendTaskHeartbeat`. Refused once the
    /// callback is resolved, as [`complete`](Self::complete) is.
    pub async fn heartbeat(&self, token: &CallbackToken) -> Result<(), CompletionError> {
        change(self.inner(), token, CallbackChange::Heartbeat).await
    }
}

/// Checks `token` against the store, writes `change` if the callback takes it, and
/// tells the execution's driver.
async fn change(
    rt: &Arc<Inner>,
    token: &CallbackToken,
    change: CallbackChange,
) -> Result<(), CompletionError> {
    let (callback, secret, execution) = match token.parts() {
        Parts::Native {
            callback,
            secret,
            execution,
        } => (callback, secret, ExecutionId::from(execution)),
        Parts::StepFunctions(_) => return Err(CompletionError::StepFunctionsToken),
    };
    let record = rt
        .store
        .get(&execution)
        .await
        .map_err(CompletionError::Store)?
        .ok_or_else(|| CompletionError::UnknownExecution {
            execution: execution.clone(),
        })?;
    // The store decides for good; these checks give the refusals their reasons, and
    // check the value before anything is written.
    let update = CallbackUpdate {
        id: execution.clone(),
        callback: callback.to_owned(),
        secret: secret.to_owned(),
        change,
        events: Vec::new(),
        at: rt.clock.now(),
    };
    let stored = match update.apply(record.status, record.waiting.as_ref()) {
        Ok(_) => match &record.waiting {
            Some(Wait::Callback(stored)) => stored,
            _ => unreachable!("`apply` accepts only a callback"),
        },
        Err(e) => return Err(refusal(rt, &record, callback, e).await),
    };
    if let CallbackChange::Resolve(CallbackResolution::Completed { value }) = &update.change {
        check_value(rt, &record, stored, value)?;
    }
    let state = rt
        .workflows
        .get(record.workflow.as_str())
        .and_then(|w| w.driver.graph().nodes.get(stored.node))
        .map(|n| n.name.into());
    let kind = match &update.change {
        CallbackChange::Heartbeat => EventKind::CallbackHeartbeat {
            callback: callback.to_owned(),
        },
        CallbackChange::Resolve(CallbackResolution::Completed { value }) => {
            EventKind::CallbackCompleted {
                callback: callback.to_owned(),
                output: value.clone(),
            }
        }
        CallbackChange::Resolve(CallbackResolution::Failed { error, cause }) => {
            EventKind::CallbackFailed {
                callback: callback.to_owned(),
                error: error.clone(),
                cause: cause.clone(),
            }
        }
        CallbackChange::Resolve(_) | CallbackChange::Sent => {
            unreachable!("only the driver sends tokens and times callbacks out")
        }
    };
    let update = CallbackUpdate {
        events: vec![Event {
            at: update.at,
            state,
            kind,
        }],
        ..update
    };
    match rt.store.callback(&update).await {
        Ok(after) => {
            rt.notify_callback(&execution, after);
            Ok(())
        }
        // Resolved, moved on or ended since it was read.
        Err(e) => {
            let now = rt
                .store
                .get(&execution)
                .await
                .map_err(CompletionError::Store)?;
            Err(match now {
                Some(record) => refusal(rt, &record, callback, e).await,
                None => CompletionError::UnknownExecution { execution },
            })
        }
    }
}

/// Whether `value` decodes as the type the callback's node waits for, in the definition
/// that wrote the execution.
fn check_value(
    rt: &Inner,
    record: &ExecutionRecord,
    callback: &PendingCallback,
    value: &Json,
) -> Result<(), CompletionError> {
    let not_registered = || CompletionError::NotRegistered {
        execution: record.id.clone(),
        workflow: record.workflow.clone(),
    };
    let registration = rt
        .workflows
        .get(record.workflow.as_str())
        .filter(|w| w.driver.reads(record.fingerprint))
        .ok_or_else(not_registered)?;
    let graph = registration.driver.graph();
    match graph.nodes.get(callback.node).map(|n| &n.kind) {
        Some(NodeKind::Callback {
            value: expected,
            accepts,
            ..
        }) => accepts(value).map_err(|message| CompletionError::WrongType {
            execution: record.id.clone(),
            callback: callback.id.clone(),
            expected,
            message,
        }),
        _ => Err(not_registered()),
    }
}

/// Why the store refused a change to callback `callback` of `record`, in the caller's
/// terms.
async fn refusal(
    rt: &Inner,
    record: &ExecutionRecord,
    callback: &str,
    error: StoreError,
) -> CompletionError {
    let execution = record.id.clone();
    match error {
        StoreError::Ended(_) => CompletionError::Ended {
            execution,
            status: record.status,
        },
        StoreError::CallbackResolved { .. } => CompletionError::AlreadyResolved {
            execution,
            callback: callback.to_owned(),
        },
        StoreError::NotFound(_) => CompletionError::UnknownExecution { execution },
        StoreError::NoCallback { .. } => {
            // Not the callback it waits on now: one it waited on before (resolved and
            // gone by), or none it ever issued. Only the history can tell.
            let issued = match rt.store.history(&execution).await {
                Ok(history) => history.iter().any(|e| {
                    matches!(&e.kind, EventKind::CallbackStarted { callback: c, .. } if c == callback)
                }),
                Err(e) => return CompletionError::Store(e),
            };
            let waits_on_it = record
                .waiting
                .as_ref()
                .and_then(Wait::waiting_callback)
                .is_some_and(|c| c.id == callback);
            if issued && !waits_on_it {
                CompletionError::AlreadyResolved {
                    execution,
                    callback: callback.to_owned(),
                }
            } else {
                CompletionError::Forged {
                    execution,
                    callback: callback.to_owned(),
                }
            }
        }
        other => CompletionError::Store(other),
    }
}
