//! Launching, resuming and driving executions.
//!
//! A driver is one tokio task per execution: step, checkpoint, wait for what the step
//! asked for, repeat. Everything it needs to go on after a crash is in its checkpoint
//! (the state, the [`Wait`], the batch counter), so resuming is starting a driver from a
//! stored record instead of from an input.
//!
//! What follows a step is decided by [`transition`](crate::transition); the driver only
//! carries it out. This file holds the step loop; `machine` the execution's typed part
//! (its state, its step, its encoding) behind a vtable, so that the rest is compiled
//! once and not once per workflow; `launch` the entry points (start from an input,
//! resume from a record), `checkpoint` the writes (with retries of
//! transient store errors, and the terminal one), `children` the batches of children.

mod callback;
mod cancel;
mod checkpoint;
mod children;
mod launch;
mod machine;
mod shared;

use std::any::Any;
use std::borrow::Cow;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use opentelemetry::KeyValue;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::Span;

use crate::callback::{CallbackError, CallbackResolution, CallbackStep, PendingCallback};
use crate::child::ChildrenOutcome;
use crate::context::StepCx;
use crate::deps::Fault;
use crate::execution::{ExecutionId, Outcome, Status};
use crate::graph::StateGraph;
use crate::history::{Event, EventKind};
use crate::store::{CallbackChange, SavedState, Wait};
use crate::telemetry::{self, metrics};
use crate::time::Timestamp;
use crate::transition::{End, Transition};
use crate::workflow::Workflow;

pub(crate) use cancel::wait_done;
pub(crate) use children::{child_event, child_id, ChildDone, Notify};
pub(crate) use launch::{resume, Erased, Launch, ParentLink, Resume, Typed, Unresumable};
use machine::Held;
pub(crate) use machine::Machine;
pub(crate) use shared::{CallbackWaiter, Inner, Live, Redriving, Registration};

/// The runtime's view of the registered workflows: a type-erased driver each.
pub(crate) struct Drivers;

impl crate::registry::View for Drivers {
    type Of = Arc<dyn Erased>;
    fn of<W: Workflow>() -> Arc<dyn Erased> {
        Arc::new(Typed::<W>(std::marker::PhantomData))
    }
}

/// How an execution ended, and whether that end is in the store.
pub(crate) struct Finished {
    outcome: Outcome,
    recorded: bool,
}

/// Drives one execution: step, checkpoint, wait for what the step asked for, repeat.
pub(crate) struct Driver {
    rt: Arc<Inner>,
    id: ExecutionId,
    cancel: CancellationToken,
    parent_node: Option<Cow<'static, str>>,
    /// When the execution times out, if its workflow has a timeout.
    deadline: Option<Timestamp>,
    /// This run's `workflow.execution` span: its steps', waits' and batches' parent.
    span: Span,
}

/// When an execution of a workflow with `graph`, created (or redriven) at `started_at`,
/// times out.
fn deadline(graph: &StateGraph, started_at: Timestamp) -> Option<Timestamp> {
    graph.timeout.map(|t| started_at.after(t()))
}

/// The state buffer a driver starts with: room for most states, so that encoding the
/// first one does not grow it several times.
const FIRST_BUFFER: usize = 256;

/// The largest state buffer a driver keeps for its next state.
const KEPT_BUFFER: usize = 16 * 1024;

/// The most transitions a driver makes in a row without yielding to other tasks. A
/// memory store's write never waits, and neither does a task that answers at once, so a
/// loop of such tasks would otherwise hold its worker thread, and the timers due on it,
/// until the loop ends. Polls never reach it: their waits yield.
const UNBROKEN_TRANSITIONS: u32 = 128;

/// How long a checkpoint that failed transiently waits before the first retry, and at
/// most between retries.
const RETRY_FIRST: Duration = Duration::from_millis(10);
const RETRY_MAX: Duration = Duration::from_secs(5);

