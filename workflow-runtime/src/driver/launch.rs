//! Starting and resuming executions. The registry's view of a workflow type
//! ([`Erased`]) is typed only until the first or the stored state is decoded into a
//! [`Machine`]; creating the execution and spawning its driver (`create`, [`resume`])
//! are the same code for every workflow.

use std::borrow::Cow;
use std::marker::PhantomData;
use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::Inner;
use crate::error::{Payload, PayloadTooLarge, StartError};
use crate::execution::{ExecutionId, Outcome, Status};
use crate::graph::StateGraph;
use crate::history::{Event, EventKind};
use crate::json::Json;
use crate::store::{CallSite, ExecutionRecord, Wait};
use crate::telemetry;
use crate::time::Timestamp;
use crate::workflow::{BoxFuture, Workflow};

use super::{deadline, Driver, Held, Machine, Notify};

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
    pub(super) notify: Notify,
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
    /// When it was created, or last redriven: its timeout counts from there.
    pub(crate) started_at: Timestamp,
    /// Its parent, for a child.
    pub(crate) parent: Option<ExecutionId>,
    /// The trace it was created in (W3C `traceparent`), which its spans continue.
    pub(crate) trace: Option<String>,
    /// The decoded state, with its workflow.
    pub(crate) state: Box<dyn Machine>,
}

impl Resume {
    pub(crate) fn of(record: &ExecutionRecord, state: Box<dyn Machine>) -> Self {
        Resume {
            id: record.id.clone(),
            parent_node: record
                .call_site
                .as_ref()
                .map(|site| Cow::Owned(site.node.clone())),
            waiting: record.waiting.clone(),
            batches: record.batches,
            started_at: record.started_at(),
            parent: record.parent.clone(),
            trace: record.trace.clone(),
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

    /// The workflow's state graph.
    fn graph(&self) -> &'static StateGraph;

    /// Whether this definition resumes a state stored with `fingerprint` (its own, or
    /// one of its `Workflow::LEGACY` ones).
    fn reads(&self, fingerprint: u64) -> bool;

    /// Checks a stored execution against this definition and decodes its state.
    fn decode(&self, record: &ExecutionRecord) -> Result<Box<dyn Machine>, Unresumable>;
}

pub(crate) struct Typed<W>(pub(crate) PhantomData<fn() -> W>);

impl<W: Workflow> Erased for Typed<W> {
    fn launch<'a>(
        &'a self,
        rt: &'a Arc<Inner>,
        launch: Launch,
    ) -> BoxFuture<'a, Result<watch::Receiver<Option<Outcome>>, StartError>> {
        // The typed part: the input decoded, the first state made and encoded. The rest
        // is the same for every workflow, and compiled once.
        let invalid = |source| StartError::InvalidInput {
            workflow: W::NAME,
            source,
        };
        let first = launch
            .input
            .decode::<W::Input>()
            .map_err(invalid)
            .and_then(|input| {
                let state = W::start(input);
                let bytes = crate::persist::to_vec(&state).map_err(invalid)?;
                Ok((Held::<W>::boxed(state), bytes))
            });
        Box::pin(create(rt, launch, W::FINGERPRINT, first))
    }

    fn graph(&self) -> &'static StateGraph {
        W::graph()
    }

    fn reads(&self, fingerprint: u64) -> bool {
        crate::persist::reads::<W>(fingerprint)
    }

    fn decode(&self, record: &ExecutionRecord) -> Result<Box<dyn Machine>, Unresumable> {
        if !crate::persist::reads::<W>(record.fingerprint) {
            return Err(Unresumable::VersionMismatch {
                stored: record.fingerprint,
                registered: W::FINGERPRINT,
            });
        }
        let state: W::State = crate::persist::stored_state::<W>(record.fingerprint, &record.state)
            .map_err(|e| {
                Unresumable::Corrupt(format!(
                "the stored state of execution `{}` does not decode as workflow `{}`'s state: {e}",
                record.id,
                W::NAME
            ))
            })?;
        Ok(Held::<W>::boxed(state))
    }
}

/// Creates an execution of the workflow whose first state and its encoding are
/// `first`, and spawns its driver.
async fn create(
    rt: &Arc<Inner>,
    launch: Launch,
    fingerprint: u64,
    first: Result<(Box<dyn Machine>, Vec<u8>), StartError>,
) -> Result<watch::Receiver<Option<Outcome>>, StartError> {
    let (machine, bytes) = first?;
    let name = machine.name();
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
    if bytes.len() > rt.payload_limit {
        return Err(too_large(Payload::State, bytes.len()).into());
    }
    let now = rt.clock.now();
    let parent = launch.parent.clone();
    // Made here, in the starter's context: a child's is in its batch's span, a
    // top-level execution's in its caller's. Its context goes into the record.
    let span = telemetry::execution_span(name, &launch.id, parent.as_ref().map(|p| &p.id), false);
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
                workflow: name.to_owned(),
            },
        })
        .collect();
    let record = ExecutionRecord {
        id: launch.id.clone(),
        workflow: name.to_owned(),
        fingerprint,
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
        redrives: 0,
        redriven_at: None,
        trace: telemetry::trace_context(&span),
    };
    rt.store
        .create(record, vec![started], parent_events)
        .await?;
    telemetry::metrics()
        .started
        .add(1, &telemetry::workflow(name));
    let driver = Driver {
        rt: Arc::clone(rt),
        id: launch.id,
        cancel: launch.cancel,
        parent_node: parent.map(|p| p.node),
        deadline: deadline(machine.graph(), now),
        span,
    };
    Ok(driver.spawn(machine, None, 0, launch.notify))
}

/// Spawns the driver of a decoded execution, from where its record left it.
pub(crate) fn resume(
    rt: &Arc<Inner>,
    resume: Resume,
    cancel: CancellationToken,
    notify: Notify,
) -> watch::Receiver<Option<Outcome>> {
    let machine = resume.state;
    let span = telemetry::execution_span(machine.name(), &resume.id, resume.parent.as_ref(), true);
    if let Some(trace) = &resume.trace {
        telemetry::continue_trace(&span, trace);
    }
    let driver = Driver {
        rt: Arc::clone(rt),
        id: resume.id,
        cancel,
        parent_node: resume.parent_node,
        deadline: deadline(machine.graph(), resume.started_at),
        span,
    };
    driver.spawn(machine, resume.waiting, resume.batches, notify)
}
