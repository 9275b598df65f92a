//! Launching, resuming and driving executions.
//!
//! A driver is one tokio task per execution: step, checkpoint, wait for what the step
//! asked for, repeat. Everything it needs to go on after a crash is in its checkpoint
//! (the state, the [`Wait`], the batch counter), so resuming is starting a driver from a
//! stored record instead of from an input.

use std::any::Any;
use std::borrow::Cow;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::child::{ChildResult, ChildrenOutcome};
use crate::context::StepCx;
use crate::error::{Payload, PayloadTooLarge, StartError, StoreError};
use crate::execution::{ExecutionId, Outcome, Status};
use crate::history::{Event, EventKind};
use crate::json::Json;
use crate::retry::Retry;
use crate::runtime::{Inner, Live};
use crate::store::{
    CallSite, Checkpoint, ExecutionRecord, PendingBatch, PendingChild, SavedState, Wait,
};
use crate::time::Timestamp;
use crate::transition::{batch_again, transition, End, Transition};
use crate::workflow::{BoxFuture, Workflow};

/// A finished child, reported to its parent's batch.
pub(crate) struct ChildDone {
    index: usize,
    id: ExecutionId,
    outcome: Outcome,
    /// Whether the child wrote its `Child…` event into the parent's history with its
    /// terminal checkpoint (it does unless that checkpoint failed).
    recorded: bool,
}

pub(crate) type Notify = Option<(mpsc::UnboundedSender<ChildDone>, usize)>;

/// Where a child hangs in its parent: the parent, and the call site.
#[derive(Clone)]
pub(crate) struct ParentLink {
    pub(crate) id: ExecutionId,
    pub(crate) node: Cow<'static, str>,
    pub(crate) batch: u64,
    pub(crate) index: usize,
}

/// A new execution to create and drive.
pub(crate) struct Launch {
    pub(crate) id: ExecutionId,
    pub(crate) parent: Option<ParentLink>,
    pub(crate) input: Json,
    pub(crate) cancel: CancellationToken,
    notify: Notify,
}

impl Launch {
    pub(crate) fn top_level(id: ExecutionId, input: Json) -> Self {
        Launch {
            id,
            parent: None,
            input,
            cancel: CancellationToken::new(),
            notify: None,
        }
    }
}

/// A stored execution ready to be driven again: its decoded state and where it was.
pub(crate) struct Resume {
    pub(crate) id: ExecutionId,
    /// The parent's node that started it, for the events it writes into its parent's
    /// history.
    pub(crate) parent_node: Option<Cow<'static, str>>,
    pub(crate) waiting: Option<Wait>,
    pub(crate) batches: u64,
    /// When it was created: its timeout counts from there.
    pub(crate) created_at: Timestamp,
    /// The decoded `W::State`, type-erased so the registry can hold it.
    pub(crate) state: Box<dyn Any + Send>,
}

impl Resume {
    pub(crate) fn of(record: &ExecutionRecord, state: Box<dyn Any + Send>) -> Self {
        Resume {
            id: record.id.clone(),
            parent_node: record
                .call_site
                .as_ref()
                .map(|site| Cow::Owned(site.node.clone())),
            waiting: record.waiting.clone(),
            batches: record.batches,
            created_at: record.created_at,
            state,
        }
    }
}

/// Why a stored execution cannot be resumed by the registered workflow.
pub(crate) enum Unresumable {
    VersionMismatch { stored: u64, registered: u64 },
    Corrupt(String),
}

/// The registry's view of a workflow type.
pub(crate) trait Erased: Send + Sync {
    /// Creates the execution and spawns its driver.
    fn launch<'a>(
        &'a self,
        rt: &'a Arc<Inner>,
        launch: Launch,
    ) -> BoxFuture<'a, Result<watch::Receiver<Option<Outcome>>, StartError>>;

    /// Checks a stored execution against this definition and decodes its state.
    fn decode(&self, record: &ExecutionRecord) -> Result<Box<dyn Any + Send>, Unresumable>;

    /// Spawns the driver of a decoded execution, from where its record left it.
    fn resume(
        &self,
        rt: &Arc<Inner>,
        resume: Resume,
        cancel: CancellationToken,
        notify: Notify,
    ) -> watch::Receiver<Option<Outcome>>;
}

