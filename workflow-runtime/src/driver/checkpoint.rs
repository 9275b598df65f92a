//! Writing what a step decided: checkpoints (with retries of transient store errors),
//! a retry's checkpoint, and the terminal one.

use crate::deps::Fault;
use crate::error::{Payload, PayloadTooLarge, StoreError};
use crate::execution::{Outcome, Status};
use crate::history::{Event, EventKind};
use crate::retry::Retry;
use crate::store::{Checkpoint, ExecutionRecord, SavedState, Wait};
use crate::time::Timestamp;
use crate::transition::batch_again;

use super::{child_event, Driver, Finished, Machine, RETRY_FIRST, RETRY_MAX};

/// Counts a failed store operation.
pub(super) fn store_error(operation: &'static str) {
    let operation = opentelemetry::KeyValue::new("workflow.store.operation", operation);
    crate::telemetry::metrics()
        .store_errors
        .add(1, &[operation]);
}

/// How long a checkpoint may keep failing transiently before its execution logs an error.
const STALLED: std::time::Duration = std::time::Duration::from_secs(30);

impl Driver {
    /// Checkpoints a retry's wait: the last checkpointed state again (read back from the
    /// store, as the step consumed it), now waiting for the retry's delay.
    pub(super) async fn checkpoint_retry(
        &self,
        machine: &mut dyn Machine,
        retry: Retry,
        batches: &mut u64,
        events: Vec<Event>,
    ) -> Result<Wait, Finished> {
        let (bytes, waited) = match self.rt.store.get(&self.id).await {
            Ok(Some(record)) => (record.state, record.waiting),
            Ok(None) => {
                let message = format!("execution {} disappeared from the store", self.id);
                return Err(self
                    .finish(Outcome::Faulted(Fault::new(message)), events)
                    .await);
            }
            Err(e) => {
                let message = format!("cannot read the state to retry: {e}");
                return Err(self
                    .finish(Outcome::Faulted(Fault::new(message)), events)
                    .await);
            }
        };
        if let Err(message) = machine.decode(&bytes) {
            return Err(self
                .finish(Outcome::Faulted(Fault::new(message)), events)
                .await);
        }
        let until = self.rt.clock.now().after(retry.delay);
        // A `call_nested!` retries its whole batch: the same calls, as a new batch.
        let batch = match waited {
            Some(Wait::Children(b) | Wait::Retry { batch: Some(b), .. }) => {
                Some(batch_again(machine.graph(), b, batches, until))
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
        Ok(wait)
    }

    /// Persists a non-terminal state. An oversized state faults the execution (nothing
    /// of it is written); a transient store failure is retried with backoff until it
    /// succeeds or the execution is cancelled, so a full disk pauses the execution at
    /// its previous checkpoint instead of failing it.
    ///
    /// Hands back the state's buffer and the events, written, for the next step to reuse.
    pub(super) async fn checkpoint(
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
                .finish(Outcome::Faulted(Fault::new(error.to_string())), events)
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
                Err(self
                    .finish(Outcome::Faulted(Fault::new(message)), Vec::new())
                    .await)
            }
        }
    }

    /// Writes a checkpoint, retrying transient failures with exponential backoff.
    ///
    /// Any other error is returned at once: a store that is broken
    /// ([`StoreError::Broken`]) answers every write with it, so retrying would only hang
    /// the execution. A transient failure is logged as a warning when it starts, and as
    /// an error once this checkpoint has waited [`STALLED`]: a runtime whose executions
    /// are paused stays silent for a bounded time, not forever.
    pub(super) async fn persist(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        let mut pause = RETRY_FIRST;
        let started = tokio::time::Instant::now();
        let mut failures = 0_u32;
        let mut reported = false;
        loop {
            let result = self.rt.store.checkpoint(checkpoint).await;
            if result.is_err() {
                store_error("checkpoint");
            }
            match result {
                Err(e) if e.is_transient() => {
                    failures = failures.saturating_add(1);
                    let waited = started.elapsed();
                    if failures == 1 {
                        tracing::warn!(
                            execution = %self.id, error = %e, retry_in = ?pause,
                            "checkpoint not written; retrying"
                        );
                    } else if waited >= STALLED && !reported {
                        reported = true;
                        tracing::error!(
                            execution = %self.id, error = %e, ?waited,
                            "checkpoint still not written; the execution is paused until \
                             the store can write"
                        );
                    } else {
                        tracing::debug!(
                            execution = %self.id, error = %e, retry_in = ?pause,
                            "checkpoint not written; retrying"
                        );
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(RETRY_MAX);
                }
                result => return result,
            }
        }
    }

    /// Writes the terminal checkpoint, with the parent's `Child…` event for a child.
    pub(super) async fn finish(&self, outcome: Outcome, events: Vec<Event>) -> Finished {
        // Boxed: an execution ends once, and the many places that can end it would
        // otherwise each carry this future's state inline in the driver's.
        Box::pin(self.finish_named(outcome, events, None)).await
    }

    /// [`finish`](Self::finish), with the name of a failure's error for its event.
    pub(super) async fn finish_named(
        &self,
        outcome: Outcome,
        mut events: Vec<Event>,
        name: Option<String>,
    ) -> Finished {
        if let Some(name) = &name {
            self.span.record("error.type", name.as_str());
        }
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
            Outcome::Faulted(fault) => EventKind::faulted(fault),
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
                    outcome: Outcome::Faulted(Fault::new(format!(
                        "terminal checkpoint failed: {e}"
                    ))),
                    recorded: false,
                }
            }
        }
    }
}
