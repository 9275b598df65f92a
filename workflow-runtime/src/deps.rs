//! What the runtime hands to generated code that is not the workflow's own: its
//! dependencies, and the faults that stop an execution. A leaf: it imports nothing else
//! of the crate.

use std::any::{Any, TypeId};
use std::borrow::Cow;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

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

/// A problem that stops an execution without it being the workflow's own error: a
/// panic in its code, a missing dependency, a state that does not serialize, a resume
/// without its data.
///
/// It has a [name](Self::name), as a workflow's errors do: [`Fault::PANIC`] for a panic,
/// [`Fault::NAME`] for the others. The ASL side raises the same names, so a deployed
/// execution fails with the error a native one faults with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(from = "Stored")]
#[error("{message}")]
pub struct Fault {
    name: Cow<'static, str>,
    message: String,
}

/// What a fault was stored as: its fields, or (written before faults had names) its
/// message alone.
#[derive(Deserialize)]
#[serde(untagged)]
enum Stored {
    Fields { name: String, message: String },
    Message(String),
}

impl From<Stored> for Fault {
    fn from(stored: Stored) -> Self {
        match stored {
            Stored::Fields { name, message } => Fault {
                name: match name.as_str() {
                    Fault::PANIC => Cow::Borrowed(Fault::PANIC),
                    Fault::NAME => Cow::Borrowed(Fault::NAME),
                    _ => Cow::Owned(name),
                },
                message,
            },
            Stored::Message(message) => Fault::new(message),
        }
    }
}

impl Fault {
    /// The name of every fault but a panic.
    pub const NAME: &'static str = "Workflow.Fault";
    /// The name of a panic in the workflow's code (a task, a predicate, the code between
    /// yield points), which a retry policy retries only if it names it.
    pub const PANIC: &'static str = "Workflow.Panic";

    pub(crate) fn new(message: impl Into<String>) -> Self {
        Fault {
            name: Cow::Borrowed(Self::NAME),
            message: message.into(),
        }
    }

    /// A fault of name `name`, as Step Functions reported it.
    pub(crate) fn named(name: &str, message: impl Into<String>) -> Self {
        Fault::from(Stored::Fields {
            name: name.to_owned(),
            message: message.into(),
        })
    }

    /// The fault of a panic of workflow `workflow`'s code, from the panic's payload.
    pub(crate) fn panic(workflow: &str, payload: &(dyn Any + Send)) -> Self {
        let what = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("a panic without a message");
        Fault {
            name: Cow::Borrowed(Self::PANIC),
            message: format!("workflow `{workflow}` panicked: {what}"),
        }
    }

    /// Its name: [`Fault::PANIC`] or [`Fault::NAME`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether it is a panic of the workflow's code.
    pub fn is_panic(&self) -> bool {
        self.name == Self::PANIC
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
