//! What a step of generated code sees: injected dependencies and the step context.

use std::borrow::Cow;

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;
use tracing::Span;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::callback::CallbackStep;
use crate::child::{ChildrenOutcome, NestedError};
use crate::deps::Fault;
use crate::graph::{Node, StateGraph};
use crate::history::{Event, EventKind};
use crate::json::Json;
use crate::persist::Encoder;
use crate::retry::{Policy, Retry, TaskTimeout, WorkflowError};
use crate::telemetry;
use crate::time::{Clock, Timestamp};

/// The context of one step of a workflow: the clock, the resume data, and the history
/// events the step produces (persisted with the step's checkpoint).
#[doc(hidden)]
pub struct StepCx {
    clock: Clock,
    graph: &'static StateGraph,
    pub(crate) events: Vec<Event>,
    children: Option<ChildrenOutcome>,
    /// Set by the ASL step handler, whose time comes from the request (or is the wall
    /// time at the start of the invocation) rather than from a long-lived tokio clock.
    fixed_now: Option<Timestamp>,
    /// How many retries of this step's call were made before this run.
    pub(crate) retries: u32,
    /// The ASL handler's `Catch`: the call's error, once Step Functions has retried it
    /// as often as the policy allows. The call is not made again; this is its result.
    pub(crate) caught: Option<Caught>,
    /// For the step of a waiting callback: the token to send, or its resolution.
    pub(crate) callback: Option<CallbackStep>,
    /// The span of the task being called, from its scheduling to its end.
    task: Option<Span>,
}

/// A call's error as Step Functions caught it (the `Error` and `Cause` of a `Catch`).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Caught {
    pub(crate) error: String,
    pub(crate) cause: serde_json::Value,
}

impl StepCx {
    pub(crate) fn new(
        clock: Clock,
        graph: &'static StateGraph,
        children: Option<ChildrenOutcome>,
    ) -> Self {
        StepCx {
            clock,
            graph,
            events: Vec::new(),
            children,
            fixed_now: None,
            retries: 0,
            caught: None,
            callback: None,
            task: None,
        }
    }

    /// A context whose clock reads `now` for the whole step (the ASL step handler's).
    pub(crate) fn at_time(
        now: Timestamp,
        graph: &'static StateGraph,
        children: Option<ChildrenOutcome>,
    ) -> Self {
        let mut cx = StepCx::new(Clock::new(), graph, children);
        cx.fixed_now = Some(now);
        cx
    }

    /// The runtime clock's current time.
    pub fn now(&self) -> Timestamp {
        self.fixed_now.unwrap_or_else(|| self.clock.now())
    }

