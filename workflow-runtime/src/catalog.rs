//! The workflows a program knows, by name: what tools that draw or deploy them look up.

use std::collections::BTreeMap;

use crate::asl::{StateMachine, Target};
use crate::graph::StateGraph;
use crate::registry::{self, View, WorkflowRef};
use crate::workflow::Workflow;

/// Workflows by name, with their state graphs and their ASL definitions: what the
/// `workflow` command-line tool and the console draw. A [`Runtime`](crate::Runtime) has
/// one of the workflows it registers ([`Runtime::catalog`](crate::Runtime::catalog)); a
/// program that only inspects a store builds its own.
///
/// ```
/// use workflow_runtime::Catalog;
/// # use workflow::prelude::*;
/// # #[workflow] async fn child(n: u32) -> u32 { n }
/// # #[workflow] async fn parent(n: u32) -> Result<u32, NestedError<NoError>> {
/// #     call_nested!(child(n))
/// # }
///
/// let catalog = Catalog::new().register(parent); // and `child`, which it calls
/// assert_eq!(catalog.names().collect::<Vec<_>>(), ["child", "parent"]);
/// assert!(catalog.graph("parent").unwrap().to_mermaid().contains("→ child"));
/// assert_eq!(catalog.asl("child").unwrap().workflow(), "child");
/// ```
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct Catalog {
    graphs: BTreeMap<&'static str, &'static StateGraph>,
}

/// The catalog keeps nothing of a workflow but its graph.
pub(crate) struct Graphs;

impl View for Graphs {
    type Of = ();
    fn of<W: Workflow>() {}
}

impl Catalog {
    /// An empty catalog.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a workflow and every workflow it calls with `call_nested!`.
    ///
    /// # Panics
    ///
    /// If another workflow type has the same name: [`Builder::build`](crate::Builder::build)
    /// refuses the same program with [`BuildError::DuplicateName`](crate::BuildError::DuplicateName).
    pub fn register<W: Workflow>(mut self, _workflow: W) -> Self {
        let linked = match registry::link::<Graphs>(vec![WorkflowRef::of::<W>()], None) {
            Ok(linked) => linked,
            Err(e) => panic!("cannot add workflow `{}` to a catalog: {e}", W::NAME),
        };
        for (name, w) in linked {
            let graph = w.graph();
            if let Some(existing) = self.graphs.insert(name, graph) {
                assert!(
                    std::ptr::eq(existing, graph),
                    "two different workflows are named `{name}`"
                );
            }
        }
        self
    }

    pub(crate) fn from_graphs(graphs: impl IntoIterator<Item = &'static StateGraph>) -> Self {
        Catalog {
            graphs: graphs.into_iter().map(|g| (g.workflow, g)).collect(),
        }
    }

    /// The names of the workflows, sorted.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.graphs.keys().copied()
    }

    /// The state graphs of the workflows, sorted by name.
    pub fn graphs(&self) -> impl Iterator<Item = &'static StateGraph> + '_ {
        self.graphs.values().copied()
    }

    /// The state graph of the workflow named `name`.
    pub fn graph(&self, name: &str) -> Option<&'static StateGraph> {
        self.graphs.get(name).copied()
    }

    /// The ASL definition of the workflow named `name`, for the step handler as a
    /// Lambda function.
    pub fn asl(&self, name: &str) -> Option<StateMachine> {
        self.asl_for(name, Target::Lambda)
    }

    /// The ASL definition of the workflow named `name`, for `target`.
    pub fn asl_for(&self, name: &str, target: Target) -> Option<StateMachine> {
        self.graph(name).map(|g| crate::asl::emit(g, target))
    }

    /// Whether it has no workflow.
    pub fn is_empty(&self) -> bool {
        self.graphs.is_empty()
    }
}
