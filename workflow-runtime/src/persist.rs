//! The (de)serialization of the generated state enum: its compact encoding (see
//! [`State`]) and each field's codec, which compiles whether or not the field's type has
//! serde, with the one check that reports it if not. The codecs resolve by autoref:
//! `ViaSerde` (on `Probe<T>`) when `T` has serde, else `Fallback` (on `&Probe<T>`), which
//! never runs in a program that compiled, as `persistable` refused it.

use std::fmt;
use std::marker::PhantomData;

use crate::json::Json;

use serde::de::{
    DeserializeOwned, DeserializeSeed, Deserializer, Error as _, IgnoredAny, SeqAccess, Visitor,
};
use serde::ser::{Error as _, Serialize, SerializeTuple, Serializer};

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
    /// `value`, as a field of the state.
    fn save<'a>(&self, value: &'a T) -> Save<'a, T>;
    /// What reads a field of type `T`.
    fn load(&self) -> Load<T>;
}

/// How a task's value is recorded in the history: as JSON, if it has serde.
pub type Encoder<T> = fn(&T) -> Option<Json>;

impl<T: Serialize + DeserializeOwned> ViaSerde<T> for Probe<T> {
    fn encoder(&self) -> Encoder<T> {
        |value| Json::encode(value).ok()
    }
    fn save<'a>(&self, value: &'a T) -> Save<'a, T> {
        Save(value)
    }
    fn load(&self) -> Load<T> {
        Load(PhantomData)
    }
}

/// For a type without serde, which `persistable` reports.
pub trait Fallback<T> {
    /// Not at all: a task's value without serde is recorded without its output (kept
    /// past a yield point, it is refused by `persistable`).
    fn encoder(&self) -> Encoder<T> {
        |_| None
    }
    /// Refuses to write it.
    fn save(&self, _: &T) -> Refuse<T> {
        Refuse(PhantomData)
    }
    /// Refuses to read it.
    fn load(&self) -> Refuse<T> {
        Refuse(PhantomData)
    }
}

impl<T> Fallback<T> for &Probe<T> {}

/// A field written through serde.
pub struct Save<'a, T>(&'a T);

impl<T: Serialize> Serialize for Save<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

/// A field read through serde.
pub struct Load<T>(PhantomData<T>);

impl<'de, T: DeserializeOwned> DeserializeSeed<'de> for Load<T> {
    type Value = T;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<T, D::Error> {
        T::deserialize(deserializer)
    }
}

/// A field of a type without serde: never written or read in a program that compiled.
pub struct Refuse<T>(PhantomData<T>);

impl<T> Serialize for Refuse<T> {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(S::Error::custom("the type is not `Serialize`"))
    }
}

impl<'de, T> DeserializeSeed<'de> for Refuse<T> {
    type Value = T;
    fn deserialize<D: Deserializer<'de>>(self, _: D) -> Result<T, D::Error> {
        Err(D::Error::custom("the type is not `Deserialize`"))
    }
}

// The state enum is written as one array per variant, `[tag, field, …]`: the variant's
// index, then its fields in declaration order (a poll's progress last). serde's derive
// would write `{"Variant": {"field": …}}`, but it generates about a thousand lines per
// workflow (a visitor per variant, for maps and sequences, and identifiers for every
// name), which dominated the compile time of a crate of workflows (issue 22). Here the
// generated code is one `match` each way; what does not depend on the workflow's types
// (the tuple's framing, the tag, the length checks, the messages) is below, compiled
// once per serializer.

/// Writes variant `tag` with its `fields`, `(first, (second, ()))`: a list rather than
/// one call per field, which is less code per workflow for every check to go through.
pub fn variant<S: Serializer, F: Written>(
    serializer: S,
    tag: u32,
    fields: F,
) -> Result<S::Ok, S::Error> {
    let mut tuple = serializer.serialize_tuple(F::LEN + 1)?;
    tuple.serialize_element(&tag)?;
    fields.write(&mut tuple)?;
    tuple.end()
}

/// The fields of a variant to write, as a list: `()`, or a field and the rest.
pub trait Written {
    /// How many fields.
    const LEN: usize;
    /// Writes them in order.
    fn write<T: SerializeTuple>(&self, tuple: &mut T) -> Result<(), T::Error>;
}

impl Written for () {
    const LEN: usize = 0;
    fn write<T: SerializeTuple>(&self, _: &mut T) -> Result<(), T::Error> {
        Ok(())
    }
}

