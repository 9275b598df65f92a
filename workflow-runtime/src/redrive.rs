//! Running an execution that failed again, from its last checkpoint: [`Runtime::redrive`],
//! as Step Functions' `RedriveExecution`.
//!
//! An execution that ended stays stored at its last checkpoint: the terminal checkpoint
//! keeps the state, and what the execution waited for, of the one before it. A redrive
//! sets it running again there, under the same id and with the same history, and starts
//! its driver as [`Runtime::recover`] would: the step that failed runs again (its task
//! is called again), and nothing before it does.
//!
//! **Children.** A parent that ended on a batch of children (`call_nested!`) waits on
//! that batch again: the same batch number, so the same child ids. Each child of it that
//! did not succeed (failed, timed out, faulted, or cancelled when a sibling failed) is
//! redriven with it, and so on down (a child's own batch too); a child that succeeded
//! keeps its result and does not run again, and one never created is created as usual.
//! Only a top-level execution can be redriven: its children follow it.
//!
//! **One write.** The execution and every child redriven with it are set running in one
//! store write ([`Store::reopen`](crate::Store::reopen)), refused as a whole if any of
//! them changed since it was read. A crash at any point leaves either none of them
//! running or all of them, which [`Runtime::recover`] resumes like any unfinished
//! execution.
//!
//! **Time.** A redriven execution's workflow timeout, and the timeout of the batch it
//! waits on, count from the redrive (kept in the store, so after a restart too); the
//! attempts of a retry policy start over.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::driver::wait_done;
use crate::driver::{child_id, Erased, Inner, Redriving, Resume, Unresumable};
use crate::error::StoreError;
use crate::execution::{ExecutionId, Status};
use crate::history::{Event, EventKind};
use crate::runtime::Runtime;
use crate::store::{ExecutionRecord, PendingBatch, Reopen, Wait};
use crate::transition::wait_again;

/// What [`Runtime::redrive`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Redrive {
    /// The execution redriven.
    pub id: ExecutionId,
    /// How many times it has been redriven, this time included (from 1): its record's
    /// `redrives`, and the count of its `ExecutionRedriven` event.
    pub count: u32,
    /// The children redriven with it (parents before their children), each running again
    /// as part of its parent's batch.
    pub children: Vec<ExecutionId>,
}

/// Why [`Runtime::redrive`] refused an execution. Nothing was changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedriveError {
    /// There is no execution with this id.
    #[error("no execution with id `{id}`; nothing to redrive")]
    NotFound {
        /// The id asked for.
        id: ExecutionId,
    },
    /// Only an execution that `Failed`, `TimedOut` or `Faulted` can be redriven.
    #[error(
        "execution `{id}` is {status:?}, and only a Failed, TimedOut or Faulted execution \
         can be redriven: {}",
        why_not(.status)
    )]
    NotRedrivable {
        /// The execution.
        id: ExecutionId,
        /// Its status (`Running` for one running in this runtime).
        status: Status,
    },
    /// The execution is a child: children are redriven with their top-level execution.
    #[error(
        "execution `{id}` is a child of `{parent}`: children are redriven with their parent; \
         redrive the top-level execution `{top_level}`, which redrives every child that did \
         not succeed"
    )]
    Child {
        /// The child.
        id: ExecutionId,
        /// Its parent.
        parent: ExecutionId,
        /// The top-level execution it descends from.
        top_level: ExecutionId,
    },
    /// The execution's workflow (or a redriven child's) is not registered in this runtime.
    #[error(
        "execution `{id}` is of workflow `{workflow}`, which this runtime does not register: \
         register it (`Builder::register`) to redrive it"
    )]
    NotRegistered {
        /// The execution (the top-level one or a child to redrive with it).
        id: ExecutionId,
        /// Its workflow's name.
        workflow: String,
    },
    /// The registered definition of the workflow is not the one that wrote the execution.
    #[error(
        "execution `{id}` of workflow `{workflow}` was checkpointed by a definition with \
         fingerprint {stored:#018x}, but the registered `{workflow}` has fingerprint \
         {registered:#018x}: only the definition that wrote it can resume it. Register that \
         definition under this name (and the new one under another) to redrive it; if an \
         earlier version of the `workflow` crate stored it, build with that crate's \
         `legacy-fingerprints` feature"
    )]
    VersionMismatch {
        /// The execution (the top-level one or a child to redrive with it).
        id: ExecutionId,
        /// Its workflow's name.
        workflow: String,
        /// The fingerprint stored with the execution.
        stored: u64,
        /// The registered workflow's fingerprint.
        registered: u64,
    },
    /// The execution's stored state does not decode as its workflow's state.
    #[error("execution `{id}` cannot be redriven: {message}")]
    Corrupt {
        /// The execution (the top-level one or a child to redrive with it).
        id: ExecutionId,
        /// What does not decode.
        message: String,
    },
    /// The execution, or a child to redrive with it, changed while the redrive read it
    /// (another redrive came first, from another runtime on the same store).
    #[error(
        "execution `{id}` changed while it was being redriven (another redrive came first); \
         nothing was changed: read its status again before redriving it"
    )]
    Changed {
        /// The execution that changed.
        id: ExecutionId,
    },
    /// The store failed; nothing was changed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn why_not(status: &Status) -> &'static str {
    match status {
        Status::Running => {
            "it has not ended; wait for it (`Runtime::wait`), or resume it with \
             `Runtime::recover` if no runtime drives it"
        }
        Status::Succeeded => {
            "it succeeded, so there is nothing to run again; start a new execution"
        }
        Status::Cancelled => "a cancellation is final; start a new execution instead",
        Status::VersionMismatch => {
            "it is parked, not ended; register the definition that wrote it and call \
             `Runtime::recover`"
        }
        Status::Failed | Status::TimedOut | Status::Faulted => "it can",
    }
}

