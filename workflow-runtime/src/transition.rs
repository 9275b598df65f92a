//! What follows a step: the one decision that both the native driver and the step
//! handler act on.
//!
//! A step of the generated code ends with a [`Step`]. [`transition`] turns it, with the
//! time the step ended and the graph, into what the execution does next: persist a state
//! and go on, wait on a timer, run a batch of children, retry, or end. It is pure: the
//! driver then writes checkpoints, arms timers and starts children, the step handler
//! answers Step Functions with the state to enter; neither decides anything of its own,
//! so the two backends cannot drift on what a step means.

use std::time::Duration;

use crate::context::to_payload;
use crate::deps::Fault;
use crate::graph::StateGraph;
use crate::json::Json;
use crate::retry::{Retry, WorkflowError};
use crate::store::{PendingBatch, PendingChild, Wait};
use crate::time::Timestamp;
use crate::workflow::{Step, Workflow};

/// What the execution does after a step, `S` being the state to go on from (the
/// workflow's state enum; `()` once the driver has put it aside).
pub(crate) enum Transition<S> {
    /// A task ran (or a poll or a batch resolved): persist the state, then step again.
    Continue(S),
    /// Persist the state, then step again: that step starts with the call of `node`, a
    /// task with a policy, so that a retry runs that call again and nothing before it.
    BeforeCall { node: usize, state: S },
    /// Persist the state, wait on a durable timer of node `node` until `until`
    /// (`duration` after the step), then step again.
    Wait {
        node: usize,
        until: Timestamp,
        duration: Duration,
        state: S,
    },
    /// Persist the state, run the batch, then step again with its results.
    Children { state: S, batch: PendingBatch },
    /// Persist the state, waiting on a new callback of node `node` started now, then
    /// step again to send its token.
    Callback {
        node: usize,
        state: S,
        started: Timestamp,
        timeout: Duration,
        heartbeat: Option<Duration>,
    },
    /// The callback's token was sent (`Ok`) or could not be (`Err`): wait for the
    /// callback's resolution (a send that failed resolves it), then step again with it.
    /// Nothing to persist: `state` is the one that waits in the node already.
    CallbackSent {
        node: usize,
        state: S,
        sent: Result<(), String>,
    },
    /// Run the last persisted state's step again, after the retry's delay.
    Retry(Retry),
    /// The execution ends.
    End(End),
}

impl<S> Transition<S> {
    /// The same transition with its state, if it has one, handed to `keep`: what the
    /// driver, which holds the state apart from its type, goes on with.
    pub(crate) fn map_state<T>(self, keep: impl FnOnce(S) -> T) -> Transition<T> {
        match self {
            Transition::Continue(state) => Transition::Continue(keep(state)),
            Transition::BeforeCall { node, state } => Transition::BeforeCall {
                node,
                state: keep(state),
            },
            Transition::Wait {
                node,
                until,
                duration,
                state,
            } => Transition::Wait {
                node,
                until,
                duration,
                state: keep(state),
            },
            Transition::Children { state, batch } => Transition::Children {
                state: keep(state),
                batch,
            },
            Transition::Callback {
                node,
                state,
                started,
                timeout,
                heartbeat,
            } => Transition::Callback {
                node,
                state: keep(state),
                started,
                timeout,
                heartbeat,
            },
            Transition::CallbackSent { node, state, sent } => Transition::CallbackSent {
                node,
                state: keep(state),
                sent,
            },
            Transition::Retry(retry) => Transition::Retry(retry),
            Transition::End(end) => Transition::End(end),
        }
    }
}

/// How an execution ends, as a step decides it.
pub(crate) enum End {
    Succeeded(Json),
    Failed {
        /// The error's [name](WorkflowError::error_name).
        name: String,
        error: Json,
    },
    /// The runtime cannot go on.
    Faulted(Fault),
}

/// The transition a step ends with. `now` is when the step ended (a wait starts then, a
/// batch's timeout runs from then); `batches` counts the execution's batches so far and
/// is advanced when the step starts one.
pub(crate) fn transition<W: Workflow>(
    step: Step<W>,
    now: Timestamp,
    batches: &mut u64,
) -> Transition<W::State> {
    match step {
        Step::Continue(state) => Transition::Continue(state),
        Step::Task { node, state } => Transition::BeforeCall { node, state },
        Step::Retry(retry) => Transition::Retry(retry),
        Step::Wait {
            node,
            state,
            duration,
        } => Transition::Wait {
            node,
            until: now.after(duration),
            duration,
            state,
        },
        Step::Children { state, batch } => {
            if let Some(fault) = batch.fault {
                return Transition::End(End::Faulted(fault));
            }
            *batches += 1;
            let batch = PendingBatch {
                batch: *batches,
                node: batch.node,
                max_concurrency: batch.max_concurrency,
                calls: batch
                    .calls
                    .into_iter()
                    .map(|c| PendingChild {
                        workflow: c.workflow.to_owned(),
                        input: c.input,
                    })
                    .collect(),
                deadline: None,
            };
            Transition::Children {
                state,
                batch: with_deadline(W::graph(), batch, now),
            }
        }
        Step::Callback {
            node,
            state,
            timeout,
            heartbeat,
        } => Transition::Callback {
            node,
            state,
            started: now,
            timeout,
            heartbeat,
        },
        Step::CallbackSent { node, state, sent } => Transition::CallbackSent { node, state, sent },
        Step::Succeed(output) => Transition::End(End::Succeeded(to_payload(&output))),
        Step::Fail(error) => Transition::End(End::Failed {
            name: error.error_name().into_owned(),
            error: to_payload(&error),
        }),
        Step::Fault(fault) => Transition::End(End::Faulted(fault)),
    }
}

/// A batch run again by a `call_nested!`'s retry policy: the same calls as the next
/// batch (new child ids), its timeout running from `start`, when the retry's delay ends.
pub(crate) fn batch_again(
    graph: &StateGraph,
    batch: PendingBatch,
    batches: &mut u64,
    start: Timestamp,
) -> PendingBatch {
    *batches += 1;
    let batch = PendingBatch {
        batch: *batches,
        ..batch
    };
    with_deadline(graph, batch, start)
}

/// What a redriven execution waits for first, from what it waited for when it ended.
/// A timer goes on as it was. A batch is waited on again (the same one: the same child
/// ids), with its `#[timeout]` running from `now`, as the workflow's does. A callback
/// is waited on again, with its timeout from `now` (the same token: whoever has it can
/// still complete it). A retry's attempts start over, as Step Functions' do on a redrive: a task's retry runs its call
/// at once, a `call_nested!`'s waits on its batch.
pub(crate) fn wait_again(
    graph: &StateGraph,
    waiting: Option<Wait>,
    now: Timestamp,
) -> Option<Wait> {
    match waiting {
        Some(
            Wait::Children(batch)
            | Wait::Retry {
                batch: Some(batch), ..
            },
        ) => Some(Wait::Children(with_deadline(graph, batch, now))),
        Some(Wait::Retry { batch: None, .. }) => None,
        Some(Wait::Callback(callback)) => Some(Wait::Callback(callback.again(now))),
        waiting @ (Some(Wait::Timer { .. }) | None) => waiting,
    }
}

/// The batch's deadline: its node's `#[timeout]` after `start`.
fn with_deadline(graph: &StateGraph, batch: PendingBatch, start: Timestamp) -> PendingBatch {
    let timeout = graph.nodes.get(batch.node).and_then(|n| n.policy().timeout);
    PendingBatch {
        deadline: timeout.map(|t| start.after(t)),
        ..batch
    }
}