impl Driver {
    /// Registers the execution as live and spawns its driver task.
    pub(super) fn spawn(
        self,
        machine: Box<dyn Machine>,
        waiting: Option<Wait>,
        batches: u64,
        notify: Notify,
    ) -> watch::Receiver<Option<Outcome>> {
        let (done, rx) = watch::channel(None);
        self.rt.live().insert(
            self.id.clone(),
            Live {
                cancel: self.cancel.clone(),
                done: rx.clone(),
            },
        );
        let rt = Arc::clone(&self.rt);
        let span = self.span.clone();
        let name = machine.name();
        metrics().in_flight.add(1, &telemetry::workflow(name));
        let driven = async move {
            let drive = AssertUnwindSafe(self.drive(machine, waiting, batches));
            let panicked = |payload: Box<dyn Any + Send>| Fault::panic(name, &*payload);
            let finished = match drive.catch_unwind().await.map_err(panicked) {
                Ok(finished) => finished,
                Err(fault) => self.panicked(fault).await,
            };
            let workflow = telemetry::workflow(name);
            let status = Status::of(&finished.outcome);
            let metrics = metrics();
            metrics.in_flight.add(-1, &workflow);
            let [name] = workflow;
            metrics.ended.add(
                1,
                &[name, KeyValue::new("workflow.status", status.as_str())],
            );
            telemetry::execution_ended(&self.span, &finished.outcome);
            self.report(finished, done, notify);
        };
        rt.spawn(telemetry::instrument(driven, span));
        rx
    }

    /// Ends an execution whose code panicked (a task, a predicate, the code between
    /// yield points): it faults with [`Fault::PANIC`], its children are cancelled, and
    /// its parent gets the fault as any child failure. What the panicking step did is
    /// lost with it; the execution's last checkpoint is still in the store.
    ///
    /// Nothing the driver holds can be left half-changed by the unwind: the state was
    /// moved into the step, and the step's events and results die with it.
    ///
    /// Whatever happens while recording it, the driver reports an end, so that neither
    /// `wait` nor a parent waits for an execution no task drives.
    async fn panicked(&self, fault: Fault) -> Finished {
        tracing::error!(execution = %self.id, %fault, "workflow panicked");
        self.cancel.cancel();
        let outcome = Outcome::Faulted(fault);
        let finish = AssertUnwindSafe(self.finish(outcome.clone(), Vec::new()));
        finish.catch_unwind().await.unwrap_or(Finished {
            outcome,
            recorded: false,
        })
    }

    pub(super) fn report(
        self,
        finished: Finished,
        done: watch::Sender<Option<Outcome>>,
        notify: Notify,
    ) {
        self.rt.live().remove(&self.id);
        if let Some((tx, index)) = notify {
            // The parent may have been cancelled and gone; then nobody needs the result.
            let _ = tx.send(ChildDone {
                index,
                id: self.id.clone(),
                outcome: finished.outcome.clone(),
                recorded: finished.recorded,
            });
        }
        done.send_replace(Some(finished.outcome));
    }

    /// Drives the execution to its end, or to its timeout: then whatever it was doing
    /// is dropped (a step's call is cancelled) and its children are cancelled.
    pub(super) async fn drive(
        &self,
        machine: Box<dyn Machine>,
        waiting: Option<Wait>,
        batches: u64,
    ) -> Finished {
        let Some(deadline) = self.deadline else {
            return self.run(machine, waiting, batches).await;
        };
        let remaining = deadline.since(self.rt.clock.now());
        let run = self.run(machine, waiting, batches);
        tokio::select! {
            biased;
            finished = run => finished,
            () = tokio::time::sleep(remaining) => {
                self.cancel.cancel();
                // The batch it waited on, if any, is gone with `run`: its children are
                // found among the executions running here, and end before it.
                self.end_children(self.rt.live_children(&self.id), false).await;
                self.finish(Outcome::TimedOut, Vec::new()).await
            }
        }
    }

