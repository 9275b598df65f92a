//! The (de)serialization of a state's fields, which compiles whether or not a field's
//! type has serde, and the one check that reports it if not. The methods resolve by
//! autoref: `ViaSerde` (on `Probe<T>`) when `T` has serde, else `Fallback` (on
//! `&Probe<T>`), which never runs in a program that compiled, as `persistable`
//! refused it.

use std::marker::PhantomData;

use crate::json::Json;

use serde::de::{DeserializeOwned, Deserializer, Error as _};
use serde::ser::{Error as _, Serialize, Serializer};

/// A type a workflow's state can save.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be persisted: it is not `Serialize`",
    label = "a local used after a yield point is saved with the state",
    note = "derive `serde::Serialize` and `serde::Deserialize` for it, or keep it out of the state: create it again after the yield point"
)]
pub trait Saves: Serialize {}

impl<T: Serialize> Saves for T {}

/// A type a workflow's state can restore.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be persisted: it is not `Deserialize`",
    label = "a local used after a yield point is restored with the state",
    note = "derive `serde::Deserialize` for it (owned: no borrowed fields), or keep it out of the state: create it again after the yield point"
)]
pub trait Restores: DeserializeOwned {}

impl<T: DeserializeOwned> Restores for T {}

/// Checks that `T` can be saved; then `Check::restorable` that it can be restored.
pub fn persistable<T: Saves>() {}

/// The check that a type can be restored, made only of a type that can be saved:
/// a type with neither is one error, not two.
pub struct Check<T>(PhantomData<T>);

impl<T> Check<T> {
    /// The check of `T`.
    pub const fn new() -> Self {
        Check(PhantomData)
    }
}

impl<T> Default for Check<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// For a type that can be saved: it must be restorable too.
pub trait Restorable<T> {
    /// Requires `T: Restores`.
    fn restorable(&self)
    where
        T: Restores,
    {
    }
}

impl<T: Serialize> Restorable<T> for Check<T> {}

/// For a type that cannot be saved, which `persistable` reports already.
pub trait Unsaved<T> {
    /// Nothing more to report.
    fn restorable(&self) {}
}

impl<T> Unsaved<T> for &Check<T> {}

/// Picks a field's codec.
pub struct Probe<T>(PhantomData<T>);

impl<T> Probe<T> {
    /// The probe of `T`.
    pub const fn new() -> Self {
        Probe(PhantomData)
    }
}

impl<T> Default for Probe<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// Through serde.
pub trait ViaSerde<T> {
    /// How a task's value of type `T` is recorded in the history.
    fn encoder(&self) -> Encoder<T>;
    /// Serializes `value`.
    fn ser<S: Serializer>(&self, value: &T, serializer: S) -> Result<S::Ok, S::Error>;
    /// Deserializes a `T`.
    fn de<'de, D: Deserializer<'de>>(&self, deserializer: D) -> Result<T, D::Error>;
}

/// How a task's value is recorded in the history: as JSON, if it has serde.
pub type Encoder<T> = fn(&T) -> Option<Json>;

impl<T: Serialize + DeserializeOwned> ViaSerde<T> for Probe<T> {
    fn encoder(&self) -> Encoder<T> {
        |value| Json::encode(value).ok()
    }
    fn ser<S: Serializer>(&self, value: &T, serializer: S) -> Result<S::Ok, S::Error> {
        value.serialize(serializer)
    }
    fn de<'de, D: Deserializer<'de>>(&self, deserializer: D) -> Result<T, D::Error> {
        T::deserialize(deserializer)
    }
}

/// For a type without serde, which `persistable` reports.
pub trait Fallback<T> {
    /// Not at all: a task's value without serde is recorded without its output (kept
    /// past a yield point, it is refused by `persistable`).
    fn encoder(&self) -> Encoder<T> {
        |_| None
    }
    /// Refuses.
    fn ser<S: Serializer>(&self, _: &T, _: S) -> Result<S::Ok, S::Error> {
        Err(S::Error::custom("the type is not `Serialize`"))
    }
    /// Refuses.
    fn de<'de, D: Deserializer<'de>>(&self, _: D) -> Result<T, D::Error> {
        Err(D::Error::custom("the type is not `Deserialize`"))
    }
}

impl<T> Fallback<T> for &Probe<T> {}
