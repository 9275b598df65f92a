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
