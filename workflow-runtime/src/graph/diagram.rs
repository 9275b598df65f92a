//! Diagrams of a state graph: Mermaid (for Markdown, GitHub renders it) and Graphviz DOT.
//!
//! Both draw the same thing from the same graph the driver and the ASL use: a start, one
//! node per yield point, the two ends, and every edge the code can take. A task is a
//! box, a durable timer or a callback's wait a hexagon, a poll a box with its
//! wait-and-call loop, a child, parallel or map node a subroutine box naming the
//! workflows it runs; error edges are dashed. Branches and loops of the code are the edges themselves: a node with several
//! outgoing edges is where the code decides.

use std::fmt::Write;

use super::{Edge, NodeKind, StateGraph, Transition};

/// How a node is drawn: its shape and its label.
pub(super) struct Look {
    pub(super) shape: Shape,
    pub(super) label: String,
}

#[derive(Clone, Copy)]
pub(super) enum Shape {
    Task,
    Wait,
    Child,
    End,
}

pub(super) fn look(kind: &NodeKind, name: &str) -> Look {
    let (shape, label) = match kind {
        NodeKind::Task => (Shape::Task, name.to_owned()),
        NodeKind::Wait => (Shape::Wait, name.to_owned()),
        NodeKind::Poll => (Shape::Task, name.to_owned()),
        NodeKind::Child { workflow } => (Shape::Child, format!("{name}\n→ {workflow}")),
        NodeKind::Parallel { workflows } => {
            (Shape::Child, format!("{name}\n→ {}", workflows.join(" ∥ ")))
        }
        NodeKind::Map {
            workflow,
            max_concurrency,
        } => {
            let at_most = max_concurrency.map_or(String::new(), |m| format!(", ≤ {m} at once"));
            (Shape::Child, format!("{name}\n→ each: {workflow}{at_most}"))
        }
        // A wait, like a timer's: for the outside world rather than for the clock.
        NodeKind::Callback { .. } => (Shape::Wait, format!("{name}\n⇄ token")),
        NodeKind::Succeed | NodeKind::Fail => (Shape::End, name.to_owned()),
    };
    Look { shape, label }
}

/// The id of node `k` in a diagram (`start` is the start).
fn id(k: usize) -> String {
    format!("n{k}")
}

impl StateGraph {
    /// The graph as a [Mermaid](https://mermaid.js.org) flowchart, for Markdown.
    ///
    /// ```
    /// use workflow::prelude::*;
    ///
    /// #[workflow]
    /// async fn nap() -> u32 {
    ///     sleep!(1.secs());
    ///     7
    /// }
    ///
    /// let mermaid = nap::graph().to_mermaid();
    /// assert!(mermaid.starts_with("flowchart TD"));
    /// assert!(mermaid.contains("n0{{\"sleep\"}}"));
    /// ```
    pub fn to_mermaid(&self) -> String {
        let mut out = String::from("flowchart TD\n");
        let text = |s: &str| s.replace('"', "#quot;").replace('\n', "<br/>");
        let _ = writeln!(out, "    start((\"{}\"))", text(self.workflow));
        for (k, node) in self.nodes.iter().enumerate() {
            let Look { shape, label } = look(&node.kind, node.name);
            let label = text(&label);
            let _ = match shape {
                Shape::Task => writeln!(out, "    {}[\"{label}\"]", id(k)),
                Shape::Wait => writeln!(out, "    {}{{{{\"{label}\"}}}}", id(k)),
                Shape::Child => writeln!(out, "    {}[[\"{label}\"]]", id(k)),
                Shape::End => writeln!(out, "    {}([\"{label}\"])", id(k)),
            };
        }
        let arrow = |out: &mut String, from: &str, e: &Edge| {
            let _ = match e.on {
                Transition::Next => writeln!(out, "    {from} --> {}", id(e.to)),
                Transition::Error => writeln!(out, "    {from} -. error .-> {}", id(e.to)),
            };
        };
        for e in self.start {
            arrow(&mut out, "start", e);
        }
        for (k, node) in self.nodes.iter().enumerate() {
            if matches!(node.kind, NodeKind::Poll) {
                let _ = writeln!(out, "    {0} -. not ready: wait, call again .-> {0}", id(k));
            }
            for e in node.edges {
                arrow(&mut out, &id(k), e);
            }
        }
        out
    }

    /// The graph in Graphviz's DOT language (`dot -Tsvg` draws it).
    ///
    /// ```
    /// use workflow::prelude::*;
    ///
    /// #[workflow]
    /// async fn nap() -> u32 {
    ///     sleep!(1.secs());
    ///     7
    /// }
    ///
    /// let dot = nap::graph().to_dot();
    /// assert!(dot.starts_with("digraph \"nap\" {"));
    /// assert!(dot.contains("n0 [shape=hexagon, label=\"sleep\"]"));
    /// ```
    pub fn to_dot(&self) -> String {
        // DOT strings: quotes and backslashes escaped, a line break as `\n`.
        let text = |s: &str| {
            s.replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n")
        };
        let mut out = format!("digraph \"{}\" {{\n", text(self.workflow));
        out.push_str("    node [fontname=\"Helvetica\"];\n    edge [fontname=\"Helvetica\"];\n");
        let _ = writeln!(
            out,
            "    start [shape=circle, label=\"{}\"];",
            text(self.workflow)
        );
        for (k, node) in self.nodes.iter().enumerate() {
            let Look { shape, label } = look(&node.kind, node.name);
            let shape = match shape {
                Shape::Task => "box",
                Shape::Wait => "hexagon",
                Shape::Child => "box, peripheries=2",
                Shape::End => "box, style=rounded",
            };
            let _ = writeln!(
                out,
                "    {} [shape={shape}, label=\"{}\"];",
                id(k),
                text(&label)
            );
        }
        let arrow = |out: &mut String, from: &str, e: &Edge| {
            let _ = match e.on {
                Transition::Next => writeln!(out, "    {from} -> {};", id(e.to)),
                Transition::Error => {
                    writeln!(
                        out,
                        "    {from} -> {} [style=dashed, label=\"error\"];",
                        id(e.to)
                    )
                }
            };
        };
        for e in self.start {
            arrow(&mut out, "start", e);
        }
        for (k, node) in self.nodes.iter().enumerate() {
            if matches!(node.kind, NodeKind::Poll) {
                let _ = writeln!(
                    out,
                    "    {0} -> {0} [style=dashed, label=\"not ready: wait, call again\"];",
                    id(k)
                );
            }
            for e in node.edges {
                arrow(&mut out, &id(k), e);
            }
        }
        out.push_str("}\n");
        out
    }
}
