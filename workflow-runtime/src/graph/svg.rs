//! A workflow's graph drawn as SVG, in Rust: `layout-rs` places the nodes in layers
//! (as Graphviz's `dot` does) and writes the SVG, so no external program is needed.

use layout::backends::svg::SVGWriter;
use layout::core::base::Orientation;
use layout::core::color::Color;
use layout::core::style::{LineStyleKind, StyleAttr};
use layout::std_shapes::render::get_shape_size;
use layout::std_shapes::shapes::{Arrow, Element, LineEndKind, ShapeKind};
use layout::topo::layout::VisualGraph;

use super::diagram::{look, Shape};
use super::{Highlight, NodeKind, StateGraph, Transition};

const FONT: usize = 14;

impl StateGraph {
    /// The graph as an SVG image: the same nodes and edges as
    /// [`to_dot`](Self::to_dot), laid out top to bottom, each node labelled with its
    /// name (and, for children, the workflows it runs).
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
    /// let svg = nap::graph().to_svg();
    /// assert!(svg.starts_with("<?xml") && svg.contains("<svg"));
    /// assert!(svg.contains(">sleep<"));
    /// ```
    pub fn to_svg(&self) -> String {
        self.to_svg_highlighted(&Highlight::default())
    }

    /// The graph as SVG with an execution's path on it: the states it went through
    /// filled green, the one it is in amber, a failed end red.
    pub fn to_svg_highlighted(&self, highlight: &Highlight) -> String {
        let mut graph = VisualGraph::new(Orientation::TopToBottom);
        let fill = |name: &str, kind: Option<&NodeKind>| {
            if highlight.current.as_deref() == Some(name) {
                "#ffd76e"
            } else if !highlight.visited.contains(name) {
                "white"
            } else if matches!(kind, Some(NodeKind::Fail)) {
                "#f4a6a6"
            } else {
                "#b8e6b8"
            }
        };
        let node = |graph: &mut VisualGraph, shape: ShapeKind, fill: &str, rounded: usize| {
            let width = if fill == "white" { 1 } else { 2 };
            let style = StyleAttr::new(
                Color::fast("black"),
                width,
                Some(Color::fast(fill)),
                rounded,
                FONT,
            );
            let size = get_shape_size(Orientation::TopToBottom, &shape, FONT, false);
            graph.add_node(Element::create(
                shape,
                style,
                Orientation::TopToBottom,
                size,
            ))
        };
        let start = node(
            &mut graph,
            ShapeKind::Circle(self.workflow.to_owned()),
            if highlight.is_empty() {
                "white"
            } else {
                "#b8e6b8"
            },
            0,
        );
        let nodes: Vec<_> = self
            .nodes
            .iter()
            .map(|n| {
                let look = look(&n.kind, n.name);
                // layout-rs draws boxes and circles: the kinds differ by their corners
                // (and the labels of children name the workflows they run).
                let rounded = match look.shape {
                    Shape::End => 15,
                    Shape::Wait => 8,
                    Shape::Task | Shape::Child => 0,
                };
                let shape = ShapeKind::Box(look.label);
                node(&mut graph, shape, fill(n.name, Some(&n.kind)), rounded)
            })
            .collect();
        let arrow = |on: Transition, text: &str| {
            let style = match on {
                Transition::Next => LineStyleKind::Normal,
                Transition::Error => LineStyleKind::Dashed,
            };
            let look = StyleAttr::new(Color::fast("black"), 1, None, 0, FONT - 2);
            Arrow::new(
                LineEndKind::None,
                LineEndKind::Arrow,
                style,
                text,
                &look,
                &None,
                &None,
            )
        };
        let label = |on: Transition| match on {
            Transition::Next => "",
            Transition::Error => "error",
        };
        for e in self.start {
            graph.add_edge(arrow(e.on, label(e.on)), start, nodes[e.to]);
        }
        for (k, n) in self.nodes.iter().enumerate() {
            if matches!(n.kind, NodeKind::Poll) {
                graph.add_edge(arrow(Transition::Error, "not ready"), nodes[k], nodes[k]);
            }
            for e in n.edges {
                graph.add_edge(arrow(e.on, label(e.on)), nodes[k], nodes[e.to]);
            }
        }
        let mut svg = SVGWriter::new();
        graph.do_it(false, false, false, &mut svg);
        svg.finalize()
    }
}
