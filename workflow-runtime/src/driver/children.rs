//! Running a batch of children: starting (or finding, after a restart) each child,
//! bounding concurrency, failing fast, and recording the parent's events.

use std::borrow::Cow;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::child::{ChildResult, ChildrenOutcome};
use crate::deps::Fault;
use crate::error::{StartError, StoreError};
use crate::execution::{ExecutionId, Outcome};
use crate::history::{Event, EventKind};
use crate::json::Json;
use crate::store::{PendingBatch, PendingChild};

use super::{Driver, Finished, Launch, ParentLink};

/// A finished child, reported to its parent's batch.
pub(crate) struct ChildDone {
    pub(super) index: usize,
    pub(super) id: ExecutionId,
    pub(super) outcome: Outcome,
    /// Whether the child wrote its `Child…` event into the parent's history with its
    /// terminal checkpoint (it does unless that checkpoint failed).
    pub(super) recorded: bool,
}

pub(crate) type Notify = Option<(mpsc::UnboundedSender<ChildDone>, usize)>;

impl Driver {
    /// Runs a batch of children to its outcome; cancelled, the execution ends.
    pub(super) async fn children_at(
        &self,
        node_name: &impl Fn(usize) -> Option<Cow<'static, str>>,
        batch: PendingBatch,
    ) -> Result<ChildrenOutcome, Finished> {
        if self.cancel.is_cancelled() {
            // Children that recovery or a redrive left for this batch would otherwise wait
            // for a parent that never comes; any of them may exist, so each is looked for.
            let ids = (0..batch.calls.len())
                .map(|i| child_id(&self.id, batch.batch, i))
                .collect();
            self.end_children(ids, true).await;
            return Err(self.finish(Outcome::Cancelled, Vec::new()).await);
        }
        let Some(node) = node_name(batch.node) else {
            let message = format!("child batch at unknown node {}", batch.node);
            return Err(self
                .finish(Outcome::Faulted(Fault::new(message)), Vec::new())
                .await);
        };
        let span = crate::telemetry::children_span(&node, batch.batch, batch.calls.len());
        // Boxed, as the rare retry: the driver's future (one per execution, held while
        // it waits) stays the size of its common path. Instrumented: each child's
        // execution span is a child of the batch's.
        let run =
            crate::telemetry::instrument(Box::pin(self.run_children(node, batch)), span.clone());
        match run.await {
            Some(outcome) => {
                span.record("workflow.children.failed", outcome.failure.is_some());
                Ok(outcome)
            }
            None => Err(self.finish(Outcome::Cancelled, Vec::new()).await),
        }
    }

    /// stored outcome taken), and only the ones never created are started.
    pub(super) async fn run_children(
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
        let child_id = |i: usize| child_id(&self.id, batch_no, i);
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
                        let outcome =
                            Outcome::Faulted(Fault::new(format!("child could not start: {e}")));
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
                    // The execution ends after its children: the ones started (one that
                    // no driver runs, parked, is marked cancelled), and the ones a restart
                    // left for calls not started yet.
                    let started = total - calls.len();
                    let running = (0..started)
                        .filter(|&i| results[i].is_none())
                        .map(child_id)
                        .collect();
                    self.end_children(running, true).await;
                    self.end_children(calls.map(|(i, _)| child_id(i)).collect(), false)
                        .await;
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
        self.end_children(calls.map(|(i, _)| child_id(i)).collect(), false)
            .await;
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
    pub(super) async fn start_child(
        &self,
        id: &ExecutionId,
        link: ParentLink,
        call: PendingChild,
        siblings: &CancellationToken,
        notify: Notify,
    ) -> ChildStart {
        // Left by recovery for this parent: resume it as part of this batch.
        if let Some(recovered) = self.rt.claim(id) {
            // Its end comes through `notify`.
            let _ = super::resume(&self.rt, recovered, siblings.child_token(), notify);
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
    pub(super) async fn attach(&self, id: &ExecutionId, notify: Notify) -> ChildStart {
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
                    Outcome::Faulted(Fault::new(format!("child `{id}` ended without an outcome")))
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

    pub(super) async fn append(&self, node: Cow<'static, str>, kind: EventKind) {
        let event = Event {
            at: self.rt.clock.now(),
            state: Some(node),
            kind,
        };
        if let Err(e) = self.rt.store.append(&self.id, vec![event]).await {
            super::checkpoint::store_error("append");
            tracing::error!(execution = %self.id, error = %e, "history append failed");
        }
    }
}

pub(super) enum ChildStart {
    /// Started or re-attached; its end will come through the batch's channel.
    Running,
    /// Existed already and has ended.
    Ended(Outcome),
    /// Could not be started.
    Refused(StartError),
}

/// The id of child `index` of the parent's batch `batch`: the same every time the parent
/// reaches that batch, so a resumed (or redriven) parent finds its children again.
pub(crate) fn child_id(parent: &ExecutionId, batch: u64, index: usize) -> ExecutionId {
    ExecutionId::from(format!("{parent}/{batch}.{index}"))
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
        Outcome::Faulted(fault) => EventKind::ChildFailed {
            child,
            error: Json::from(serde_json::Value::String(fault.to_string())),
        },
        Outcome::Cancelled => EventKind::ChildCancelled { child },
        Outcome::TimedOut => EventKind::ChildTimedOut { child },
    }
}
