//! Resuming what a previous process left unfinished.
//!
//! [`Runtime::recover`] reads every execution of the store that has not ended and, for
//! each one whose workflow is registered:
//!
//! 1. checks the stored definition fingerprint against the registered workflow's
//!    [`Workflow::FINGERPRINT`](crate::Workflow::FINGERPRINT); on a mismatch the execution
//!    is *parked* ([`Status::VersionMismatch`]) with its state and history untouched;
//! 2. decodes its state; a state that does not decode fails that execution (status
//!    `Faulted`, an error naming it), and only that one;
//! 3. starts a driver from where the last checkpoint left it: a timer is awaited until
//!    its stored `wake_at` (a due one fires at once), a batch of children is re-linked
//!    (see below), a callback is waited on again (its token sent again only if it had
//!    not been, a completion that came meanwhile taken, a passed deadline timing it out
//!    at once), and an execution that was running a step runs that step again.
//!
//! **At-least-once tasks.** A checkpoint is written after each yield point, so a crash
//! loses at most the step in flight: its task (the awaited call) runs again on recovery.
//! State transitions are exactly-once: a step's effects on the state and its history
//! events are committed together or not at all.
//!
//! **Children.** A parent that was waiting on a batch resumes waiting on the same batch
//! (its number is in the checkpoint, so the children's ids come out the same). Children
//! that exist are re-attached: a finished one gives its stored result, an unfinished one
//! is resumed by the parent's batch (within its concurrency limit), and only the ones
//! never created are started. An unfinished child whose parent has ended is cancelled; one
//! whose parent cannot be resumed here (parked, unregistered) runs on its own, and its
//! parent finds its result later.
//!
//! **Untouched.** Executions of a workflow this runtime does not register are left as
//! they are and listed in the [`RecoveryReport`]. Executions that have ended are not
//! resumed: [`Runtime::redrive`] runs a failed one again.
//!
//! # Upgrading a workflow
//!
//! The fingerprint changes when a workflow's state graph or state types change. A
//! persisted state is only resumed by a definition with the same fingerprint, so an
//! upgrade never guesses how an old state maps onto new code:
//!
//! - **Drain**: stop starting the old version, wait until
//!   `runtime.list(ExecutionFilter::new().workflow("Name").status(Status::Running))`
//!   lists none, then deploy the new one.
//! - **Side by side**: keep the old definition under its name and give the new one a new
//!   name (`#[workflow(name = "Name.v2")]`); register both. New executions start the new
//!   one, old ones finish with the old one; delete the old code once none is left.
//! - **Parked by mistake**: if a new definition was deployed under the old name, its old
//!   executions are parked, not lost. Deploy the old definition under that name again (and
//!   the new one under another) and the next `recover` resumes them.

use std::collections::{HashMap, HashSet};
use std::fmt;

use tokio_util::sync::CancellationToken;

use crate::deps::Fault;
use crate::driver::{Inner, Resume, Unresumable};
use crate::error::{CorruptRow, StoreError};
use crate::execution::{ExecutionId, Outcome, Status};
use crate::runtime::Runtime;
use crate::store::{Checkpoint, ExecutionRecord, Wait};

/// What [`Runtime::recover`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// Executions resumed, top-level and children alike, oldest first.
    pub resumed: Vec<ExecutionId>,
    /// Of those, how many were running a step: it runs again (its task is re-run).
    pub in_flight: usize,
    /// Of those, how many waited on a timer that is due: it fires at once.
    pub timers_due: usize,
    /// Of those, how many waited on a timer that is not due yet: it is re-armed.
    pub timers_armed: usize,
    /// Of those, how many waited on children: they wait for the same children again.
    pub waiting_on_children: usize,
    /// Of those, how many waited on a callback: they wait for it again (one whose
    /// deadline passed times out at once, one resolved meanwhile goes on).
    pub waiting_on_callbacks: usize,
    /// Of those, children whose parent had ended: they are cancelled (and recorded so).
    pub cancelled: Vec<ExecutionId>,
    /// Executions of workflows this runtime does not register: left untouched.
    pub unregistered: Vec<Unregistered>,
    /// Executions parked with [`Status::VersionMismatch`].
    pub parked: Vec<VersionMismatch>,
    /// Executions whose stored row or state does not decode: failed (`Faulted`).
    pub failed: Vec<CorruptExecution>,
}

