//! A state graph as `#[workflow]` writes it: the shape as one JSON string, and beside it
//! only what has to be code (a child's name comes from its workflow's type, a callback's
//! decoder is a function of its value's type, a policy is evaluated). One string literal
//! is one token for rustc to parse, resolve and hash, where the graph written as Rust
//! values was hundreds per workflow, on every check.

use std::time::Duration;

use serde::Deserialize;

use super::{Edge, Node, NodeKind, StateGraph, Transition};
use crate::json::Json;
use crate::retry::Policy;

/// A callback's value type (`std::any::type_name`) and the check that a value decodes
/// as it.
pub type Accepts = (&'static str, fn(&Json) -> Result<(), String>);

/// A node's index, and its retry policy and timeout.
pub type PolicyAt = (usize, fn() -> Policy);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Shape {
    start: Vec<(usize, bool)>,
    nodes: Vec<NodeShape>,
}

/// An edge is `[to, on_error]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeShape {
    name: String,
    kind: KindShape,
    edges: Vec<(usize, bool)>,
}

/// A node's kind; the children's names and the callbacks' types are taken in order
/// from the lists beside the shape.
#[derive(Deserialize)]
enum KindShape {
    Task,
    Wait,
    Poll,
    Child,
    /// How many children.
    Parallel(usize),
    /// At most how many children run at once.
    Map(Option<u32>),
    /// Whether it has a heartbeat.
    Callback(bool),
    Succeed,
    Fail,
}

/// The graph of workflow `workflow` from what `#[workflow]` wrote: `shape`, the
/// children's workflow names and the callbacks in the order of their nodes, and the
/// nodes that have a policy.
///
/// # Panics
///
/// If what was written does not fit together: the macro writes all of it at once, so
/// that is a bug in the macro, and the message says so.
pub fn graph(
    workflow: &'static str,
    shape: &str,
    children: &[&'static str],
    callbacks: &[Accepts],
    policies: &[PolicyAt],
    timeout: Option<fn() -> Duration>,
) -> StateGraph {
    let bug = |what: &str| -> ! {
        panic!(
            "#[workflow] wrote an inconsistent graph for `{workflow}` ({what}): a bug in the macro"
        )
    };
    let shape: Shape = serde_json::from_str(shape).unwrap_or_else(|e| bug(&e.to_string()));
    let edges = |edges: Vec<(usize, bool)>| -> &'static [Edge] {
        let edges: Vec<Edge> = edges
            .into_iter()
            .map(|(to, error)| Edge {
                to,
                on: if error {
                    Transition::Error
                } else {
                    Transition::Next
                },
            })
            .collect();
        Vec::leak(edges)
    };
    let mut children = children.iter().copied();
    let mut child = || children.next().unwrap_or_else(|| bug("too few children"));
    let mut callbacks = callbacks.iter().copied();
    let nodes: Vec<Node> = shape
        .nodes
        .into_iter()
        .enumerate()
        .map(|(i, n)| Node {
            name: String::leak(n.name),
            kind: match n.kind {
                KindShape::Task => NodeKind::Task,
                KindShape::Wait => NodeKind::Wait,
                KindShape::Poll => NodeKind::Poll,
                KindShape::Succeed => NodeKind::Succeed,
                KindShape::Fail => NodeKind::Fail,
                KindShape::Child => NodeKind::Child { workflow: child() },
                KindShape::Parallel(n) => NodeKind::Parallel {
                    workflows: Vec::leak((0..n).map(|_| child()).collect()),
                },
                KindShape::Map(max_concurrency) => NodeKind::Map {
                    workflow: child(),
                    max_concurrency,
                },
                KindShape::Callback(heartbeat) => {
                    let (value, accepts) =
                        callbacks.next().unwrap_or_else(|| bug("too few callbacks"));
                    NodeKind::Callback {
                        value,
                        heartbeat,
                        accepts,
                    }
                }
            },
            edges: edges(n.edges),
            policy: policies.iter().find(|(at, _)| *at == i).map(|(_, p)| *p),
        })
        .collect();
    if children.next().is_some() || callbacks.next().is_some() {
        bug("names or callbacks left over");
    }
    StateGraph {
        workflow,
        start: edges(shape.start),
        nodes: Vec::leak(nodes),
        timeout,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepts_any(_: &Json) -> Result<(), String> {
        Ok(())
    }

    #[test]
    fn the_shape_and_the_lists_beside_it_make_the_graph() {
        let shape = r#"{"start":[[0,false]],"nodes":[
            {"name":"map \"q\"","kind":{"Map":4},"edges":[[1,false],[3,true]]},
            {"name":"cb","kind":{"Callback":true},"edges":[[2,false]]},
            {"name":"Succeed","kind":"Succeed","edges":[]},
            {"name":"Fail","kind":"Fail","edges":[]}]}"#;
        let g = graph(
            "W",
            shape,
            &["Child"],
            &[("u32", accepts_any)],
            &[(0, Policy::default)],
            None,
        );
        assert_eq!(
            g.names().collect::<Vec<_>>(),
            ["map \"q\"", "cb", "Succeed", "Fail"]
        );
        assert!(matches!(
            g.nodes[0].kind,
            NodeKind::Map {
                workflow: "Child",
                max_concurrency: Some(4)
            }
        ));
        assert!(matches!(
            g.nodes[1].kind,
            NodeKind::Callback {
                value: "u32",
                heartbeat: true,
                ..
            }
        ));
        assert_eq!(g.nodes[0].edges[1].on, Transition::Error);
        assert!(g.nodes[0].policy.is_some() && g.nodes[1].policy.is_none());
    }

    #[test]
    #[should_panic(expected = "inconsistent graph for `W` (too few children): a bug in the macro")]
    fn a_graph_that_does_not_fit_together_is_a_bug_said_as_such() {
        let shape = r#"{"start":[],"nodes":[{"name":"c","kind":"Child","edges":[]}]}"#;
        graph("W", shape, &[], &[], &[], None);
    }
}