    pub(crate) fn node_name(&self, node: usize) -> Option<Cow<'static, str>> {
        self.graph.nodes.get(node).map(|n| Cow::Borrowed(n.name))
    }

    /// Appends an event for `node` to the step's history.
    pub fn record(&mut self, node: usize, kind: EventKind) {
        // A call's end is its span's.
        match &kind {
            EventKind::TaskSucceeded { .. } => {
                if let Some(span) = self.task.take() {
                    telemetry::task_ended(&span, None);
                }
            }
            EventKind::TaskFailed { name, .. } => {
                if let Some(span) = self.task.take() {
                    telemetry::task_ended(&span, Some(name.as_deref().unwrap_or("?")));
                }
            }
            EventKind::RetryScheduled { error, delay, .. } => {
                if let Some(span) = self.task.take() {
                    span.record("workflow.task.retry_in_ms", delay.as_millis() as u64);
                    telemetry::task_ended(&span, Some(error));
                }
            }
            _ => {}
        }
        let event = Event {
            at: self.now(),
            state: self.node_name(node),
            kind,
        };
        self.events.push(event);
    }

    /// A task is about to run.
    pub fn task_scheduled(&mut self, node: usize) {
        // In the step's span, which the driver instruments the step with.
        let name = self.graph.nodes.get(node).map_or("?", |n| n.name);
        let timeout = self.policy(node).timeout;
        // (The step handler's `retries` is `u32::MAX` for a call Step Functions caught.)
        let attempt = self.retries.saturating_add(1);
        self.task = Some(telemetry::task_span(name, attempt, timeout));
        self.record(node, EventKind::TaskScheduled);
    }

    /// A task whose value the workflow keeps finished: records its output or error.
    ///
    /// `encode` records the value (`persist`'s encoder: a value without serde is
    /// recorded without it, and refused where it is persisted, on the user's type).
    pub fn task_finished<T, E: Serialize + WorkflowError>(
        &mut self,
        node: usize,
        result: Result<T, E>,
        encode: Encoder<T>,
    ) -> Result<T, E> {
        let kind = match &result {
            Ok(v) => EventKind::TaskSucceeded { output: encode(v) },
            Err(e) => EventKind::TaskFailed {
                error: to_payload(e),
                name: Some(e.error_name().into_owned()),
            },
        };
        self.record(node, kind);
        result
    }

    /// A task whose value the workflow drops finished.
    pub fn task_finished_opaque<T, E: Serialize + WorkflowError>(
        &mut self,
        node: usize,
        result: Result<T, E>,
    ) -> Result<T, E> {
        let kind = match &result {
            Ok(_) => EventKind::TaskSucceeded { output: None },
            Err(e) => EventKind::TaskFailed {
                error: to_payload(e),
                name: Some(e.error_name().into_owned()),
            },
        };
        self.record(node, kind);
        result
    }

    /// A task whose value the workflow keeps (and cannot fail) finished.
    pub fn task_value<T>(&mut self, node: usize, value: T, encode: Encoder<T>) -> T {
        let output = encode(&value);
        self.record(node, EventKind::TaskSucceeded { output });
        value
    }

    /// A task whose value the workflow drops (and cannot fail) finished.
    pub fn task_done(&mut self, node: usize) {
        self.record(node, EventKind::TaskSucceeded { output: None });
    }

    /// Runs the call of task or poll `node`, which has a policy: with its timeout, and,
    /// if it fails with an error its retry policy retries, ends the step with a retry.
    ///
    /// `named` gives a failed call's error name: [`error_name`], which generated code
    /// names on the user's call, so that an error type without names is reported there,
    /// once (a bound of this `async fn` would be checked, and reported, twice).
    pub async fn call<T, E, F>(
        &mut self,
        node: usize,
        call: F,
        named: Named<E>,
    ) -> Result<Result<T, E>, Interrupt>
    where
        F: Future<Output = Result<T, E>>,
        E: Serialize + DeserializeOwned,
    {
        let result = match self.caught.take() {
            Some(caught) => Err(self.decode_caught(node, caught)?),
            None => match AssertUnwindSafe(call).catch_unwind().await {
                Ok(result) => result,
                Err(payload) => return Err(self.panicked(node, &*payload)),
            },
        };
        self.retry_or(node, result, named)
    }

    /// [`call`](Self::call) for a call with a timeout: one that takes longer is dropped
    /// (cancelled) and fails with [`TaskTimeout`], as the call's error `timed_out` makes
    /// of it. (A function rather than an `E: From<TaskTimeout>` bound: generated code
    /// names it on the user's `#[timeout]`, where a missing conversion is then reported.)
    pub async fn call_with_timeout<T, E, F>(
        &mut self,
        node: usize,
        call: F,
        named: Named<E>,
        timed_out: fn(TaskTimeout) -> E,
    ) -> Result<Result<T, E>, Interrupt>
    where
        F: Future<Output = Result<T, E>>,
        E: Serialize + DeserializeOwned,
    {
        let timeout = self.policy(node).timeout;
        let result = match self.caught.take() {
            // The state's own `TimeoutSeconds` fired (the handler's timeout is shorter, so
            // this is a hung invocation): the same error as a native timeout.
            Some(caught) if caught.error == STATES_TIMEOUT => Err(timed_out(TaskTimeout {
                timeout: timeout.unwrap_or_default(),
            })),
            Some(caught) => Err(self.decode_caught(node, caught)?),
            None => {
                let call = AssertUnwindSafe(call).catch_unwind();
                let result = match timeout {
                    Some(t) => tokio::time::timeout(t, call)
                        .await
                        .unwrap_or_else(|_| Ok(Err(timed_out(TaskTimeout { timeout: t })))),
                    None => call.await,
                };
                match result {
                    Ok(result) => result,
                    Err(payload) => return Err(self.panicked(node, &*payload)),
                }
            }
        };
        self.retry_or(node, result, named)
    }

    /// The result of `call_nested!` at `node`, which has a retry policy: if the error is
    /// one it retries, ends the step with a retry of the whole batch.
    pub fn nested<T, E>(
        &mut self,
        node: usize,
        result: Result<T, NestedError<E>>,
    ) -> Result<Result<T, NestedError<E>>, Interrupt>
    where
        E: WorkflowError + Serialize,
    {
        self.retry_or(node, result, error_name::<NestedError<E>>)
    }

    fn policy(&self, node: usize) -> Policy {
        self.graph
            .nodes
            .get(node)
            .map(Node::policy)
            .unwrap_or_default()
    }

    /// The call of `node` panicked: a retry if its policy names [`Fault::PANIC`] and has
    /// attempts left, else the execution's fault. A policy for every error does not retry
    /// a panic: a panic is a bug in the code, which running it again rarely heals.
    fn panicked(&mut self, node: usize, payload: &(dyn Any + Send)) -> Interrupt {
        let fault = Fault::panic(self.graph.workflow, payload);
        let cause = serde_json::Value::String(fault.message().to_owned());
        let named = self
            .policy(node)
            .retry
            .is_some_and(|p| p.on.contains(&Fault::PANIC));
        if named {
            if let Some(retry) = self.retry(node, Fault::PANIC.to_owned(), true, cause.clone()) {
                return retry;
            }
        }
        // The call's end, as a failed call's: the history says which call panicked.
        let name = Some(Fault::PANIC.to_owned());
        self.record(
            node,
            EventKind::TaskFailed {
                error: cause.into(),
                name,
            },
        );
        Interrupt::Fault(fault)
    }

    fn decode_caught<E: DeserializeOwned>(
        &self,
        node: usize,
        caught: Caught,
    ) -> Result<E, Interrupt> {
        serde_json::from_value(caught.cause).map_err(|e| {
            let at = self.graph.nodes.get(node).map_or("?", |n| n.name);
            Interrupt::Fault(Fault::new(format!(
                "the error `{}` caught at `{at}` does not decode into the call's error type: {e}",
                caught.error
            )))
        })
    }

    fn retry_or<T, E: Serialize>(
        &mut self,
        node: usize,
        result: Result<T, E>,
        named: Named<E>,
    ) -> Result<Result<T, E>, Interrupt> {
        let Err(error) = &result else {
            return Ok(result);
        };
        let (name, retryable) = named(error);
        match self.retry(node, name.into_owned(), retryable, to_json(error)) {
            Some(retry) => Err(retry),
            None => Ok(result),
        }
    }

    /// A retry of `node`'s call, which failed with error `name`, if its policy retries
    /// that error and has attempts left.
    fn retry(
        &mut self,
        node: usize,
        name: String,
        retryable: bool,
        cause: serde_json::Value,
    ) -> Option<Interrupt> {
        let policy = self.policy(node).retry?;
        if !(retryable && self.retries < policy.max_attempts && policy.matches(&name)) {
            return None;
        }
        let attempt = self.retries + 1;
        let delay = policy.delay(attempt);
        self.record(
            node,
            EventKind::RetryScheduled {
                attempt,
                error: name.clone(),
                delay,
            },
        );
        Some(Interrupt::Retry(Retry {
            node,
            attempt,
            delay,
            error: name,
            cause,
        }))
    }

    /// What the step of the callback of `node` is for: sending its token, or going on
    /// with its resolution.
    pub fn take_callback(&mut self, node: usize) -> Result<CallbackStep, Fault> {
        self.callback.take().ok_or_else(|| {
            Fault::unexpected_resume(self.graph.nodes.get(node).map_or("?", |n| n.name))
        })
    }

    /// The results of the children this state waited for.
    pub fn take_children(&mut self, node: usize) -> Result<ChildrenOutcome, Fault> {
        self.children.take().ok_or_else(|| {
            Fault::unexpected_resume(self.graph.nodes.get(node).map_or("?", |n| n.name))
        })
    }
}

