//! [`Json`]: a payload kept as its encoded text.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::Value;

/// A JSON document kept as its text: an execution's input, a task's output, an
/// execution's output or error.
///
/// The runtime writes payloads into the store and into histories, hands them to parents
/// and to [`Execution::result`](crate::Execution::result), and reads them back; kept as
/// text, none of that builds or copies a tree of [`Value`]s. Decode one with
/// [`decode`](Json::decode), or look inside with [`to_value`](Json::to_value).
///
/// Two documents are equal when they hold the same JSON value, whatever the order of
/// their keys or their spacing. A `Json` also compares with a [`Value`]:
///
/// ```
/// use serde_json::json;
/// use workflow_runtime::Json;
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Report {
///     job: String,
///     polls: u32,
/// }
///
/// let report = Json::encode(&Report { job: "job-1".into(), polls: 3 }).unwrap();
/// assert_eq!(report.as_str(), r#"{"job":"job-1","polls":3}"#);
/// assert_eq!(report, json!({"polls": 3, "job": "job-1"}));
///
/// let back: Report = report.decode().unwrap();
/// assert_eq!(back.polls, 3);
///
/// let bad = Json::parse("{\"job\":".to_owned()).unwrap_err();
/// assert!(bad.is_eof());
/// ```
#[derive(Clone)]
pub struct Json(Box<RawValue>);

impl Json {
    /// `value`'s JSON. Fails as [`serde_json::to_string`] does: a map with keys that are
    /// not strings, or a `Serialize` implementation that fails.
    pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Json, serde_json::Error> {
        serde_json::value::to_raw_value(value).map(Json)
    }

    /// Checks that `text` is one JSON document and keeps it as it is.
    pub fn parse(text: String) -> Result<Json, serde_json::Error> {
        RawValue::from_string(text).map(Json)
    }

    /// JSON `null`.
    pub fn null() -> Json {
        Json::from(&Value::Null)
    }

    /// The document's text.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// The document's text, owned.
    pub fn into_string(self) -> String {
        Box::<str>::from(self.0).into_string()
    }

    /// Decodes the document into a `T`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.0.get())
    }

    /// The document as a [`Value`] tree.
    pub fn to_value(&self) -> Value {
        // The text was checked when this `Json` was made.
        serde_json::from_str(self.0.get()).unwrap_or(Value::Null)
    }
}

impl From<&Value> for Json {
    fn from(value: &Value) -> Json {
        // A `Value` always serializes: its map keys are strings.
        Json::encode(value).unwrap_or_else(|_| unreachable!("a Value serializes"))
    }
}

impl From<Value> for Json {
    fn from(value: Value) -> Json {
        Json::from(&value)
    }
}

impl PartialEq for Json {
    fn eq(&self, other: &Json) -> bool {
        self.as_str() == other.as_str() || self.to_value() == other.to_value()
    }
}

impl PartialEq<Value> for Json {
    fn eq(&self, other: &Value) -> bool {
        self.to_value() == *other
    }
}

impl PartialEq<Json> for Value {
    fn eq(&self, other: &Json) -> bool {
        other == self
    }
}

impl fmt::Debug for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Json {
    /// Written as the JSON it holds (not as a string of it).
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Json {
    /// Reads any JSON value. Through a [`Value`], so that it also reads where serde
    /// buffers the input first (inside an internally tagged enum such as
    /// [`EventKind`](crate::EventKind)), which a raw value cannot.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Json, D::Error> {
        Value::deserialize(deserializer).map(Json::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn equality_is_of_values_not_of_text() {
        let a = Json::parse(r#"{"a":1,"b":[true,null]}"#.to_owned()).unwrap();
        let b = Json::parse(r#"{ "b": [true, null], "a": 1 }"#.to_owned()).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, Json::from(json!({"a": 2, "b": [true, null]})));
        assert_eq!(a, json!({"b": [true, null], "a": 1}));
    }

    #[test]
    fn serializes_as_the_json_it_holds() {
        let inner = Json::from(json!({"x": "y"}));
        let outer = serde_json::to_string(&json!({"wrapped": inner.to_value()})).unwrap();
        let direct = serde_json::to_string(&Wrapper { wrapped: inner }).unwrap();
        assert_eq!(direct, outer);
        assert_eq!(direct, r#"{"wrapped":{"x":"y"}}"#);
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Wrapper {
        wrapped: Json,
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    #[serde(tag = "type")]
    enum Tagged {
        Holds { payload: Json },
    }

    #[test]
    fn reads_back_inside_an_internally_tagged_enum() {
        let tagged = Tagged::Holds {
            payload: Json::from(json!([1, {"k": "v"}])),
        };
        let text = serde_json::to_string(&tagged).unwrap();
        assert_eq!(text, r#"{"type":"Holds","payload":[1,{"k":"v"}]}"#);
        assert_eq!(serde_json::from_str::<Tagged>(&text).unwrap(), tagged);
        let value = serde_json::to_value(&tagged).unwrap();
        assert_eq!(serde_json::from_value::<Tagged>(value).unwrap(), tagged);
    }

    #[test]
    fn refuses_text_that_is_not_one_document() {
        assert!(Json::parse("{} {}".to_owned()).is_err());
        assert!(Json::parse(String::new()).is_err());
        assert!(Json::parse("[1,".to_owned()).is_err());
    }
}