impl<F: Serialize, R: Written> Written for (F, R) {
    const LEN: usize = 1 + R::LEN;
    fn write<T: SerializeTuple>(&self, tuple: &mut T) -> Result<(), T::Error> {
        tuple.serialize_element(&self.0)?;
        self.1.write(tuple)
    }
}

/// A state enum in the compact encoding: what the generated code implements, one impl
/// for both ways (serde's two traits would be two more impls per workflow for every
/// check of a crate to go through). The runtime writes and reads states through two
/// crate-private adapters that give it serde's `Serialize` and `DeserializeSeed`.
pub trait State: Sized {
    /// Writes the state, with [`variant`].
    fn write<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error>;

    /// Reads the fields of variant `tag` from `fields`.
    fn read<'de, A: SeqAccess<'de>>(tag: u32, fields: &mut Fields<A>) -> Result<Self, A::Error>;
}

/// The state of a definition `#[workflow]` rejected (the stand-in it emits so that the
/// rest of the crate compiles): there is none.
pub enum Rejected {}

impl State for Rejected {
    fn write<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        match *self {}
    }

    fn read<'de, A: SeqAccess<'de>>(_: u32, _: &mut Fields<A>) -> Result<Self, A::Error> {
        Err(A::Error::custom("the workflow's definition was rejected"))
    }
}

/// A state, to serialize with serde.
pub(crate) struct Saved<'a, S>(pub(crate) &'a S);

impl<S: State> Serialize for Saved<'_, S> {
    fn serialize<Z: Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
        self.0.write(serializer)
    }
}

/// A state, deserialized with serde.
pub(crate) struct Restored<S>(pub(crate) S);

impl<'de, S: State> serde::Deserialize<'de> for Restored<S> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_seq(StateVisitor(PhantomData))
            .map(Restored)
    }
}

/// A state as JSON bytes.
pub(crate) fn to_vec<S: State>(state: &S) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec(&Saved(state))
}

/// A state from JSON bytes.
pub(crate) fn from_slice<S: State>(bytes: &[u8]) -> serde_json::Result<S> {
    serde_json::from_slice::<Restored<S>>(bytes).map(|r| r.0)
}

/// A state from a JSON value.
pub(crate) fn from_value<S: State>(value: serde_json::Value) -> serde_json::Result<S> {
    serde_json::from_value::<Restored<S>>(value).map(|r| r.0)
}

struct StateVisitor<S>(PhantomData<S>);

impl<'de, S: State> Visitor<'de> for StateVisitor<S> {
    type Value = S;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a workflow state, `[variant, field, …]`")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<S, A::Error> {
        let tag: u32 = seq
            .next_element()?
            .ok_or_else(|| A::Error::invalid_length(0, &self))?;
        let mut fields = Fields { seq, read: 0 };
        let state = S::read(tag, &mut fields)?;
        if fields.seq.next_element::<IgnoredAny>()?.is_some() {
            return Err(A::Error::invalid_length(
                fields.read + 2,
                &"no more fields for the variant",
            ));
        }
        Ok(state)
    }
}

/// A fingerprint an earlier build of the same definition stored its executions under,
/// which this build still resumes: `#[workflow]` computes these only with the
/// `legacy-fingerprints` feature (see the README's upgrade notes).
///
/// Two kinds: a state written as today (`[tag, field, …]`) under the fingerprint that
/// hashed the text rustc printed for the definition's tokens (until the fingerprint
/// became toolchain-independent); and a state written by serde's derive before issue
/// 22, `{"Variant": {"field": …}}`, converted to today's form on reading (each field's
/// own JSON is the same in both).
#[derive(Clone, Copy, Debug)]
pub struct Legacy {
    /// The fingerprint.
    pub fingerprint: u64,
    /// For a state written by serde's derive: each variant's name and fields, in tag
    /// order. `None`: written as today.
    pub derived: Option<&'static [(&'static str, &'static [&'static str])]>,
}