pub(crate) struct Typed<W>(pub(crate) PhantomData<fn() -> W>);

impl<W: Workflow> Erased for Typed<W> {
    fn launch<'a>(
        &'a self,
        rt: &'a Arc<Inner>,
        launch: Launch,
    ) -> BoxFuture<'a, Result<watch::Receiver<Option<Outcome>>, StartError>> {
        Box::pin(async move {
            let input: W::Input =
                launch
                    .input
                    .decode()
                    .map_err(|source| StartError::InvalidInput {
                        workflow: W::NAME,
                        source,
                    })?;
            let too_large = |what, size| PayloadTooLarge {
                execution: launch.id.clone(),
                what,
                size,
                limit: rt.payload_limit,
            };
            let input_size = launch.input.as_str().len();
            if input_size > rt.payload_limit {
                return Err(too_large(Payload::Input, input_size).into());
            }
            let state = W::start(input);
            let bytes = serde_json::to_vec(&state).map_err(|source| StartError::InvalidInput {
                workflow: W::NAME,
                source,
            })?;
            if bytes.len() > rt.payload_limit {
                return Err(too_large(Payload::State, bytes.len()).into());
            }
            let now = rt.clock.now();
            let parent = launch.parent.clone();
            let started = Event {
                at: now,
                state: None,
                kind: EventKind::ExecutionStarted {
                    input: launch.input.clone(),
                    parent: parent.as_ref().map(|p| p.id.clone()),
                },
            };
            let parent_events = parent
                .iter()
                .map(|p| Event {
                    at: now,
                    state: Some(p.node.clone()),
                    kind: EventKind::ChildStarted {
                        child: launch.id.clone(),
                        workflow: W::NAME.to_owned(),
                    },
                })
                .collect();
            let record = ExecutionRecord {
                id: launch.id.clone(),
                workflow: W::NAME.to_owned(),
                fingerprint: W::FINGERPRINT,
                parent: parent.as_ref().map(|p| p.id.clone()),
                call_site: parent.as_ref().map(|p| CallSite {
                    node: p.node.clone().into_owned(),
                    batch: p.batch,
                    index: p.index,
                }),
                status: Status::Running,
                input: launch.input,
                state: bytes,
                waiting: None,
                batches: 0,
                outcome: None,
                wake_at: None,
                created_at: now,
                updated_at: now,
            };
            rt.store
                .create(record, vec![started], parent_events)
                .await?;
            let driver = Driver {
                rt: Arc::clone(rt),
                id: launch.id,
                cancel: launch.cancel,
                parent_node: parent.map(|p| p.node),
                deadline: deadline::<W>(now),
            };
            Ok(driver.spawn::<W>(state, None, 0, launch.notify))
        })
    }

    fn decode(&self, record: &ExecutionRecord) -> Result<Box<dyn Any + Send>, Unresumable> {
        if record.fingerprint != W::FINGERPRINT {
            return Err(Unresumable::VersionMismatch {
                stored: record.fingerprint,
                registered: W::FINGERPRINT,
            });
        }
        let state: W::State = serde_json::from_slice(&record.state).map_err(|e| {
            Unresumable::Corrupt(format!(
                "the stored state of execution `{}` does not decode as workflow `{}`'s state: {e}",
                record.id,
                W::NAME
            ))
        })?;
        Ok(Box::new(state))
    }

    fn resume(
        &self,
        rt: &Arc<Inner>,
        resume: Resume,
        cancel: CancellationToken,
        notify: Notify,
    ) -> watch::Receiver<Option<Outcome>> {
        let driver = Driver {
            rt: Arc::clone(rt),
            id: resume.id,
            cancel,
            parent_node: resume.parent_node,
            deadline: deadline::<W>(resume.created_at),
        };
        match resume.state.downcast::<W::State>() {
            Ok(state) => driver.spawn::<W>(*state, resume.waiting, resume.batches, notify),
            // `decode` of the same registration made the box: unreachable, but a fault
            // is the honest answer if it ever happens.
            Err(_) => {
                let (done, rx) = watch::channel(None);
                rt.spawn(async move {
                    let message = format!("state of `{}` has the wrong type", W::NAME);
                    let finished = driver.finish(Outcome::Faulted(message), Vec::new()).await;
                    driver.report(finished, done, notify);
                });
                rx
            }
        }
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
}