/// An execution of a workflow the runtime does not register.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unregistered {
    /// The execution.
    pub id: ExecutionId,
    /// Its workflow's name.
    pub workflow: String,
}

/// A stored execution was written by another definition of its workflow.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "execution `{id}` of workflow `{workflow}` was checkpointed by a definition with \
     fingerprint {stored:#018x}, but the registered `{workflow}` has fingerprint \
     {registered:#018x}; it is parked (status VersionMismatch) with its data untouched. \
     Register the old definition under this name (and the new one under another) to \
     finish it; if an earlier version of the `workflow` crate stored it, build with that \
     crate's `legacy-fingerprints` feature"
)]
pub struct VersionMismatch {
    /// The execution.
    pub id: ExecutionId,
    /// Its workflow's name.
    pub workflow: String,
    /// The fingerprint stored with the execution.
    pub stored: u64,
    /// The registered workflow's fingerprint.
    pub registered: u64,
}

/// A stored execution that does not decode; it was failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("execution `{id}` cannot be resumed: {message}")]
pub struct CorruptExecution {
    /// The execution.
    pub id: ExecutionId,
    /// What does not decode.
    pub message: String,
}

impl fmt::Display for RecoveryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == RecoveryReport::default() {
            return f.write_str("nothing to resume");
        }
        // Only the parts that are not zero, for a line a person reads.
        let counts = |parts: &[(usize, &str)]| {
            parts
                .iter()
                .filter(|(n, _)| *n > 0)
                .map(|(n, what)| format!("{n} {what}"))
                .collect::<Vec<_>>()
        };
        write!(f, "resumed {} executions", self.resumed.len())?;
        let how = counts(&[
            (self.in_flight, "re-running a step"),
            (self.timers_due, "due timers fired"),
            (self.timers_armed, "timers re-armed"),
            (self.waiting_on_children, "waiting on children"),
            (self.waiting_on_callbacks, "waiting on callbacks"),
            (self.cancelled.len(), "cancelled with their parent"),
        ]);
        if !how.is_empty() {
            write!(f, " ({})", how.join(", "))?;
        }
        for part in counts(&[
            (self.parked.len(), "parked (version mismatch)"),
            (
                self.unregistered.len(),
                "of unregistered workflows left untouched",
            ),
            (self.failed.len(), "failed (corrupted)"),
        ]) {
            write!(f, "; {part}")?;
        }
        Ok(())
    }
}

struct Ready {
    record: ExecutionRecord,
    resume: Resume,
}