    pub(super) async fn run(
        &self,
        mut machine: Box<dyn Machine>,
        mut waiting: Option<Wait>,
        mut batches: u64,
    ) -> Finished {
        let graph = machine.graph();
        let name = machine.name();
        let node_name = |node: usize| graph.nodes.get(node).map(|n| Cow::Borrowed(n.name));
        // Each step's events go into the previous step's vector, once it is written, as
        // each state is encoded into the previous one's buffer: a transition allocates
        // neither once the execution is under way.
        let mut carried: Vec<Event> = Vec::new();
        let mut children: Option<ChildrenOutcome> = None;
        // The callback the execution waits on: what its step gets, the driver's
        // registration for its changes, and the callback as it was when the step began.
        let mut callback: Option<CallbackStep> = None;
        let mut waiter: Option<CallbackWaiter> = None;
        let mut pending: Option<PendingCallback> = None;
        let mut buffer = Vec::with_capacity(FIRST_BUFFER);
        let mut unbroken = 0;
        loop {
            // 1. Wait for what the last checkpoint said (after a restart too).
            let mut retries = 0;
            // Every wait yields, a due one too (`sleep_until`), so it ends a run.
            unbroken = if waiting.is_some() { 0 } else { unbroken + 1 };
            if unbroken == UNBROKEN_TRANSITIONS {
                unbroken = 0;
                tokio::task::yield_now().await;
            }
            match waiting.take() {
                None => {}
                Some(Wait::Timer { node, until }) => {
                    let span = self.wait_span(node_name(node), "timer", until);
                    if let Err(finished) = self.sleep_until(until, span).await {
                        return finished;
                    }
                    carried.push(Event {
                        at: self.rt.clock.now(),
                        state: node_name(node),
                        kind: EventKind::WaitEnded,
                    });
                }
                Some(Wait::Retry {
                    node,
                    until,
                    attempt,
                    batch,
                }) => {
                    let span = self.wait_span(node_name(node), "retry", until);
                    if let Err(finished) = self.sleep_until(until, span).await {
                        return finished;
                    }
                    retries = attempt;
                    if let Some(batch) = batch {
                        match self.children_at(&node_name, batch).await {
                            Ok(outcome) => children = Some(outcome),
                            Err(finished) => return finished,
                        }
                    }
                }
                Some(Wait::Children(batch)) => match self.children_at(&node_name, batch).await {
                    Ok(outcome) => children = Some(outcome),
                    Err(finished) => return finished,
                },
                Some(Wait::Callback(waited)) => {
                    match Box::pin(self.callback_at(graph, waited, &mut waiter)).await {
                        Ok((step, waited)) => {
                            if matches!(step, CallbackStep::Resolved(_)) {
                                waiter = None;
                            }
                            callback = Some(step);
                            pending = Some(waited);
                        }
                        Err(finished) => return finished,
                    }
                }
            }
            // 2. Step.
            let mut cx = StepCx::new(self.rt.clock, graph, children.take());
            cx.events = std::mem::take(&mut carried);
            cx.retries = retries;
            cx.callback = callback.take();
            // As in `checkpoint`: the step first, so that one that completes at once
            // costs no cancellation waiter; a cancellation still interrupts its calls.
            let step = if self.cancel.is_cancelled() {
                None
            } else {
                let span = telemetry::step_span(graph, machine.node());
                metrics().transitions.add(1, &telemetry::workflow(name));
                let step = machine.step(&self.rt.deps, &mut cx, self.rt.clock, &mut batches);
                tokio::select! {
                    biased;
                    step = telemetry::instrument(step, span) => Some(step),
                    () = self.cancel.cancelled() => None,
                }
            };
            let mut events = cx.events;
            // 3. Checkpoint what comes next. One reading of the clock, when the step
            // ended, serves the transition (its wait's start, its deadlines) and the
            // checkpoint's time. The next state, if any, is in `machine`.
            let Some((transition, now)) = step else {
                return self.finish(Outcome::Cancelled, events).await;
            };
            match transition {
                Transition::Continue(()) | Transition::BeforeCall { .. } => {}
                Transition::Retry(retry) => {
                    // The step consumed its state: the retry runs the checkpointed one again.
                    match Box::pin(self.checkpoint_retry(
                        &mut *machine,
                        retry,
                        &mut batches,
                        events,
                    ))
                    .await
                    {
                        Ok(wait) => {
                            waiting = Some(wait);
                            continue;
                        }
                        Err(finished) => return finished,
                    }
                }
                Transition::Wait { node, until, .. } => {
                    events.push(Event {
                        at: now,
                        state: node_name(node),
                        kind: EventKind::WaitStarted { until },
                    });
                    waiting = Some(Wait::Timer { node, until });
                }
                Transition::Children { batch, .. } => {
                    waiting = Some(Wait::Children(batch));
                }
                Transition::Callback {
                    node,
                    started,
                    timeout,
                    heartbeat,
                    ..
                } => {
                    // Its id and secret are drawn here, and checkpointed with the state
                    // before the next step sends the token.
                    let new = match PendingCallback::new(node, started, timeout, heartbeat) {
                        Ok(new) => new,
                        Err(fault) => return self.finish(Outcome::Faulted(fault), events).await,
                    };
                    events.push(Event {
                        at: now,
                        state: node_name(node),
                        kind: EventKind::CallbackStarted {
                            callback: new.id.clone(),
                            timeout,
                            heartbeat,
                        },
                    });
                    waiting = Some(Wait::Callback(new));
                }
                Transition::CallbackSent { node, sent, .. } => {
                    let Some(sent_for) = pending.take().filter(|p| p.node == node) else {
                        let message = format!(
                            "a callback's token was sent at node {node}, which waits on none"
                        );
                        return self
                            .finish(Outcome::Faulted(Fault::new(message)), events)
                            .await;
                    };
                    // Nothing to checkpoint: the state is the one stored with the callback.
                    // The store's callback is changed instead, and what it holds then
                    // (a resolution that came meanwhile, too) is what the execution
                    // waits for.
                    let change = match sent {
                        Ok(()) => CallbackChange::Sent,
                        Err(message) => {
                            events.push(Event {
                                at: now,
                                state: node_name(node),
                                kind: EventKind::CallbackFailed {
                                    callback: sent_for.id.clone(),
                                    error: CallbackError::NOT_SENT.to_owned(),
                                    cause: message.clone(),
                                },
                            });
                            CallbackChange::Resolve(CallbackResolution::NotSent { message })
                        }
                    };
                    match Box::pin(self.update_callback(&sent_for, change, events)).await {
                        Ok(stored) => waiting = Some(Wait::Callback(stored)),
                        Err(finished) => return finished,
                    }
                    continue;
                }
                Transition::End(End::Succeeded(output)) => {
                    return self.finish(Outcome::Succeeded(output), events).await;
                }
                Transition::End(End::Failed { name, error }) => {
                    let outcome = Outcome::Failed(error);
                    return Box::pin(self.finish_named(outcome, events, Some(name))).await;
                }
                Transition::End(End::Faulted(fault)) => {
                    return self.finish(Outcome::Faulted(fault), events).await;
                }
            };
            if let Err(message) = machine.encode(&mut buffer) {
                return self
                    .finish(Outcome::Faulted(Fault::new(message)), events)
                    .await;
            }
            let saved = SavedState {
                bytes: std::mem::take(&mut buffer),
                waiting: waiting.clone(),
                batches,
            };
            match self.checkpoint(saved, events, now).await {
                Ok((written, mut events)) => {
                    // Up to a size: a waiting execution that once had a large state
                    // should not hold that much memory until its next step.
                    if written.capacity() <= KEPT_BUFFER {
                        buffer = written;
                    }
                    events.clear();
                    carried = events;
                }
                Err(finished) => return finished,
            }
        }
    }

