//! Waiting on a callback: the step that sends its token, then its resolution, its
//! heartbeats and its deadlines (see the `callback` module for the whole protocol).

use crate::callback::{CallbackResolution, CallbackStep, CallbackToken, PendingCallback, Resolved};
use crate::deps::Fault;
use crate::error::StoreError;
use crate::execution::Outcome;
use crate::graph::StateGraph;
use crate::history::{Event, EventKind};
use crate::store::{CallbackChange, CallbackUpdate, Wait};

use super::{CallbackWaiter, Driver, Finished, RETRY_FIRST, RETRY_MAX};

impl Driver {
    /// What the step of `callback` gets: its token to send, until it is sent; then, once
    /// the callback is resolved, its resolution. Meanwhile it waits for the changes a
    /// completion, a failure or a heartbeat writes, and resolves the callback as timed
    /// out when a deadline comes first (unless a resolution wins the race in the store).
    ///
    /// `waiter` is the driver's registration for those changes, made here before the
    /// token can be out and dropped by the caller once the callback is resolved. Returns
    /// the callback as it was when the step was decided.
    pub(super) async fn callback_at(
        &self,
        graph: &'static StateGraph,
        mut callback: PendingCallback,
        waiter: &mut Option<CallbackWaiter>,
    ) -> Result<(CallbackStep, PendingCallback), Finished> {
        let waiter = waiter.get_or_insert_with(|| CallbackWaiter::register(&self.rt, &self.id));
        loop {
            if let Some(resolution) = callback.resolution.clone() {
                let resolved = Resolved {
                    resolution,
                    timeout: callback.timeout,
                    heartbeat: callback.heartbeat,
                    node: graph.nodes.get(callback.node).map_or("?", |n| n.name),
                };
                return Ok((CallbackStep::Resolved(resolved), callback));
            }
            if !callback.sent {
                // Registered before the token goes out: every change made with it reaches
                // the waiter (and the store's answer to `Sent` has the others).
                waiter.fresh = true;
                let token = CallbackToken::native(&self.id, &callback);
                return Ok((CallbackStep::Send(token), callback));
            }
            if !waiter.fresh {
                // Resumed after a restart (or a redrive) with the token out: a change
                // written before the registration is only in the store.
                waiter.fresh = true;
                callback = self.stored_callback(&callback).await?;
                continue;
            }
            let Some((due, timed_out)) = callback.due() else {
                continue;
            };
            let remaining = due.since(self.rt.clock.now());
            tokio::select! {
                biased;
                () = self.cancel.cancelled() => {
                    return Err(self.finish(Outcome::Cancelled, Vec::new()).await);
                }
                Some(change) = waiter.changes.recv() => {
                    if change.id == callback.id {
                        callback = change;
                    }
                }
                () = tokio::time::sleep(remaining) => {
                    let heartbeat = timed_out == CallbackResolution::HeartbeatTimedOut;
                    let event = Event {
                        at: self.rt.clock.now(),
                        state: graph.nodes.get(callback.node).map(|n| n.name.into()),
                        kind: EventKind::CallbackTimedOut {
                            callback: callback.id.clone(),
                            heartbeat,
                        },
                    };
                    let change = CallbackChange::Resolve(timed_out);
                    callback = self.update_callback(&callback, change, vec![event]).await?;
                }
            }
        }
    }

    /// Writes a change to `callback` (its token sent, or a resolution the driver decided)
    /// with its events, and returns the callback as stored after it. A resolution that
    /// lost the race (someone resolved the callback first) gives the stored one. A
    /// transient store failure is retried, as a checkpoint's is.
    pub(super) async fn update_callback(
        &self,
        callback: &PendingCallback,
        change: CallbackChange,
        events: Vec<Event>,
    ) -> Result<PendingCallback, Finished> {
        let update = CallbackUpdate {
            id: self.id.clone(),
            callback: callback.id.clone(),
            secret: callback.secret.clone(),
            change,
            events,
            at: self.rt.clock.now(),
        };
        let mut pause = RETRY_FIRST;
        loop {
            match self.rt.store.callback(&update).await {
                Ok(stored) => return Ok(stored),
                Err(StoreError::CallbackResolved { .. }) => {
                    return self.stored_callback(callback).await;
                }
                Err(e) if e.is_transient() => {
                    tracing::warn!(execution = %self.id, error = %e, retry_in = ?pause, "callback not written; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(RETRY_MAX);
                }
                // Someone recorded an end first (a durable cancel): `finish` reads it.
                Err(StoreError::Ended(_)) => {
                    return Err(self.finish(Outcome::Cancelled, Vec::new()).await);
                }
                Err(e) => {
                    let message = format!("callback `{}` could not be written: {e}", callback.id);
                    return Err(self.fault(message).await);
                }
            }
        }
    }

    /// `callback` as the store holds it now.
    async fn stored_callback(
        &self,
        callback: &PendingCallback,
    ) -> Result<PendingCallback, Finished> {
        let record = match self.rt.store.get(&self.id).await {
            Ok(Some(record)) => record,
            Ok(None) => {
                let message = format!("execution {} disappeared from the store", self.id);
                return Err(self.fault(message).await);
            }
            Err(e) => {
                let message = format!("cannot read callback `{}`: {e}", callback.id);
                return Err(self.fault(message).await);
            }
        };
        match record.waiting {
            Some(Wait::Callback(stored)) if stored.id == callback.id => Ok(stored),
            _ if record.status.is_terminal() => {
                Err(self.finish(Outcome::Cancelled, Vec::new()).await)
            }
            _ => {
                let message = format!(
                    "the store no longer has callback `{}` as what the execution waits on",
                    callback.id
                );
                Err(self.fault(message).await)
            }
        }
    }

    async fn fault(&self, message: String) -> Finished {
        tracing::error!(execution = %self.id, %message, "callback failed");
        self.finish(Outcome::Faulted(Fault::new(message)), Vec::new())
            .await
    }
}
