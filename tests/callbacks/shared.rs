//! The workflows of the callback tests, and the desk they send their tokens to.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use workflow::prelude::*;
use workflow::CallbackToken;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub id: String,
    pub amount: u32,
    pub timeout_ms: u64,
    pub heartbeat_ms: u64,
}

impl Order {
    /// An order whose callback times out after `timeout_ms` and needs no heartbeat in
    /// practice (an hour).
    pub fn new(id: &str, amount: u32, timeout_ms: u64) -> Self {
        Order {
            id: id.to_owned(),
            amount,
            timeout_ms,
            heartbeat_ms: 3_600_000,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Decision {
    Approve,
    Reject { reason: String },
}

#[derive(WorkflowError, Clone, Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
pub enum OrderError {
    #[error("rejected: {0}")]
    Rejected(String),
    #[error(transparent)]
    #[workflow_error(transparent)]
    Callback(#[from] CallbackError),
}

/// Where the workflows send their tokens: tests take them from here by order id.
///
/// An order whose id starts with `unsendable` cannot be sent (the send fails); one whose
/// id starts with `instant` is approved by the desk itself while it is being sent,
/// before the workflow waits (through the runtime in [`Desk::runtime`]).
#[derive(Default)]
pub struct Desk {
    tokens: Mutex<HashMap<String, Vec<CallbackToken>>>,
    arrived: Notify,
    /// How many times a token was sent.
    pub sends: AtomicU32,
    pub runtime: OnceLock<Runtime>,
}

impl Desk {
    pub async fn request(&self, order: &Order, token: CallbackToken) -> Result<(), String> {
        self.sends.fetch_add(1, Ordering::SeqCst);
        if order.id.starts_with("unsendable") {
            return Err(format!("no route to the approvers of {}", order.id));
        }
        if order.id.starts_with("instant") {
            let runtime = self.runtime.get().expect("the desk knows its runtime");
            runtime
                .complete(&token, Decision::Approve)
                .await
                .map_err(|e| e.to_string())?;
        }
        self.tokens
            .lock()
            .unwrap()
            .entry(order.id.clone())
            .or_default()
            .push(token);
        self.arrived.notify_waiters();
        Ok(())
    }

    /// The first token sent for order `id`, once it is sent.
    pub async fn token(&self, id: &str) -> CallbackToken {
        self.nth(id, 0).await
    }

    /// The `n`-th token (from 0) sent for order `id`, once it is sent.
    pub async fn nth(&self, id: &str, n: usize) -> CallbackToken {
        tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let arrived = self.arrived.notified();
                if let Some(token) = self.tokens.lock().unwrap().get(id).and_then(|t| t.get(n)) {
                    return token.clone();
                }
                arrived.await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no token #{n} was sent for order {id}"))
    }

    /// Every token sent for order `id`.
    pub fn sent(&self, id: &str) -> Vec<CallbackToken> {
        self.tokens
            .lock()
            .unwrap()
            .get(id)
            .cloned()
            .unwrap_or_default()
    }
}

/// Waits for a decision, with a heartbeat.
#[workflow(name = "Approve")]
pub async fn approve(desk: &Desk, order: Order) -> Result<String, OrderError> {
    let decision: Decision = wait_for_callback!(
        |token| desk.request(&order, token),
        timeout = Duration::from_millis(order.timeout_ms),
        heartbeat = Duration::from_millis(order.heartbeat_ms),
    )?;
    match decision {
        Decision::Approve => Ok(format!("{} approved", order.id)),
        Decision::Reject { reason } => Err(OrderError::Rejected(reason)),
    }
}

/// Waits for any answer (its value discarded), without a heartbeat; then a second
/// callback, whose value is bound without `?`.
#[workflow(name = "Acknowledge")]
pub async fn acknowledge(desk: &Desk, order: Order) -> Result<u32, OrderError> {
    wait_for_callback!(
        |token| desk.request(&order, token),
        timeout = Duration::from_millis(order.timeout_ms),
    )?;
    let second: Result<u32, CallbackError> = wait_for_callback!(
        |token| desk.request(&order, token),
        timeout = Duration::from_millis(order.timeout_ms),
    );
    Ok(order.amount + second.unwrap_or(0))
}

/// Waits for a decision within a workflow timeout shorter than the callback's.
#[workflow(name = "ApproveInTime", timeout = 400.millis())]
pub async fn approve_in_time(desk: &Desk, order: Order) -> Result<String, OrderError> {
    let decision: Decision =
        wait_for_callback!(|token| desk.request(&order, token), timeout = 1.hours(),)?;
    match decision {
        Decision::Approve => Ok(format!("{} approved", order.id)),
        Decision::Reject { reason } => Err(OrderError::Rejected(reason)),
    }
}
