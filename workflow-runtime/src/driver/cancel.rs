//! Cancelling: an execution, and what runs below it.
//!
//! A cancelled execution ends after its children, and they after theirs: its driver
//! cancels the children of the batch it waits on and waits for each to end before it
//! reports its own end. So when [`Inner::cancel`] returns (and when a cancelled
//! execution's result is there), every execution below it has a terminal status in the
//! store, as `Runtime::tree` shows it.

use std::sync::Arc;

use tokio::sync::watch;

use super::{child_event, Driver, Inner};
use crate::error::StoreError;
use crate::execution::{ExecutionId, Outcome, Status};
use crate::history::{Event, EventKind};
use crate::store::Checkpoint;
use crate::workflow::BoxFuture;

/// Waits for the end an execution's driver reports; `None` if the runtime stopped first.
pub(crate) async fn wait_done(mut done: watch::Receiver<Option<Outcome>>) -> Option<Outcome> {
    done.wait_for(Option::is_some).await.ok()?.clone()
}

impl Inner {
    /// Cancels execution `id` and everything below it, and waits until all of them have
    /// ended. `false` if it had ended already (or ended otherwise meanwhile).
    ///
    /// A running execution stops at its next yield point. One that is not running here
    /// (parked, of a workflow this runtime does not register, or not recovered yet) is
    /// marked cancelled directly, and so are its unfinished children.
    pub(crate) fn cancel<'a>(
        self: &'a Arc<Self>,
        id: &'a ExecutionId,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let live = self
                .live()
                .get(id)
                .map(|l| (l.cancel.clone(), l.done.clone()));
            let done = match live {
                Some((token, done)) => {
                    token.cancel();
                    Some(done)
                }
                None => self.cancel_unclaimed(id),
            };
            if let Some(done) = done {
                // Its driver reports its end once its children have ended.
                return Ok(match wait_done(done).await {
                    Some(outcome) => outcome == Outcome::Cancelled,
                    None => true,
                });
            }
            let Some(record) = self.store.get(id).await? else {
                return Err(StoreError::NotFound(id.clone()));
            };
            if record.status.is_terminal() {
                return Ok(false);
            }
            let node = record.call_site.map(|site| site.node);
            if !self.end_stored(id, Outcome::Cancelled, node).await? {
                // It ended meanwhile.
                return Ok(false);
            }
            for child in self.store.children(id).await? {
                self.cancel(&child).await?;
            }
            Ok(true)
        })
    }

    /// The executions running here whose parent is `id`.
    pub(crate) fn live_children(&self, id: &ExecutionId) -> Vec<ExecutionId> {
        let prefix = format!("{id}/");
        self.live()
            .keys()
            .filter(|k| {
                k.as_str()
                    .strip_prefix(&prefix)
                    .is_some_and(|rest| !rest.contains('/'))
            })
            .cloned()
            .collect()
    }

    /// Records the end of an execution no driver runs, with the parent's event if its
    /// call site is known. `false` if it had ended already.
    pub(crate) async fn end_stored(
        &self,
        id: &ExecutionId,
        outcome: Outcome,
        parent_node: Option<String>,
    ) -> Result<bool, StoreError> {
        let at = self.clock.now();
        let kind = match &outcome {
            Outcome::Cancelled => EventKind::ExecutionCancelled,
            Outcome::TimedOut => EventKind::ExecutionTimedOut,
            Outcome::Faulted(fault) => EventKind::faulted(fault),
            Outcome::Succeeded(output) => EventKind::ExecutionSucceeded {
                output: output.clone(),
            },
            Outcome::Failed(error) => EventKind::ExecutionFailed {
                error: error.clone(),
                name: None,
            },
        };
        let parent_events = parent_node
            .into_iter()
            .map(|node| Event {
                at,
                state: Some(node.into()),
                kind: child_event(id, &outcome),
            })
            .collect();
        let checkpoint = Checkpoint {
            id: id.clone(),
            status: Status::of(&outcome),
            state: None,
            outcome: Some(outcome),
            events: vec![Event {
                at,
                state: None,
                kind,
            }],
            parent_events,
            at,
        };
        match self.store.checkpoint(&checkpoint).await {
            Ok(()) => Ok(true),
            Err(StoreError::Ended(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

impl Driver {
    /// Cancels the children `ids` of this execution and waits until each of them has
    /// ended, with what runs below it: whether the batch started it (its token is the
    /// batch's), a restart left it to this batch, or it runs on its own since a restart.
    /// With `stored`, a child that no driver runs here (parked, or of a workflow this
    /// runtime does not register) is marked cancelled in the store, with its children;
    /// without, only the ones this runtime drives are waited for.
    pub(super) async fn end_children(&self, ids: Vec<ExecutionId>, stored: bool) {
        let mut waits = Vec::new();
        for id in ids {
            let live = self
                .rt
                .live()
                .get(&id)
                .map(|l| (l.cancel.clone(), l.done.clone()));
            if let Some((token, done)) = live {
                token.cancel();
                waits.push(done);
            } else if let Some(done) = self.rt.cancel_unclaimed(&id) {
                waits.push(done);
            } else if stored {
                match self.rt.cancel(&id).await {
                    Ok(_) | Err(StoreError::NotFound(_)) => {}
                    Err(e) => {
                        tracing::warn!(execution = %self.id, child = %id, error = %e, "could not cancel a child");
                    }
                }
            }
        }
        for done in waits {
            wait_done(done).await;
        }
    }
}
