//! What the runtime hands to generated code that is not the workflow's own: its
//! dependencies, and the faults that stop an execution. A leaf: it imports nothing else
//! of the crate.

use std::any::{Any, TypeId};
use std::sync::Arc;

use crate::HashMap;

/// Dependencies injected into workflows' `&T` parameters, one value per type.
#[derive(Clone, Default)]
pub struct Deps {
    values: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
}

impl Deps {
    pub(crate) fn insert_arc<T: Any + Send + Sync>(&mut self, value: Arc<T>) {
        self.values.insert(TypeId::of::<T>(), value);
    }

    pub(crate) fn contains(&self, type_id: TypeId) -> bool {
        self.values.contains_key(&type_id)
    }

    /// The dependency of type `T`, if one was provided.
    pub fn get<T: Any>(&self) -> Option<&T> {
        self.values.get(&TypeId::of::<T>())?.downcast_ref()
    }
}

impl std::fmt::Debug for Deps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deps")
            .field("count", &self.values.len())
            .finish()
    }
}

/// A problem that stops an execution without it being the workflow's own error:
/// a missing dependency, a state that does not serialize, a resume without its data.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Fault {
    message: String,
}

impl Fault {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Fault {
            message: message.into(),
        }
    }

    /// What went wrong.
    pub fn message(&self) -> &str {
        &self.message
    }

    #[doc(hidden)]
    pub fn missing_dependency<T: ?Sized>() -> Self {
        Fault::new(format!(
            "no dependency of type `{}` was provided to the runtime",
            std::any::type_name::<T>()
        ))
    }

    #[doc(hidden)]
    pub fn unexpected_resume(state: &str) -> Self {
        Fault::new(format!(
            "state `{state}` was resumed without the child results it waits for"
        ))
    }
}
