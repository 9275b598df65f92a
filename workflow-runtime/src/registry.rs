//! Which workflows a runtime (or a step handler) serves: the registered ones and every
//! one they call, checked once, at build time.

use std::any::TypeId;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::asl::handler::{self, Entry};
use crate::context::Deps;
use crate::driver::{Erased, Typed};
use crate::error::BuildError;
use crate::graph::StateGraph;
use crate::workflow::{Linker, Workflow};

/// A workflow type, erased: its name, what it needs, and how to make the runtime's and the
/// step handler's views of it.
#[derive(Clone, Copy)]
pub(crate) struct WorkflowRef {
    pub(crate) name: &'static str,
    pub(crate) type_id: TypeId,
    link: fn(&mut Linker),
    graph: fn() -> &'static StateGraph,
    /// The native driver's view.
    pub(crate) driver: fn() -> Arc<dyn Erased>,
    /// The step handler's view.
    pub(crate) entry: fn() -> Arc<dyn Entry>,
}

impl WorkflowRef {
    pub(crate) fn of<W: Workflow>() -> Self {
        WorkflowRef {
            name: W::NAME,
            type_id: TypeId::of::<W>(),
            link: W::link,
            graph: W::graph,
            driver: || Arc::new(Typed::<W>(PhantomData)),
            entry: || Arc::new(handler::Typed::<W>(PhantomData)),
        }
    }
}

/// `roots` and every workflow they call, transitively, by name. Fails if two different
/// workflows share a name, if one needs a dependency `deps` does not have, or if a
/// policy has values the macro could not check (they were not literals).
pub(crate) fn link(
    roots: Vec<WorkflowRef>,
    deps: &Deps,
) -> Result<HashMap<&'static str, WorkflowRef>, BuildError> {
    let mut linked: HashMap<&'static str, WorkflowRef> = HashMap::new();
    let mut pending = roots;
    while let Some(w) = pending.pop() {
        if let Some(existing) = linked.get(w.name) {
            if existing.type_id != w.type_id {
                return Err(BuildError::DuplicateName { name: w.name });
            }
            continue;
        }
        for node in (w.graph)().nodes {
            if let Err(message) = node.policy().validate() {
                return Err(BuildError::InvalidPolicy {
                    workflow: w.name,
                    node: node.name,
                    message,
                });
            }
        }
        let mut linker = Linker::default();
        (w.link)(&mut linker);
        if let Some((_, type_name)) = linker.dependencies.iter().find(|(t, _)| !deps.contains(*t)) {
            return Err(BuildError::MissingDependency {
                workflow: w.name,
                type_name,
            });
        }
        pending.extend(linker.children);
        linked.insert(w.name, w);
    }
    Ok(linked)
}
