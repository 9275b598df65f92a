//! What every driver of a runtime shares: the registered workflows, the dependencies,
//! the store, the clock, the executions running now, and the children that recovery left
//! for their parents. `Runtime` is a handle to it.

use std::any::TypeId;
use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Erased, Launch, Resume};
use crate::callback::PendingCallback;
use crate::deps::Deps;
use crate::error::StartError;
use crate::execution::{ExecutionId, Outcome};
use crate::store::{Held, Store};
use crate::time::Clock;
use crate::workflow::BoxFuture;
use crate::HashMap;

pub(crate) struct Inner {
    pub(crate) workflows: HashMap<&'static str, Registration>,
    pub(crate) deps: Deps,
    pub(crate) store: Held,
    pub(crate) clock: Clock,
    pub(crate) payload_limit: usize,
    live: Mutex<HashMap<ExecutionId, Live>>,
    /// Children that recovery decoded and left for their parent's batch to resume.
    recovered: Mutex<HashMap<ExecutionId, Resume>>,
    /// The drivers waiting on a callback, told of each change a completion, a failure or
    /// a heartbeat wrote (see [`CallbackWaiter`]).
    callbacks: Mutex<HashMap<ExecutionId, mpsc::UnboundedSender<PendingCallback>>>,
    /// Executions a redrive is reopening: recovery leaves them alone, a second redrive
    /// refuses them (see [`Redriving`]).
    redriving: Mutex<HashSet<ExecutionId>>,
    /// Every driver task, so that `shutdown` can wait for them.
    tasks: TaskTracker,
    /// Stops every driver where it is, recording nothing (`shutdown`).
    halt: CancellationToken,
}

pub(crate) struct Live {
    pub(crate) cancel: CancellationToken,
    pub(crate) done: watch::Receiver<Option<Outcome>>,
}

/// A registered workflow, with its type erased so the registry can hold many kinds.
#[derive(Clone)]
pub(crate) struct Registration {
    pub(crate) name: &'static str,
    pub(crate) type_id: TypeId,
    pub(crate) driver: Arc<dyn Erased>,
}

impl Inner {
    pub(crate) fn new(
        workflows: HashMap<&'static str, Registration>,
        deps: Deps,
        store: Arc<dyn Store>,
        payload_limit: usize,
    ) -> Self {
        Inner {
            workflows,
            deps,
            // Held, so that `stop` can let go of it while stopped tasks still share this.
            store: Held::new(store),
            clock: Clock::new(),
            payload_limit,
            live: Mutex::new(HashMap::default()),
            recovered: Mutex::new(HashMap::default()),
            callbacks: Mutex::new(HashMap::default()),
            redriving: Mutex::new(HashSet::new()),
            tasks: TaskTracker::new(),
            halt: CancellationToken::new(),
        }
    }

    /// Stops every driver where it is, recording nothing, and waits for them.
    pub(crate) async fn halt(&self) {
        self.halt.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Stops every driver where it is, recording nothing, without waiting, and releases
    /// the store: what the last runtime handle does when it is dropped. A stopped driver
    /// never polls its step again, but tokio drops it (and the store it shares) only
    /// later: released here, a SQLite file is free when `drop` returns.
    pub(crate) fn stop(&self) {
        self.halt.cancel();
        self.tasks.close();
        self.store.release();
    }
}

impl Inner {
    pub(crate) fn live(&self) -> MutexGuard<'_, HashMap<ExecutionId, Live>> {
        // Entries are inserted and removed whole, so a poisoned map is still consistent.
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn recovered(&self) -> MutexGuard<'_, HashMap<ExecutionId, Resume>> {
        // Entries are inserted and removed whole, so a poisoned map is still consistent.
        self.recovered.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn callbacks(
        &self,
    ) -> MutexGuard<'_, HashMap<ExecutionId, mpsc::UnboundedSender<PendingCallback>>> {
        // Entries are inserted and removed whole, so a poisoned map is still consistent.
        self.callbacks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tells the driver of execution `id`, if it waits on a callback here, that its
    /// callback is now `callback` (as the store holds it after a change).
    pub(crate) fn notify_callback(&self, id: &ExecutionId, callback: PendingCallback) {
        if let Some(tx) = self.callbacks().get(id) {
            // A driver that stopped waiting meanwhile reads the store, not this.
            let _ = tx.send(callback);
        }
    }

