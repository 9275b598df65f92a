//! Which workflows a runtime (or a step handler) serves: the registered ones and every
//! one they call, checked once, at build time.
//!
//! Generic over the [`View`] its user keeps of each workflow (the runtime a driver, the
//! step handler an entry), so that this module imports neither.

use std::any::TypeId;
use std::collections::HashMap;

use crate::deps::Deps;
use crate::error::BuildError;
use crate::graph::StateGraph;
use crate::workflow::{Linker, Workflow};

/// What a registry's user keeps of each workflow type, made while the type is known.
pub(crate) trait View: 'static {
    type Of: Clone;
    fn of<W: Workflow>() -> Self::Of;
}

/// A workflow type, erased: its name, what it needs, and the user's view of it.
pub(crate) struct WorkflowRef<V: View> {
    pub(crate) name: &'static str,
    pub(crate) type_id: TypeId,
    link: fn(&mut Links<V>),
    graph: fn() -> &'static StateGraph,
    pub(crate) view: V::Of,
}

impl<V: View> WorkflowRef<V> {
    pub(crate) fn of<W: Workflow>() -> Self {
        WorkflowRef {
            name: W::NAME,
            type_id: TypeId::of::<W>(),
            link: W::link::<Links<V>>,
            graph: W::graph,
            view: V::of::<W>(),
        }
    }

    pub(crate) fn graph(&self) -> &'static StateGraph {
        (self.graph)()
    }
}

/// What one workflow's `link` reported.
struct Links<V: View> {
    dependencies: Vec<(TypeId, &'static str)>,
    children: Vec<WorkflowRef<V>>,
}

impl<V: View> Linker for Links<V> {
    fn dependency<T: 'static>(&mut self) {
        self.dependencies
            .push((TypeId::of::<T>(), std::any::type_name::<T>()));
    }

    fn child<W: Workflow>(&mut self, _workflow: W) {
        self.children.push(WorkflowRef::of::<W>());
    }
}

/// `roots` and every workflow they call, transitively, by name. Fails if two different
/// workflows share a name, if one needs a dependency `deps` does not have (unless
/// `deps` is `None`: for a program that will not run them), or if a policy has values
/// the macro could not check (they were not literals).
pub(crate) fn link<V: View>(
    roots: Vec<WorkflowRef<V>>,
    deps: Option<&Deps>,
) -> Result<HashMap<&'static str, WorkflowRef<V>>, BuildError> {
    let mut linked: HashMap<&'static str, WorkflowRef<V>> = HashMap::new();
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
        let mut links = Links {
            dependencies: Vec::new(),
            children: Vec::new(),
        };
        (w.link)(&mut links);
        let missing = |(t, _): &&(TypeId, &'static str)| deps.is_some_and(|d| !d.contains(*t));
        if let Some((_, type_name)) = links.dependencies.iter().find(missing) {
            return Err(BuildError::MissingDependency {
                workflow: w.name,
                type_name,
            });
        }
        pending.extend(links.children);
        linked.insert(w.name, w);
    }
    Ok(linked)
}