    /// The span of a wait on a durable timer of node `name` until `until`.
    fn wait_span(
        &self,
        name: Option<Cow<'static, str>>,
        kind: &'static str,
        until: Timestamp,
    ) -> Span {
        if !telemetry::on() {
            return Span::none();
        }
        let remaining = until.since(self.rt.clock.now());
        telemetry::wait_span(name.as_deref(), kind, remaining)
    }

    /// Waits for a durable timer, from its persisted deadline: a restart fires a due
    /// timer at once. `span` is the wait's: it ends with the lateness of the wake-up.
    pub(super) async fn sleep_until(&self, until: Timestamp, span: Span) -> Result<(), Finished> {
        telemetry::instrument(self.sleep_until_inner(until), span.clone()).await?;
        let lateness = self.rt.clock.now().since(until);
        if !span.is_none() {
            span.record("workflow.wait.lateness_us", lateness.as_micros() as u64);
        }
        metrics().timer_lateness.record(lateness.as_secs_f64(), &[]);
        Ok(())
    }

    async fn sleep_until_inner(&self, until: Timestamp) -> Result<(), Finished> {
        let remaining = until.since(self.rt.clock.now());
        if remaining.is_zero() {
            // A due timer (a zero wait, or one that fell due during a restart) skips
            // tokio's timer wheel, which would hold it until its next millisecond tick;
            // yielding keeps such a loop fair to other tasks. What comes next (a step,
            // a batch of children) checks for a cancellation before it does anything.
            tokio::task::yield_now().await;
        } else {
            tokio::select! {
                biased;
                () = self.cancel.cancelled() => {
                    return Err(self.finish(Outcome::Cancelled, Vec::new()).await);
                }
                () = tokio::time::sleep(remaining) => {}
            }
        }
        Ok(())
    }
}
