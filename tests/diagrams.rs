//! Diagrams of a workflow (`StateGraph::to_mermaid`, `to_dot`): what they draw, and the
//! README's diagrams of the nesting example, which must be the ones the code draws now.
//!
//! After a change to the example's workflows or to the drawing, `UPDATE_README=1 cargo
//! test --test diagrams` writes the new diagrams into the README.

use workflow::prelude::*;
use workflow::StateGraph;

#[path = "../examples/nesting/workflows.rs"]
#[allow(dead_code)]
mod workflows;

/// The README's diagram of `graph`: between `<!-- diagram: NAME -->` and the end of the
/// Mermaid block that follows it.
fn readme_block(readme: &str, graph: &StateGraph) -> Option<(usize, usize)> {
    let marker = format!("<!-- diagram: {} -->\n```mermaid\n", graph.workflow);
    let start = readme.find(&marker)? + marker.len();
    let end = start + readme[start..].find("```\n")?;
    Some((start, end))
}

#[test]
fn the_readme_shows_the_nesting_example_as_the_code_draws_it() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
    let mut readme = std::fs::read_to_string(path).unwrap();
    let mut stale = Vec::new();
    for graph in [workflows::main_flow::graph(), workflows::run_job::graph()] {
        let (start, end) = readme_block(&readme, graph)
            .unwrap_or_else(|| panic!("the README has no diagram of {}", graph.workflow));
        let drawn = graph.to_mermaid();
        if readme[start..end] != drawn {
            stale.push(graph.workflow);
            readme.replace_range(start..end, &drawn);
        }
    }
    if !stale.is_empty() && std::env::var_os("UPDATE_README").is_some() {
        std::fs::write(path, readme).unwrap();
        return;
    }
    assert!(
        stale.is_empty(),
        "the README's diagrams of {stale:?} are out of date: run `UPDATE_README=1 cargo test --test diagrams`"
    );
}

#[test]
fn a_diagram_draws_every_node_edge_and_loop_of_the_graph() {
    for graph in [workflows::main_flow::graph(), workflows::run_job::graph()] {
        let mermaid = graph.to_mermaid();
        let dot = graph.to_dot();
        let arrow = |from: &str, e: &workflow::Edge| match e.on {
            workflow::Transition::Next => format!("{from} --> n{}", e.to),
            workflow::Transition::Error => format!("{from} -. error .-> n{}", e.to),
        };
        for (k, node) in graph.nodes.iter().enumerate() {
            assert!(
                mermaid.contains(&format!("n{k}")),
                "{}: {}",
                graph.workflow,
                node.name
            );
            assert!(
                dot.contains(&format!("n{k} [")),
                "{}: {}",
                graph.workflow,
                node.name
            );
            for e in node.edges {
                let arrow = arrow(&format!("n{k}"), e);
                assert!(mermaid.contains(&arrow), "{}: {arrow}", graph.workflow);
                assert!(dot.contains(&format!("n{k} -> n{}", e.to)));
            }
        }
        for e in graph.start {
            assert!(mermaid.contains(&arrow("start", e)), "{mermaid}");
            assert!(dot.contains(&format!("start -> n{}", e.to)));
        }
    }
    // The poll's loop, the children named, the error edges dashed.
    let job = workflows::run_job::graph().to_mermaid();
    assert!(job.contains(".-> n") && job.contains("not ready"), "{job}");
    let main = workflows::main_flow::graph().to_mermaid();
    assert!(main.contains("NestingPatternAnotherStateMachine"), "{main}");
    assert!(
        main.contains("[[\""),
        "children are subroutine boxes: {main}"
    );
}

/// A child node's two-line label stays one label in both languages.
#[test]
fn multi_line_labels_are_escaped() {
    let graph = workflows::main_flow::graph();
    assert!(graph
        .to_mermaid()
        .contains("<br/>→ NestingPatternAnotherStateMachine"));
    assert!(graph
        .to_dot()
        .contains("\\n→ NestingPatternAnotherStateMachine"));
}

/// The exact text of each diagram of the example, reviewed as a snapshot
/// (`cargo insta review` after an intended change).
#[test]
fn the_example_diagrams_are_the_reviewed_ones() {
    for graph in [workflows::main_flow::graph(), workflows::run_job::graph()] {
        insta::assert_snapshot!(format!("{}.mermaid", graph.workflow), graph.to_mermaid());
        insta::assert_snapshot!(format!("{}.dot", graph.workflow), graph.to_dot());
    }
}

/// The SVG is well-formed XML, and every node's name is written in it, once per node.
#[test]
fn the_svg_is_xml_that_names_every_node() {
    for graph in [workflows::main_flow::graph(), workflows::run_job::graph()] {
        let svg = graph.to_svg();
        let doc = roxmltree::Document::parse(&svg)
            .unwrap_or_else(|e| panic!("{}: not XML: {e}\n{svg}", graph.workflow));
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        let text: String = doc
            .descendants()
            .filter(|n| n.is_text())
            .filter_map(|n| n.text())
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            text.contains(graph.workflow),
            "the start names the workflow"
        );
        for node in graph.nodes {
            assert!(
                text.contains(node.name),
                "{}: no {}",
                graph.workflow,
                node.name
            );
        }
        // One box per node, and the start's circle.
        let shapes = doc
            .descendants()
            .filter(|n| matches!(n.tag_name().name(), "rect" | "ellipse" | "circle"))
            .count();
        assert!(shapes > graph.nodes.len(), "{shapes} shapes");
    }
}

/// An execution's path is coloured: the states it went through, the end it reached.
#[test]
fn a_highlighted_svg_colours_the_path_of_an_execution() {
    use workflow::{Event, EventKind, Highlight, Json, Timestamp};
    let graph = workflows::run_job::graph();
    let first = graph.nodes[0].name;
    let event = |state: Option<&'static str>, kind| Event {
        at: Timestamp(0),
        state: state.map(Into::into),
        kind,
    };
    let running = [event(Some(first), EventKind::TaskScheduled)];
    let highlight = Highlight::of(graph, &running);
    assert_eq!(highlight.current.as_deref(), Some(first));
    let svg = graph.to_svg_highlighted(&highlight);
    assert!(
        svg.contains("#ffd76e") && !svg.contains("#f4a6a6"),
        "the current state is amber"
    );

    let failed = [
        event(Some(first), EventKind::TaskScheduled),
        event(
            None,
            EventKind::ExecutionFailed {
                error: Json::null(),
                name: None,
            },
        ),
    ];
    let highlight = Highlight::of(graph, &failed);
    assert_eq!(highlight.current, None);
    assert!(highlight.visited.contains(first));
    let svg = graph.to_svg_highlighted(&highlight);
    assert!(
        svg.contains("#b8e6b8") && svg.contains("#f4a6a6"),
        "visited green, the failed end red"
    );
    assert!(
        !graph.to_svg().contains("#b8e6b8"),
        "nothing is coloured without an execution"
    );
}