    /// Whether a redrive is reopening execution `id` right now.
    pub(crate) fn is_redriving(&self, id: &ExecutionId) -> bool {
        self.redriving().contains(id)
    }

    fn redriving(&self) -> MutexGuard<'_, HashSet<ExecutionId>> {
        // Ids are inserted and removed whole, so a poisoned set is still consistent.
        self.redriving.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the recovered child `id` out of the map, for its parent's batch to resume.
    pub(crate) fn claim(&self, id: &ExecutionId) -> Option<Resume> {
        self.recovered().remove(id)
    }

    /// Ends a recovered child that its parent will not resume (the parent failed fast or
    /// was cancelled first): its driver starts already cancelled and records it.
    /// Returns the end it will report, if there was such a child.
    pub(crate) fn cancel_unclaimed(
        self: &Arc<Self>,
        id: &ExecutionId,
    ) -> Option<watch::Receiver<Option<Outcome>>> {
        let recovered = self.claim(id)?;
        let cancel = CancellationToken::new();
        cancel.cancel();
        Some(super::resume(self, recovered, cancel, None))
    }

    /// Spawns a task that `shutdown` stops and waits for.
    pub(crate) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        // Boxed: an `async` block keeps a future it captures both as the captured value
        // and as the local `select!` polls, so the task was twice the driver's size
        // (5 KiB per execution for the nesting example's `run_job`; 100,000 waiting
        // executions spent half their memory on it). Behind a box it is there once.
        self.spawn_boxed(Box::pin(task));
    }

    /// The task behind a `dyn` box, spawned by a function that is not generic: tokio's
    /// task machinery (about a hundred functions) is then compiled once, not once for
    /// each future type, which was several per workflow and most of the compile time of
    /// a crate of workflows (issue 22).
    fn spawn_boxed(&self, task: BoxFuture<'static, ()>) {
        let halt = self.halt.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                biased;
                () = halt.cancelled() => {}
                () = task => {}
            }
        });
    }

    pub(crate) async fn launch(
        self: &Arc<Self>,
        workflow: &str,
        launch: Launch,
    ) -> Result<watch::Receiver<Option<Outcome>>, StartError> {
        let registration =
            self.workflows
                .get(workflow)
                .ok_or_else(|| StartError::NotRegistered {
                    name: workflow.to_owned(),
                })?;
        registration.driver.launch(self, launch).await
    }
}

/// A driver's registration for the changes to the callback it waits on, from before
/// its token can be out until the callback is resolved: a completion that comes in
/// between (while the token is being sent) reaches it. Unregistered when dropped.
pub(crate) struct CallbackWaiter {
    rt: Arc<Inner>,
    id: ExecutionId,
    pub(crate) changes: mpsc::UnboundedReceiver<PendingCallback>,
    /// Whether the driver has read the stored callback since it registered: a change
    /// written before the registration is only in the store.
    pub(crate) fresh: bool,
}

impl CallbackWaiter {
    pub(crate) fn register(rt: &Arc<Inner>, id: &ExecutionId) -> Self {
        let (tx, changes) = mpsc::unbounded_channel();
        rt.callbacks().insert(id.clone(), tx);
        CallbackWaiter {
            rt: Arc::clone(rt),
            id: id.clone(),
            changes,
            fresh: false,
        }
    }
}

impl Drop for CallbackWaiter {
    fn drop(&mut self) {
        self.rt.callbacks().remove(&self.id);
    }
}

/// The executions one redrive is reopening, marked in the runtime from before their rows
/// are read until their drivers run (or the redrive gives up): between the store write
/// that sets them running and their drivers, `recover` would otherwise resume them a
/// second time. Unmarked when dropped.
pub(crate) struct Redriving<'a> {
    rt: &'a Inner,
    ids: Vec<ExecutionId>,
}

impl<'a> Redriving<'a> {
    pub(crate) fn new(rt: &'a Inner) -> Self {
        Redriving {
            rt,
            ids: Vec::new(),
        }
    }

    /// Marks `id`; `false` if another redrive has it marked.
    pub(crate) fn mark(&mut self, id: &ExecutionId) -> bool {
        if !self.rt.redriving().insert(id.clone()) {
            return false;
        }
        self.ids.push(id.clone());
        true
    }
}

impl Drop for Redriving<'_> {
    fn drop(&mut self) {
        let mut marked = self.rt.redriving();
        for id in &self.ids {
            marked.remove(id);
        }
    }
}