/// Why a call's step stops before the call has a value: the call is retried (run the
/// checkpointed state again after a delay), or the runtime cannot go on. Generated code
/// turns it into the step's [`Step`](crate::workflow::Step).
#[doc(hidden)]
#[derive(Debug)]
pub enum Interrupt {
    Retry(Retry),
    Fault(Fault),
}

/// How a call's error is named: see [`StepCx::call`].
pub type Named<E> = fn(&E) -> (Cow<'static, str>, bool);

/// An error's name and whether a policy may retry it.
pub fn error_name<E: WorkflowError>(error: &E) -> (Cow<'static, str>, bool) {
    (error.error_name(), error.is_retryable())
}

/// The error Step Functions raises when a state's `TimeoutSeconds` elapses.
pub(crate) const STATES_TIMEOUT: &str = "States.Timeout";

/// The error Step Functions raises when a state's `HeartbeatSeconds` elapses without a
/// heartbeat.
pub(crate) const STATES_HEARTBEAT_TIMEOUT: &str = "States.HeartbeatTimeout";

/// `value` as a history or outcome payload: its JSON, or a string saying why it has none.
pub(crate) fn to_payload<T: Serialize + ?Sized>(value: &T) -> Json {
    Json::encode(value)
        .unwrap_or_else(|e| Json::from(serde_json::Value::String(format!("<unserializable: {e}>"))))
}

pub(crate) fn to_json<T: Serialize + ?Sized>(value: &T) -> serde_json::Value {
    serde_json::to_value(value)
        .unwrap_or_else(|e| serde_json::Value::String(format!("<unserializable: {e}>")))
}