/// Whether a top-level execution in `status` can be redriven.
fn redrivable(status: Status) -> bool {
    matches!(status, Status::Failed | Status::TimedOut | Status::Faulted)
}

/// An execution the redrive will set running, checked and decoded.
struct Planned {
    record: ExecutionRecord,
    driver: Arc<dyn Erased>,
    state: Box<dyn crate::driver::Machine>,
}

impl Runtime {
    /// Runs a failed, timed-out or faulted top-level execution again from its last
    /// checkpoint, under the same id and with its history, as Step Functions'
    /// `RedriveExecution` does.
    ///
    /// The step that ended it runs again (its task is called again); nothing before it
    /// does. A parent that ended on a batch of children waits on that batch again: its
    /// children that did not succeed (failed, timed out, faulted, or cancelled when a
    /// sibling failed) are redriven with it, down to their own children; those that
    /// succeeded keep their results and do not run again. The execution and each of them
    /// get an [`ExecutionRedriven`](crate::EventKind::ExecutionRedriven) event and one
    /// more [`redrives`](crate::ExecutionRecord::redrives); the workflow's timeout counts
    /// from the redrive, and a retry policy's attempts start over. They are all set
    /// running in one store write, so a crash leaves either none of them or all of them
    /// running, which [`recover`](Self::recover) resumes. See the
    /// [`Redrive`]'s fields for what was redriven, and [`wait`](Self::wait) for the new end.
    ///
    /// Refused, with nothing changed, for an execution that is unknown, running,
    /// succeeded, cancelled or parked, for a child (redrive its top-level execution), and
    /// when the execution or a child to redrive with it is of a workflow this runtime does
    /// not register, was written by another definition, or does not decode: see
    /// [`RedriveError`].
    ///
    /// ```
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::sync::Arc;
    ///
    /// use serde::{Deserialize, Serialize};
    /// use workflow::prelude::*;
    /// use workflow::{Outcome, Status};
    ///
    /// #[derive(Debug, Serialize, Deserialize, WorkflowError)]
    /// enum PayError {
    ///     Down,
    /// }
    ///
    /// struct Bank {
    ///     up: AtomicBool,
    /// }
    ///
    /// impl Bank {
    ///     async fn pay(&self, cents: u64) -> Result<u64, PayError> {
    ///         if self.up.load(Ordering::SeqCst) {
    ///             Ok(cents)
    ///         } else {
    ///             Err(PayError::Down)
    ///         }
    ///     }
    /// }
    ///
    /// #[workflow]
    /// async fn pay(bank: &Bank, cents: u64) -> Result<u64, PayError> {
    ///     let paid: u64 = bank.pay(cents).await?;
    ///     Ok(paid)
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let bank = Arc::new(Bank { up: AtomicBool::new(false) });
    /// let runtime = Runtime::builder()
    ///     .register(pay)
    ///     .dependency_arc(Arc::clone(&bank))
    ///     .build()?;
    /// let id = runtime.start(pay, 250).await?.id().clone();
    /// assert!(matches!(runtime.wait(&id).await?, Outcome::Failed(_)));
    ///
    /// bank.up.store(true, Ordering::SeqCst); // the bank is back
    /// let redrive = runtime.redrive(&id).await?;
    /// assert_eq!(redrive.count, 1);
    /// assert_eq!(runtime.wait(&id).await?, Outcome::Succeeded(serde_json::json!(250).into()));
    /// let record = runtime.record(&id).await?;
    /// assert_eq!((record.status, record.redrives), (Status::Succeeded, 1));
    /// # Ok(()) }
    /// ```
    pub async fn redrive(&self, id: &ExecutionId) -> Result<Redrive, RedriveError> {
        let inner = self.inner();
        let record = inner
            .store
            .get(id)
            .await?
            .ok_or_else(|| RedriveError::NotFound { id: id.clone() })?;
        if let Some(parent) = record.parent {
            let top_level = id.as_str().split('/').next().unwrap_or_default().into();
            return Err(RedriveError::Child {
                id: record.id,
                parent,
                top_level,
            });
        }
        let running = || RedriveError::NotRedrivable {
            id: id.clone(),
            status: Status::Running,
        };
        let mut marked = Redriving::new(inner);
        // Checked after it is marked: an execution whose driver is reporting its end is
        // still live, and one a recovery left for later is in `recovered`.
        if !marked.mark(id) || inner.live().contains_key(id) || inner.recovered().contains_key(id) {
            return Err(running());
        }
        if !redrivable(record.status) {
            return Err(RedriveError::NotRedrivable {
                id: record.id,
                status: record.status,
            });
        }
        let mut plan = vec![planned(inner, record)?];
        let mut next = 0;
        while let Some(parent) = plan.get(next) {
            next += 1;
            let Some(batch) = pending_batch(parent.record.waiting.as_ref()) else {
                continue;
            };
            let (batch, calls) = (batch.batch, batch.calls.len());
            let parent = parent.record.id.clone();
            for index in 0..calls {
                let id = child_id(&parent, batch, index);
                let Some(child) = ended(inner, &id).await? else {
                    continue;
                };
                // A child still running or parked is left as it is: the batch waits for
                // it. One that succeeded gives its stored result.
                if !(redrivable(child.status) || child.status == Status::Cancelled) {
                    continue;
                }
                if !marked.mark(&id) {
                    return Err(running());
                }
                plan.push(planned(inner, child)?);
            }
        }

        // Read once every child to redrive has ended: the timeouts count from here.
        let now = inner.clock.now();
        let waiting: Vec<Option<Wait>> = plan
            .iter()
            .map(|p| wait_again(p.driver.graph(), p.record.waiting.clone(), now))
            .collect();
        let reopen: Vec<Reopen> = plan
            .iter()
            .zip(&waiting)
            .map(|(p, waiting)| {
                let count = p.record.redrives.saturating_add(1);
                Reopen {
                    id: p.record.id.clone(),
                    expected: p.record.status,
                    redrives: count,
                    waiting: waiting.clone(),
                    events: vec![Event {
                        at: now,
                        state: None,
                        kind: EventKind::ExecutionRedriven { count },
                    }],
                    at: now,
                }
            })
            .collect();
        inner.store.reopen(&reopen).await.map_err(|e| match e {
            StoreError::Changed(id) => RedriveError::Changed { id },
            e => RedriveError::Store(e),
        })?;

        let count = reopen[0].redrives;
        let mut plan = plan.into_iter().zip(waiting).map(|(p, waiting)| {
            let mut record = p.record;
            record.status = Status::Running;
            record.outcome = None;
            record.waiting = waiting;
            record.redrives = record.redrives.saturating_add(1);
            record.redriven_at = Some(now);
            Resume::of(&record, p.state)
        });
        let Some(resume) = plan.next() else {
            unreachable!("the plan starts with the execution")
        };
        // Children first, so that no parent's batch looks for one before it is there.
        let mut children = Vec::new();
        {
            let mut recovered = inner.recovered();
            for resume in plan {
                children.push(resume.id.clone());
                recovered.insert(resume.id.clone(), resume);
            }
        }
        let _ = crate::driver::resume(inner, resume, CancellationToken::new(), None);
        drop(marked);
        tracing::info!(execution = %id, count, children = children.len(), "redriven");
        Ok(Redrive {
            id: id.clone(),
            count,
            children,
        })
    }
}

