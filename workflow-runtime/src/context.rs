//! What a step of generated code sees: injected dependencies and the step context.

use std::any::{Any, TypeId};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;

use crate::child::ChildrenOutcome;
use crate::graph::StateGraph;
use crate::history::{Event, EventKind};
use crate::time::{Clock, Timestamp};

/// Dependencies injected into workflows' `&T` parameters, one value per type.
#[derive(Clone, Default)]
pub struct Deps {
    values: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
}

impl Deps {
    pub(crate) fn insert_arc<T: Any + Send + Sync>(&mut self, value: Arc<T>) {
        self.values.insert(TypeId::of::<T>(), value);
    }

    pub(crate) fn contains(&self, type_id: TypeId) -> bool {
        self.values.contains_key(&type_id)
    }

    /// The dependency of type `T`, if one was provided.
    pub fn get<T: Any>(&self) -> Option<&T> {
        self.values.get(&TypeId::of::<T>())?.downcast_ref()
    }
}

impl std::fmt::Debug for Deps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deps")
            .field("count", &self.values.len())
            .finish()
    }
}

/// A problem that stops an execution without it being the workflow's own error:
/// a missing dependency, a state that does not serialize, a resume without its data.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Fault {
    message: String,
}

impl Fault {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Fault {
            message: message.into(),
        }
    }

    /// What went wrong.
    pub fn message(&self) -> &str {
        &self.message
    }

    #[doc(hidden)]
    pub fn missing_dependency<T: ?Sized>() -> Self {
        Fault::new(format!(
            "no dependency of type `{}` was provided to the runtime",
            std::any::type_name::<T>()
        ))
    }

    #[doc(hidden)]
    pub fn unexpected_resume(state: &str) -> Self {
        Fault::new(format!(
            "state `{state}` was resumed without the child results it waits for"
        ))
    }
}

/// The context of one step of a workflow: the clock, the resume data, and the history
/// events the step produces (persisted with the step's checkpoint).
#[doc(hidden)]
pub struct StepCx {
    clock: Clock,
    graph: &'static StateGraph,
    pub(crate) events: Vec<Event>,
    children: Option<ChildrenOutcome>,
    /// Set by the ASL step handler, whose time comes from the request (or is the wall
    /// time at the start of the invocation) rather than from a long-lived tokio clock.
    fixed_now: Option<Timestamp>,
}

impl StepCx {
    pub(crate) fn new(
        clock: Clock,
        graph: &'static StateGraph,
        children: Option<ChildrenOutcome>,
    ) -> Self {
        StepCx {
            clock,
            graph,
            events: Vec::new(),
            children,
            fixed_now: None,
        }
    }

    /// A context whose clock reads `now` for the whole step (the ASL step handler's).
    pub(crate) fn at_time(
        now: Timestamp,
        graph: &'static StateGraph,
        children: Option<ChildrenOutcome>,
    ) -> Self {
        let mut cx = StepCx::new(Clock::new(), graph, children);
        cx.fixed_now = Some(now);
        cx
    }

    /// The runtime clock's current time.
    pub fn now(&self) -> Timestamp {
        self.fixed_now.unwrap_or_else(|| self.clock.now())
    }

    pub(crate) fn node_name(&self, node: usize) -> Option<Cow<'static, str>> {
        self.graph.nodes.get(node).map(|n| Cow::Borrowed(n.name))
    }

    /// Appends an event for `node` to the step's history.
    pub fn record(&mut self, node: usize, kind: EventKind) {
        let event = Event {
            at: self.now(),
            state: self.node_name(node),
            kind,
        };
        self.events.push(event);
    }

    /// A task is about to run.
    pub fn task_scheduled(&mut self, node: usize) {
        self.record(node, EventKind::TaskScheduled);
    }

    /// A task whose value the workflow keeps finished: records its output or error.
    pub fn task_finished<T: Serialize, E: Serialize>(
        &mut self,
        node: usize,
        result: Result<T, E>,
    ) -> Result<T, E> {
        let kind = match &result {
            Ok(v) => EventKind::TaskSucceeded {
                output: serde_json::to_value(v).ok(),
            },
            Err(e) => EventKind::TaskFailed { error: to_json(e) },
        };
        self.record(node, kind);
        result
    }

    /// A task whose value the workflow drops finished.
    pub fn task_finished_opaque<T, E: Serialize>(
        &mut self,
        node: usize,
        result: Result<T, E>,
    ) -> Result<T, E> {
        let kind = match &result {
            Ok(_) => EventKind::TaskSucceeded { output: None },
            Err(e) => EventKind::TaskFailed { error: to_json(e) },
        };
        self.record(node, kind);
        result
    }

    /// A task whose value the workflow keeps (and cannot fail) finished.
    pub fn task_value<T: Serialize>(&mut self, node: usize, value: T) -> T {
        let output = serde_json::to_value(&value).ok();
        self.record(node, EventKind::TaskSucceeded { output });
        value
    }

    /// A task whose value the workflow drops (and cannot fail) finished.
    pub fn task_done(&mut self, node: usize) {
        self.record(node, EventKind::TaskSucceeded { output: None });
    }

    /// The results of the children this state waited for.
    pub fn take_children(&mut self, node: usize) -> Result<ChildrenOutcome, Fault> {
        self.children.take().ok_or_else(|| {
            Fault::unexpected_resume(self.graph.nodes.get(node).map_or("?", |n| n.name))
        })
    }
}

pub(crate) fn to_json<T: Serialize + ?Sized>(value: &T) -> serde_json::Value {
    serde_json::to_value(value)
        .unwrap_or_else(|e| serde_json::Value::String(format!("<unserializable: {e}>")))
}