/// When an execution created at `created_at` times out.
fn deadline<W: Workflow>(created_at: Timestamp) -> Option<Timestamp> {
    W::graph().timeout.map(|t| created_at.after(t()))
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
    fn spawn<W: Workflow>(
        self,
        state: W::State,
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
        rt.spawn(async move {
            let finished = self.drive::<W>(state, waiting, batches).await;
            self.report(finished, done, notify);
        });
        rx
    }

    fn report(self, finished: Finished, done: watch::Sender<Option<Outcome>>, notify: Notify) {
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
    async fn drive<W: Workflow>(
        &self,
        state: W::State,
        waiting: Option<Wait>,
        batches: u64,
    ) -> Finished {
        let Some(deadline) = self.deadline else {
            return self.run::<W>(state, waiting, batches).await;
        };
        let remaining = deadline.since(self.rt.clock.now());
        let run = self.run::<W>(state, waiting, batches);
        tokio::select! {
            biased;
            finished = run => finished,
            () = tokio::time::sleep(remaining) => {
                self.cancel.cancel();
                self.finish(Outcome::TimedOut, Vec::new()).await
            }
        }
    }

    async fn run<W: Workflow>(
        &self,
        mut state: W::State,
        mut waiting: Option<Wait>,
        mut batches: u64,
    ) -> Finished {
        let graph = W::graph();
        let node_name = |node: usize| graph.nodes.get(node).map(|n| Cow::Borrowed(n.name));
        // Each step's events go into the previous step's vector, once it is written, as
        // each state is encoded into the previous one's buffer: a transition allocates
        // neither once the execution is under way.
        let mut carried: Vec<Event> = Vec::new();
        let mut children: Option<ChildrenOutcome> = None;
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
                    if let Err(finished) = self.sleep_until(until).await {
                        return finished;
                    }
                    carried.push(Event {
                        at: self.rt.clock.now(),
                        state: node_name(node),
                        kind: EventKind::WaitEnded,
                    });
                }
                Some(Wait::Retry {
                    until,
                    attempt,
                    batch,
                    ..
                }) => {
                    if let Err(finished) = self.sleep_until(until).await {
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
            }
            // 2. Step.
            let mut cx = StepCx::new(self.rt.clock, graph, children.take());
            cx.events = std::mem::take(&mut carried);
            cx.retries = retries;
            // As in `checkpoint`: the step first, so that one that completes at once
            // costs no cancellation waiter; a cancellation still interrupts its calls.
            let step = if self.cancel.is_cancelled() {
                None
            } else {
                tokio::select! {
                    biased;
                    step = W::step(state, &self.rt.deps, &mut cx) => Some(step),
                    () = self.cancel.cancelled() => None,
                }
            };
            let mut events = cx.events;
            let Some(step) = step else {
                return self.finish(Outcome::Cancelled, events).await;
            };
            // 3. Checkpoint what comes next. One reading of the clock serves the
            // transition: its wait's start, its deadlines and the checkpoint's time.
            let now = self.rt.clock.now();
            let next = match transition::<W>(step, now, &mut batches) {
                Transition::Continue(next) | Transition::BeforeCall { state: next, .. } => next,
                Transition::Retry(retry) => {
                    // The step consumed its state: the retry runs the checkpointed one again.
                    match Box::pin(self.checkpoint_retry::<W>(retry, &mut batches, events)).await {
                        Ok((again, wait)) => {
                            state = again;
                            waiting = Some(wait);
                            continue;
                        }
                        Err(finished) => return finished,
                    }
                }
                Transition::Wait {
                    node,
                    until,
                    state: next,
                    ..
                } => {
                    events.push(Event {
                        at: now,
                        state: node_name(node),
                        kind: EventKind::WaitStarted { until },
                    });
                    waiting = Some(Wait::Timer { node, until });
                    next
                }
                Transition::Children { state: next, batch } => {
                    waiting = Some(Wait::Children(batch));
                    next
                }
                Transition::End(End::Succeeded(output)) => {
                    return self.finish(Outcome::Succeeded(output), events).await;
                }
                Transition::End(End::Failed { name, error }) => {
                    let outcome = Outcome::Failed(error);
                    return Box::pin(self.finish_named(outcome, events, Some(name))).await;
                }
                Transition::End(End::Faulted(message)) => {
                    return self.finish(Outcome::Faulted(message), events).await;
                }
            };
            if let Err(message) = encode::<W>(&next, &mut buffer) {
                return self.finish(Outcome::Faulted(message), events).await;
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
            state = next;
        }
    }

    /// Runs a batch of children to its outcome; cancelled, the execution ends.
    async fn children_at(
        &self,
        node_name: &impl Fn(usize) -> Option<Cow<'static, str>>,
        batch: PendingBatch,
    ) -> Result<ChildrenOutcome, Finished> {
        if self.cancel.is_cancelled() {
            return Err(self.finish(Outcome::Cancelled, Vec::new()).await);
        }
        let Some(node) = node_name(batch.node) else {
            let message = format!("child batch at unknown node {}", batch.node);
            return Err(self.finish(Outcome::Faulted(message), Vec::new()).await);
        };
        // Boxed, as the rare retry: the driver's future (one per execution, held while
        // it waits) stays the size of its common path.
        match Box::pin(self.run_children(node, batch)).await {
            Some(outcome) => Ok(outcome),
            None => Err(self.finish(Outcome::Cancelled, Vec::new()).await),
        }
    }

    /// Waits for a durable timer, from its persisted deadline: a restart fires a due
    /// timer at once.
    async fn sleep_until(&self, until: Timestamp) -> Result<(), Finished> {
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

    /// Checkpoints a retry's wait: the last checkpointed state again (read back from the
    /// store, as the step consumed it), now waiting for the retry's delay.
    async fn checkpoint_retry<W: Workflow>(
        &self,
        retry: Retry,
        batches: &mut u64,
        events: Vec<Event>,
    ) -> Result<(W::State, Wait), Finished> {
        let (bytes, waited) = match self.rt.store.get(&self.id).await {
            Ok(Some(record)) => (record.state, record.waiting),
            Ok(None) => {
                let message = format!("execution {} disappeared from the store", self.id);
                return Err(self.finish(Outcome::Faulted(message), events).await);
            }
            Err(e) => {
                let message = format!("cannot read the state to retry: {e}");
                return Err(self.finish(Outcome::Faulted(message), events).await);
            }
        };
        let state: W::State = match serde_json::from_slice(&bytes) {
            Ok(state) => state,
            Err(e) => {
                let message = format!("the checkpointed state does not decode: {e}");
                return Err(self.finish(Outcome::Faulted(message), events).await);
            }
        };
        let until = self.rt.clock.now().after(retry.delay);
        // A `call_nested!` retries its whole batch: the same calls, as a new batch.
        let batch = match waited {
            Some(Wait::Children(b) | Wait::Retry { batch: Some(b), .. }) => {
                Some(batch_again(W::graph(), b, batches, until))
            }
            _ => None,
        };
        let wait = Wait::Retry {
            node: retry.node,
            until,
            attempt: retry.attempt,
            batch,
        };
        let saved = SavedState {
            bytes,
            waiting: Some(wait.clone()),
            batches: *batches,
        };
        self.checkpoint(saved, events, self.rt.clock.now()).await?;
        Ok((state, wait))
    }

    /// Persists a non-terminal state. An oversized state faults the execution (nothing
    /// of it is written); a transient store failure is retried with backoff until it
    /// succeeds or the execution is cancelled, so a full disk pauses the execution at
    /// its previous checkpoint instead of failing it.
    ///
    /// Hands back the state's buffer and the events, written, for the next step to reuse.
    async fn checkpoint(
        &self,
        saved: SavedState,
        events: Vec<Event>,
        at: Timestamp,
    ) -> Result<(Vec<u8>, Vec<Event>), Finished> {
        let limit = self.rt.payload_limit;
        if saved.bytes.len() > limit {
            let error = PayloadTooLarge {
                execution: self.id.clone(),
                what: Payload::State,
                size: saved.bytes.len(),
                limit,
            };
            tracing::error!(execution = %self.id, %error, "checkpoint refused");
            return Err(self
                .finish(Outcome::Faulted(error.to_string()), events)
                .await);
        }
        let checkpoint = Checkpoint {
            id: self.id.clone(),
            status: Status::Running,
            state: Some(saved),
            outcome: None,
            events,
            parent_events: Vec::new(),
            at,
        };
        // The step that led here checked for a cancellation just before, with no await
        // since. The write is polled first: most complete on their first poll, which
        // then costs no cancellation waiter; one that waits can still be cancelled.
        let result = tokio::select! {
            biased;
            result = self.persist(&checkpoint) => result,
            () = self.cancel.cancelled() => {
                return Err(self.finish(Outcome::Cancelled, Vec::new()).await);
            }
        };
        match result {
            Ok(()) => Ok((
                checkpoint
                    .state
                    .map(|saved| saved.bytes)
                    .unwrap_or_default(),
                checkpoint.events,
            )),
            Err(e) => {
                tracing::error!(execution = %self.id, error = %e, "checkpoint failed");
                let message = format!("checkpoint failed: {e}");
                Err(self.finish(Outcome::Faulted(message), Vec::new()).await)
            }
        }
    }

    /// Writes a checkpoint, retrying transient failures with exponential backoff.
    async fn persist(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        let mut pause = RETRY_FIRST;
        loop {
            match self.rt.store.checkpoint(checkpoint).await {
                Err(e) if e.is_transient() => {
                    tracing::warn!(
                        execution = %self.id, error = %e, retry_in = ?pause,
                        "checkpoint not written; retrying"
                    );
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(RETRY_MAX);
                }
                result => return result,
            }
        }
    }

    /// Writes the terminal checkpoint, with the parent's `Child…` event for a child.
    async fn finish(&self, outcome: Outcome, events: Vec<Event>) -> Finished {
        // Boxed: an execution ends once, and the many places that can end it would
        // otherwise each carry this future's state inline in the driver's.
        Box::pin(self.finish_named(outcome, events, None)).await
    }

    /// [`finish`](Self::finish), with the name of a failure's error for its event.
    async fn finish_named(
        &self,
        outcome: Outcome,
        mut events: Vec<Event>,
        name: Option<String>,
    ) -> Finished {
        let kind = match &outcome {
            Outcome::Succeeded(output) => EventKind::ExecutionSucceeded {
                output: output.clone(),
            },
            Outcome::Failed(error) => EventKind::ExecutionFailed {
                error: error.clone(),
                name,
            },
            Outcome::Cancelled => EventKind::ExecutionCancelled,
            Outcome::TimedOut => EventKind::ExecutionTimedOut,
            Outcome::Faulted(message) => EventKind::ExecutionFaulted {
                message: message.clone(),
            },
        };
        let at = self.rt.clock.now();
        events.push(Event {
            at,
            state: None,
            kind,
        });
        let parent_events = self
            .parent_node
            .iter()
            .map(|node| Event {
                at,
                state: Some(node.clone()),
                kind: child_event(&self.id, &outcome),
            })
            .collect();
        let checkpoint = Checkpoint {
            id: self.id.clone(),
            status: Status::of(&outcome),
            state: None,
            outcome: Some(outcome),
            events,
            parent_events,
            at,
        };
        let result = self.persist(&checkpoint).await;
        // The outcome is taken back from the checkpoint rather than copied into it.
        let Some(outcome) = checkpoint.outcome else {
            unreachable!("set above")
        };
        match result {
            Ok(()) => Finished {
                outcome,
                recorded: true,
            },
            // Someone recorded an end first (a durable cancel): that end is the truth.
            Err(StoreError::Ended(_)) => match self.rt.store.get(&self.id).await {
                Ok(Some(ExecutionRecord {
                    outcome: Some(stored),
                    ..
                })) => Finished {
                    outcome: stored,
                    recorded: true,
                },
                _ => Finished {
                    outcome,
                    recorded: false,
                },
            },
            Err(e) => {
                tracing::error!(execution = %self.id, error = %e, "terminal checkpoint failed");
                Finished {
                    outcome: Outcome::Faulted(format!("terminal checkpoint failed: {e}")),
                    recorded: false,
                }
            }
        }
    }

    /// Runs a batch of children: at most `max_concurrency` at once, results in input
    /// order, and fail-fast (the first failure cancels the running siblings and no new
    /// child starts). `None` if this execution itself was cancelled meanwhile.
    ///
    /// Each child is looked for before it is created: after a restart, children that
    /// exist already are re-attached (resumed with this batch as their parent, or their
    /// stored outcome taken), and only the ones never created are started.
    async fn run_children(
        &self,
        node: Cow<'static, str>,
        batch: PendingBatch,
    ) -> Option<ChildrenOutcome> {
        let total = batch.calls.len();
        let limit = batch.max_concurrency.unwrap_or(total).max(1);
        let siblings = self.cancel.child_token();
        let (tx, mut rx) = mpsc::unbounded_channel::<ChildDone>();
        // Deterministic ids: the n-th batch of a parent always names its children the same
        // way, so a resumed parent finds them instead of starting more.
        let batch_no = batch.batch;
        let child_id = |i: usize| ExecutionId::from(format!("{}/{batch_no}.{i}", self.id));
        let mut results: Vec<Option<ChildResult>> = vec![None; total];
        let mut calls = batch.calls.into_iter().enumerate();
        let mut running = 0usize;
        let mut failure = None;
        let mut timed_out = false;
        // From the persisted deadline, so a restart keeps the batch's timeout.
        let deadline = batch.deadline.map(|d| d.since(self.rt.clock.now()));
        let expired = async {
            match deadline {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(expired);
        loop {
            while failure.is_none() && !timed_out && running < limit {
                let Some((i, call)) = calls.next() else { break };
                let link = ParentLink {
                    id: self.id.clone(),
                    node: node.clone(),
                    batch: batch_no,
                    index: i,
                };
                let id = child_id(i);
                let notify = Some((tx.clone(), i));
                let outcome = match self.start_child(&id, link, call, &siblings, notify).await {
                    ChildStart::Running => {
                        running += 1;
                        continue;
                    }
                    ChildStart::Ended(outcome) => outcome,
                    ChildStart::Refused(e) => {
                        let outcome = Outcome::Faulted(format!("child could not start: {e}"));
                        self.append(node.clone(), child_event(&id, &outcome)).await;
                        outcome
                    }
                };
                if !outcome.is_success() && failure.is_none() {
                    failure = Some(i);
                    siblings.cancel();
                }
                results[i] = Some(ChildResult { id, outcome });
            }
            if running == 0 {
                break;
            }
            let done = tokio::select! {
                biased;
                () = self.cancel.cancelled() => {
                    for (i, _) in calls {
                        self.rt.cancel_unclaimed(&child_id(i));
                    }
                    return None;
                }
                () = &mut expired, if !timed_out => {
                    // The running children end as cancelled and are reported timed out.
                    timed_out = true;
                    siblings.cancel();
                    continue;
                }
                done = rx.recv() => done?,
            };
            running -= 1;
            if !done.recorded {
                self.append(node.clone(), child_event(&done.id, &done.outcome))
                    .await;
            }
            if !done.outcome.is_success() && failure.is_none() {
                failure = Some(done.index);
                siblings.cancel();
            }
            results[done.index] = Some(ChildResult {
                id: done.id,
                outcome: done.outcome,
            });
        }
        // Children a failure kept from starting. One created before a restart and waiting
        // for this batch is cancelled for good, so it does not linger unfinished.
        for (i, _) in calls {
            self.rt.cancel_unclaimed(&child_id(i));
        }
        let results = results
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                let mut r = r.unwrap_or_else(|| ChildResult {
                    id: child_id(i),
                    outcome: Outcome::Cancelled,
                });
                // To the parent, what the batch's timeout stopped timed out.
                if timed_out && r.outcome == Outcome::Cancelled {
                    r.outcome = Outcome::TimedOut;
                }
                r
            })
            .collect();
        Some(ChildrenOutcome { results, failure })
    }

    /// Starts child `id`, or re-attaches it if it exists already.
    async fn start_child(
        &self,
        id: &ExecutionId,
        link: ParentLink,
        call: PendingChild,
        siblings: &CancellationToken,
        notify: Notify,
    ) -> ChildStart {
        // Left by recovery for this parent: resume it as part of this batch.
        if let Some(recovered) = self.rt.claim(id) {
            recovered.resume(&self.rt, siblings.child_token(), notify);
            return ChildStart::Running;
        }
        let launch = Launch {
            id: id.clone(),
            parent: Some(link),
            input: call.input,
            cancel: siblings.child_token(),
            notify,
        };
        let notify = launch.notify.clone();
        match self.rt.launch(&call.workflow, launch).await {
            Ok(_) => ChildStart::Running,
            Err(StartError::Store(StoreError::AlreadyExists(_))) => self.attach(id, notify).await,
            Err(e) => ChildStart::Refused(e),
        }
    }

    /// A child that exists already: take its outcome, or wait for it.
    async fn attach(&self, id: &ExecutionId, notify: Notify) -> ChildStart {
        let live = self.rt.live().get(id).map(|l| l.done.clone());
        if let Some(mut done) = live {
            // Driven here already (recovered on its own): forward its end to this batch.
            let id = id.clone();
            self.rt.spawn(async move {
                let Ok(outcome) = done.wait_for(Option::is_some).await.map(|o| o.clone()) else {
                    return;
                };
                if let (Some(outcome), Some((tx, index))) = (outcome, notify) {
                    let _ = tx.send(ChildDone {
                        index,
                        id,
                        outcome,
                        recorded: true,
                    });
                }
            });
            return ChildStart::Running;
        }
        match self.rt.store.get(id).await {
            Ok(Some(record)) if record.status.is_terminal() => {
                ChildStart::Ended(record.outcome.unwrap_or_else(|| {
                    Outcome::Faulted(format!("child `{id}` ended without an outcome"))
                }))
            }
            Ok(Some(record)) => {
                // Parked, or of a workflow this runtime cannot resume: the batch waits
                // for it, and a later `recover` with the right definition resumes it.
                tracing::warn!(
                    execution = %self.id, child = %id, status = ?record.status,
                    "waiting for a child this runtime cannot resume"
                );
                ChildStart::Running
            }
            Ok(None) => ChildStart::Refused(StartError::Store(StoreError::NotFound(id.clone()))),
            Err(e) => ChildStart::Refused(StartError::Store(e)),
        }
    }

    async fn append(&self, node: Cow<'static, str>, kind: EventKind) {
        let event = Event {
            at: self.rt.clock.now(),
            state: Some(node),
            kind,
        };
        if let Err(e) = self.rt.store.append(&self.id, vec![event]).await {
            tracing::error!(execution = %self.id, error = %e, "history append failed");
        }
    }
}

enum ChildStart {
    /// Started or re-attached; its end will come through the batch's channel.
    Running,
    /// Existed already and has ended.
    Ended(Outcome),
    /// Could not be started.
    Refused(StartError),
}

/// The event a parent's history gets when a child ends this way.
pub(crate) fn child_event(child: &ExecutionId, outcome: &Outcome) -> EventKind {
    let child = child.clone();
    match outcome {
        Outcome::Succeeded(_) => EventKind::ChildSucceeded { child },
        Outcome::Failed(error) => EventKind::ChildFailed {
            child,
            error: error.clone(),
        },
        Outcome::Faulted(message) => EventKind::ChildFailed {
            child,
            error: Json::from(serde_json::Value::String(message.clone())),
        },
        Outcome::Cancelled => EventKind::ChildCancelled { child },
        Outcome::TimedOut => EventKind::ChildTimedOut { child },
    }
}

/// Serializes a state for a checkpoint. Done synchronously, before the store is awaited,
/// so that drivers do not hold `&W::State` across an await (which would require the
/// user's state types to be `Sync`).
fn encode<W: Workflow>(state: &W::State, buffer: &mut Vec<u8>) -> Result<(), String> {
    buffer.clear();
    serde_json::to_writer(&mut *buffer, state)
        .map_err(|e| format!("state of workflow `{}` does not serialize: {e}", W::NAME))
}