/// Checks a stored execution against its registered workflow and decodes its state.
fn planned(inner: &Inner, record: ExecutionRecord) -> Result<Planned, RedriveError> {
    let Some(registration) = inner.workflows.get(record.workflow.as_str()) else {
        return Err(RedriveError::NotRegistered {
            id: record.id,
            workflow: record.workflow,
        });
    };
    let state = match registration.driver.decode(&record) {
        Ok(state) => state,
        Err(Unresumable::VersionMismatch { stored, registered }) => {
            return Err(RedriveError::VersionMismatch {
                id: record.id,
                workflow: record.workflow,
                stored,
                registered,
            })
        }
        Err(Unresumable::Corrupt(message)) => {
            return Err(RedriveError::Corrupt {
                id: record.id,
                message,
            })
        }
    };
    Ok(Planned {
        record,
        driver: Arc::clone(&registration.driver),
        state,
    })
}

/// The batch an ended execution waited on, if it did: the one a redrive waits on again.
fn pending_batch(waiting: Option<&Wait>) -> Option<&PendingBatch> {
    match waiting? {
        Wait::Children(batch)
        | Wait::Retry {
            batch: Some(batch), ..
        } => Some(batch),
        _ => None,
    }
}

/// Child `id` as stored, once it is not running here any more: a child whose parent
/// ended can still be live for a moment (its parent timed out, and it is being
/// cancelled), and is redriven once its end is recorded.
async fn ended(inner: &Inner, id: &ExecutionId) -> Result<Option<ExecutionRecord>, StoreError> {
    let live = inner.live().get(id).map(|l| l.done.clone());
    if let Some(done) = live {
        wait_done(done).await;
    }
    inner.store.get(id).await
}
