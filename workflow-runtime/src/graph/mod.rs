//! The state graph of a workflow: the IR that `#[workflow]` lowers a body to.
//!
//! The native driver and (in the ASL emitter) the Step Functions definition are both
//! generated from it, and history events are named after its nodes.
//!
//! Its nodes are the yield points and the two ends. Its edges are where the code that
//! runs after a node (or from the start) can go before it stops at the next node: the
//! macro records them while it writes that code, so every route the code can take is an
//! edge. Branches and loops have no nodes of their own: the code decides between the
//! edges.

use std::collections::BTreeSet;

use serde::Serialize;

use std::time::Duration;

use crate::history::{Event, EventKind};
use crate::json::Json;
use crate::retry::Policy;

/// The state graph of one workflow, as emitted by `#[workflow]`.
#[derive(Debug, Serialize)]
pub struct StateGraph {
    /// The workflow's published name.
    pub workflow: &'static str,
    /// Where the code from the start of the body can go.
    pub start: &'static [Edge],
    /// The nodes; edges refer to them by index.
    pub nodes: &'static [Node],
    /// How long an execution may run (`#[workflow(timeout = …)]`), the ASL's top-level
    /// `TimeoutSeconds`.
    #[serde(skip)]
    pub timeout: Option<fn() -> Duration>,
}

/// One named state.
#[derive(Debug, Serialize)]
pub struct Node {
    /// Unique, readable name derived from the code (`svc.start`, `poll svc.status`, …).
    pub name: &'static str,
    /// What the state does.
    pub kind: NodeKind,
    /// Where the code after it may go next (for `Succeed` and `Fail`: nowhere).
    pub edges: &'static [Edge],
    /// The node's retry policy and timeout, for a task, a poll or a child call that has
    /// them (a function: the macro's duration expressions are not `const`).
    #[serde(skip)]
    pub policy: Option<fn() -> Policy>,
}

/// What a node does.
#[derive(Debug, Serialize)]
#[serde(tag = "type")]
pub enum NodeKind {
    /// Runs an awaited call; its result is checkpointed.
    Task,
    /// A durable timer (`sleep!`).
    Wait,
    /// The wait → call → check loop of `poll_until!`.
    Poll,
    /// One child execution (`call_nested!(wf(input))`).
    Child {
        /// The child workflow's name.
        workflow: &'static str,
    },
    /// A fixed set of children run together (`call_nested!(parallel(a(x), b(y)))`).
    Parallel {
        /// The children's workflow names, in order.
        workflows: &'static [&'static str],
    },
    /// One child per item of a collection (`call_nested!(for x in xs => wf(x))`).
    Map {
        /// The child workflow's name.
        workflow: &'static str,
        /// At most this many children run at once; `None` is unbounded.
        max_concurrency: Option<u32>,
    },
    /// A callback (`wait_for_callback!`): a token handed out, then a wait until it is
    /// completed, failed or times out.
    Callback {
        /// The type of the value it waits for (`std::any::type_name`).
        value: &'static str,
        /// Whether it has a heartbeat interval.
        heartbeat: bool,
        /// Whether a value decodes as that type: what
        /// [`Runtime::complete`](crate::Runtime::complete) checks before it writes.
        #[serde(skip)]
        accepts: fn(&Json) -> Result<(), String>,
    },
    /// The execution succeeded.
    Succeed,
    /// The execution failed with the workflow's error.
    Fail,
}

/// A transition between nodes.
#[derive(Debug, Serialize)]
pub struct Edge {
    /// Index of the target node.
    pub to: usize,
    /// When it is taken.
    pub on: Transition,
}

/// Why an edge is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Transition {
    /// To a yield point, or to `Succeed`.
    Next,
    /// To `Fail`: the code produced the workflow's error.
    Error,
}

impl Node {
    /// The node's policy; the default (no retries, no timeout) if it has none.
    pub fn policy(&self) -> Policy {
        self.policy.map(|p| p()).unwrap_or_default()
    }
}

impl StateGraph {
    /// The node with this name.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The node names, in index order.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.nodes.iter().map(|n| n.name)
    }
}

mod diagram;
#[cfg(feature = "svg")]
mod svg;
pub(crate) mod written;

/// The states of a graph an execution has gone through, and the one it is in: what
/// `StateGraph::to_svg_highlighted` (feature `svg`) colours.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Highlight {
    /// The nodes it has entered (with the end it reached, once it has ended).
    pub visited: BTreeSet<String>,
    /// The node it is in, while it runs.
    pub current: Option<String>,
}

impl Highlight {
    /// What `history`, an execution of `graph`, went through: every node an event names,
    /// the `Succeed` or `Fail` end once it has ended, and, while it has not, the node of
    /// its last event.
    pub fn of(graph: &StateGraph, history: &[Event]) -> Self {
        let mut highlight = Highlight::default();
        let ends = |kind: fn(&NodeKind) -> bool| {
            graph
                .nodes
                .iter()
                .filter(move |n| kind(&n.kind))
                .map(|n| n.name.to_owned())
        };
        let mut ended = false;
        for event in history {
            if let Some(node) = event.state.as_deref().and_then(|s| graph.node(s)) {
                highlight.visited.insert(node.name.to_owned());
            }
            match &event.kind {
                EventKind::ExecutionSucceeded { .. } => {
                    highlight
                        .visited
                        .extend(ends(|k| matches!(k, NodeKind::Succeed)));
                    ended = true;
                }
                // Redriven: back where it failed, with no end reached yet.
                EventKind::ExecutionRedriven { .. } => {
                    highlight.visited.retain(|name| {
                        graph
                            .node(name)
                            .is_none_or(|n| !matches!(n.kind, NodeKind::Fail))
                    });
                    ended = false;
                }
                EventKind::ExecutionFailed { .. }
                | EventKind::ExecutionTimedOut
                | EventKind::ExecutionCancelled
                | EventKind::ExecutionFaulted { .. } => {
                    highlight
                        .visited
                        .extend(ends(|k| matches!(k, NodeKind::Fail)));
                    ended = true;
                }
                _ => {}
            }
        }
        if !ended {
            highlight.current = history
                .iter()
                .rev()
                .find_map(|e| e.state.as_deref().and_then(|s| graph.node(s)))
                .map(|n| n.name.to_owned());
        }
        highlight
    }

    /// Whether nothing is highlighted.
    pub fn is_empty(&self) -> bool {
        self.visited.is_empty() && self.current.is_none()
    }
}