impl Runtime {
    /// Resumes every unfinished execution of the store: the async half of opening a
    /// runtime on an existing file. Call it once after [`Builder::build`](crate::Builder::build)
    /// (starting new executions before or after is fine: their ids are new).
    ///
    /// Due timers fire at once, future ones are re-armed, parents waiting on children
    /// wait for the same children (creating only the ones never created), and steps that
    /// were in flight run again: **tasks are at-least-once**. Executions of unregistered
    /// workflows are left untouched, executions written by a definition with another
    /// fingerprint are parked, and an execution whose state does not decode is failed;
    /// the report lists them all. Executions already running in this runtime are skipped,
    /// so calling it again is harmless. The [crate docs](crate#upgrading-a-workflow)
    /// describe the upgrade path.
    ///
    /// Fails only if the store cannot be read.
    pub async fn recover(&self) -> Result<RecoveryReport, StoreError> {
        let inner = self.inner();
        let rows = inner.store.unfinished().await?;
        let now = inner.clock.now();
        let mut report = RecoveryReport::default();
        let mut ready: Vec<Ready> = Vec::new();
        for row in rows {
            let record = match row {
                Ok(record) => record,
                Err(CorruptRow { id, message }) => {
                    inner.end_stored(&id, fault(&message), None).await?;
                    report.failed.push(CorruptExecution { id, message });
                    continue;
                }
            };
            if inner.live().contains_key(&record.id)
                || inner.recovered().contains_key(&record.id)
                || inner.is_redriving(&record.id)
            {
                continue;
            }
            let Some(registration) = inner.workflows.get(record.workflow.as_str()) else {
                report.unregistered.push(Unregistered {
                    id: record.id,
                    workflow: record.workflow,
                });
                continue;
            };
            match registration.driver.decode(&record) {
                Ok(state) => ready.push(Ready {
                    resume: Resume::of(&record, state),
                    record,
                }),
                Err(Unresumable::VersionMismatch { stored, registered }) => {
                    if record.status != Status::VersionMismatch {
                        inner
                            .set_status(&record.id, Status::VersionMismatch)
                            .await?;
                    }
                    let mismatch = VersionMismatch {
                        id: record.id,
                        workflow: record.workflow,
                        stored,
                        registered,
                    };
                    tracing::warn!(error = %mismatch, "execution parked");
                    report.parked.push(mismatch);
                }
                Err(Unresumable::Corrupt(message)) => {
                    tracing::error!(execution = %record.id, %message, "execution failed");
                    let node = record.call_site.as_ref().map(|s| s.node.clone());
                    inner.end_stored(&record.id, fault(&message), node).await?;
                    report.failed.push(CorruptExecution {
                        id: record.id,
                        message,
                    });
                }
            }
        }

        // A parent resuming on a batch resumes that batch's children itself, as part of
        // the batch (concurrency limit, fail-fast, results in order).
        let waiting_batches: HashMap<ExecutionId, u64> = ready
            .iter()
            .filter_map(|r| match &r.record.waiting {
                Some(
                    Wait::Children(batch)
                    | Wait::Retry {
                        batch: Some(batch), ..
                    },
                ) => Some((r.record.id.clone(), batch.batch)),
                _ => None,
            })
            .collect();
        let ready_ids: HashSet<ExecutionId> = ready.iter().map(|r| r.record.id.clone()).collect();
        let mut claimed = Vec::new();
        let mut roots = Vec::new();
        for r in ready {
            match &r.record.waiting {
                None => report.in_flight += 1,
                Some(Wait::Timer { until, .. } | Wait::Retry { until, .. }) if *until <= now => {
                    report.timers_due += 1;
                }
                Some(Wait::Timer { .. } | Wait::Retry { .. }) => report.timers_armed += 1,
                Some(Wait::Children(_)) => report.waiting_on_children += 1,
                Some(Wait::Callback(_)) => report.waiting_on_callbacks += 1,
            }
            report.resumed.push(r.record.id.clone());
            if r.record.status == Status::VersionMismatch {
                // Un-parked: a definition with its fingerprint is registered again.
                inner.set_status(&r.record.id, Status::Running).await?;
            }
            let by_parent = match (&r.record.parent, &r.record.call_site) {
                (Some(parent), Some(site)) => waiting_batches.get(parent) == Some(&site.batch),
                _ => false,
            };
            if by_parent {
                claimed.push(r);
                continue;
            }
            let parent_ended = match &r.record.parent {
                Some(parent) if !ready_ids.contains(parent) => inner
                    .store
                    .get(parent)
                    .await?
                    .is_some_and(|p| p.status.is_terminal()),
                _ => false,
            };
            roots.push((r, parent_ended));
        }
        // Children first, so that no resumed parent looks for one before it is there.
        {
            let mut recovered = inner.recovered();
            for r in claimed {
                recovered.insert(r.record.id, r.resume);
            }
        }
        for (r, parent_ended) in roots {
            let cancel = CancellationToken::new();
            if parent_ended {
                // Its result can never be used; its driver records the cancellation.
                cancel.cancel();
                report.cancelled.push(r.record.id.clone());
            }
            let _ = crate::driver::resume(inner, r.resume, cancel, None);
        }
        if report != RecoveryReport::default() {
            tracing::info!(%report, "recovered");
        }
        Ok(report)
    }
}

fn fault(message: &str) -> Outcome {
    Outcome::Faulted(Fault::new(message))
}

impl Inner {
    /// Changes only the status (parking and un-parking): state, history, timers stay.
    async fn set_status(&self, id: &ExecutionId, status: Status) -> Result<(), StoreError> {
        let checkpoint = Checkpoint {
            id: id.clone(),
            status,
            state: None,
            outcome: None,
            events: Vec::new(),
            parent_events: Vec::new(),
            at: self.clock.now(),
        };
        self.store.checkpoint(&checkpoint).await
    }
}
