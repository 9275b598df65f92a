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

use serde::Serialize;

use std::time::Duration;

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