impl Legacy {
    /// `state` in today's encoding: a state in it (an execution already resumed since
    /// the upgrade keeps its stored fingerprint) as it is, one written by serde's derive
    /// converted.
    pub(crate) fn upgrade(&self, state: serde_json::Value) -> Result<serde_json::Value, String> {
        use serde_json::Value;
        let Some(variants) = self.derived else {
            return Ok(state);
        };
        let Value::Object(outer) = state else {
            return Ok(state);
        };
        let mut entries = outer.into_iter();
        let (Some((variant, fields)), None) = (entries.next(), entries.next()) else {
            return Err("a state written before issue 22 has one variant".into());
        };
        let tag = variants
            .iter()
            .position(|(name, _)| *name == variant)
            .ok_or_else(|| format!("no variant `{variant}` in the workflow's state"))?;
        let Value::Object(mut fields) = fields else {
            return Err(format!("variant `{variant}` is not written as an object"));
        };
        let mut array = vec![Value::from(tag)];
        for name in variants[tag].1 {
            let value = fields
                .remove(*name)
                .ok_or_else(|| format!("variant `{variant}` has no field `{name}`"))?;
            array.push(value);
        }
        Ok(Value::Array(array))
    }
}

/// How workflow `W` reads a state stored with `fingerprint`: `None` if it does not;
/// `Some(None)` as it is (its own fingerprint); `Some(Some(legacy))` through `legacy`.
fn reader<W: crate::Workflow>(fingerprint: u64) -> Option<Option<&'static Legacy>> {
    if fingerprint == W::FINGERPRINT {
        return Some(None);
    }
    W::LEGACY
        .iter()
        .find(|l| l.fingerprint == fingerprint)
        .map(Some)
}

/// Whether workflow `W` resumes a state stored with `fingerprint`: its own, or one of
/// its [`Legacy`] fingerprints.
pub(crate) fn reads<W: crate::Workflow>(fingerprint: u64) -> bool {
    reader::<W>(fingerprint).is_some()
}

/// The state `W` stored with `fingerprint`, in today's encoding.
pub(crate) fn stored_state<W: crate::Workflow>(
    fingerprint: u64,
    state: &[u8],
) -> Result<W::State, String> {
    match reader::<W>(fingerprint).flatten() {
        Some(
            legacy @ Legacy {
                derived: Some(_), ..
            },
        ) => {
            let value = serde_json::from_slice(state).map_err(|e| e.to_string())?;
            from_value(legacy.upgrade(value)?).map_err(|e| e.to_string())
        }
        _ => from_slice(state).map_err(|e| e.to_string()),
    }
}

/// The fields of one variant, read in order.
pub struct Fields<A> {
    seq: A,
    read: usize,
}

impl<'de, A: SeqAccess<'de>> Fields<A> {
    /// The next field, read by `load` (a [`Load`]).
    pub fn next<L: DeserializeSeed<'de>>(&mut self, load: L) -> Result<L::Value, A::Error> {
        self.read += 1;
        self.seq
            .next_element_seed(load)?
            .ok_or_else(|| A::Error::invalid_length(self.read, &"more fields for the variant"))
    }

    /// The error for a tag that names no variant.
    pub fn unknown(&self, tag: u32) -> A::Error {
        A::Error::custom(format_args!("no variant {tag} in the workflow's state"))
    }
}

#[cfg(test)]
mod tests {
    use super::Legacy;
    use serde_json::json;

    const LEGACY: Legacy = Legacy {
        fingerprint: 7,
        derived: Some(&[("Start", &["a", "b"]), ("PollX", &["a", "__wf_poll"])]),
    };

    #[test]
    fn a_state_written_by_serde_s_derive_is_converted_in_field_order() {
        let old = json!({"PollX": {"__wf_poll": [[1, 2]], "a": "x"}});
        assert_eq!(LEGACY.upgrade(old), Ok(json!([1, "x", [[1, 2]]])));
        assert_eq!(
            LEGACY.upgrade(json!({"Start": {"b": 2, "a": 1}})),
            Ok(json!([0, 1, 2]))
        );
    }

    #[test]
    fn a_state_in_today_s_encoding_is_kept_and_a_bad_one_refused() {
        assert_eq!(LEGACY.upgrade(json!([0, 1, 2])), Ok(json!([0, 1, 2])));
        let missing = LEGACY.upgrade(json!({"Start": {"a": 1}})).unwrap_err();
        assert!(missing.contains("no field `b`"), "{missing}");
        let unknown = LEGACY.upgrade(json!({"Other": {}})).unwrap_err();
        assert!(unknown.contains("no variant `Other`"), "{unknown}");
        assert!(LEGACY.upgrade(json!({"Start": {}, "PollX": {}})).is_err());
    }

    #[test]
    fn a_state_under_a_printed_fingerprint_is_read_as_it_is() {
        let printed = Legacy {
            fingerprint: 7,
            derived: None,
        };
        let object = json!({"Start": {"a": 1}});
        assert_eq!(printed.upgrade(object.clone()), Ok(object));
    }
}
