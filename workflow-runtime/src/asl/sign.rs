//! Signed documents: the step handler's answers carry an HMAC-SHA-256 of what the next
//! request brings back, so that whoever may invoke the Lambda cannot make up a state.
//!
//! The MAC is over a canonical form of the JSON (object keys sorted, numbers written
//! one way), not over the bytes the handler wrote: the document travels through Step
//! Functions (or a JavaScript interpreter), which may reorder keys and rewrite `1.0` as
//! `1`. Two documents with the same canonical form mean the same to the handler.
//!
//! What is signed, and what cannot be, is explained on [`StepHandler`](super::StepHandler).

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// Fields of a document that Step Functions itself adds between two Lambda states (a
/// `ResultPath` of a child Task, Parallel, Map, callback Task or `Catch`): not the
/// handler's to sign.
pub(super) const ADDED_BY_STEP_FUNCTIONS: [&str; 5] = [
    "children_result",
    "children_error",
    "caught",
    "callback_result",
    "callback_error",
];

/// The document's field that holds its signature.
pub(super) const SIGNATURE: &str = "signature";

/// Domain separation: a document's MAC can never pass for a child's ticket, nor the
/// other way round, nor for a later version of either.
const DOCUMENT: &[u8] = b"workflow step document v1";
const CHILD: &[u8] = b"workflow child ticket v1";

/// The step handler's signing key, ready to MAC.
#[derive(Clone)]
pub(crate) struct StateKey(Hmac<Sha256>);

impl StateKey {
    /// The shortest key accepted: HMAC-SHA-256's own output size.
    pub(crate) const MIN_LEN: usize = 32;

    pub(crate) fn new(key: &[u8]) -> Result<StateKey, String> {
        if key.len() < Self::MIN_LEN {
            return Err(format!(
                "the key has {} bytes; use at least {} random bytes",
                key.len(),
                Self::MIN_LEN
            ));
        }
        // HMAC takes a key of any length; the error is for fixed-size MACs.
        Hmac::new_from_slice(key)
            .map(StateKey)
            .map_err(|e| e.to_string())
    }

    /// The MAC of a document that execution `execution` (`$$.Execution.Id`) will bring
    /// back: every field but its signature and those Step Functions adds.
    fn document_mac(&self, execution: &str, doc: &Value) -> Hmac<Sha256> {
        let mut mac = self.0.clone();
        field(&mut mac, DOCUMENT);
        field(&mut mac, execution.as_bytes());
        let mut text = Vec::new();
        match doc {
            Value::Object(m) => {
                let kept = m.iter().filter(|(k, _)| {
                    k.as_str() != SIGNATURE && !ADDED_BY_STEP_FUNCTIONS.contains(&k.as_str())
                });
                canonical_object(kept, &mut text);
            }
            other => canonical(other, &mut text),
        }
        mac.update(&text);
        mac
    }

    /// The signature to put in an answer.
    pub(super) fn sign_document(&self, execution: &str, doc: &Value) -> String {
        hex(&self.document_mac(execution, doc).finalize().into_bytes())
    }

    /// Whether `doc` carries a valid signature for `execution` (constant-time).
    pub(super) fn verify_document(&self, execution: &str, doc: &Value) -> Result<(), String> {
        let signature = doc
            .get(SIGNATURE)
            .ok_or("the document is not signed")?
            .as_str()
            .and_then(unhex)
            .ok_or("the document's signature is not a hex string")?;
        self.document_mac(execution, doc)
            .verify_slice(&signature)
            .map_err(|_| "the document's signature does not match it: it was not answered by this handler for this execution, or it was changed since".to_owned())
    }

    fn child_mac(&self, workflow: &str, id: &str, input: &Value) -> Hmac<Sha256> {
        let mut mac = self.0.clone();
        field(&mut mac, CHILD);
        field(&mut mac, workflow.as_bytes());
        field(&mut mac, id.as_bytes());
        let mut text = Vec::new();
        canonical(input, &mut text);
        mac.update(&text);
        mac
    }

    /// The ticket that lets a child execution of `workflow` on `input` take the id `id`
    /// its parent chose.
    pub(super) fn sign_child(&self, workflow: &str, id: &str, input: &Value) -> String {
        hex(&self.child_mac(workflow, id, input).finalize().into_bytes())
    }

    /// Whether `ticket` is the one [`sign_child`](Self::sign_child) gave (constant-time).
    pub(super) fn verify_child(
        &self,
        workflow: &str,
        id: &str,
        input: &Value,
        ticket: &str,
    ) -> bool {
        unhex(ticket).is_some_and(|t| self.child_mac(workflow, id, input).verify_slice(&t).is_ok())
    }
}

/// A length-prefixed field, so that no two sequences of fields MAC the same bytes.
fn field(mac: &mut Hmac<Sha256>, bytes: &[u8]) {
    mac.update(&(bytes.len() as u64).to_be_bytes());
    mac.update(bytes);
}

/// The canonical text of `v`: objects with their keys sorted (by their UTF-8 bytes),
/// no whitespace, strings as `serde_json` escapes them, and every whole number as an
/// integer, whatever its text was (`1.0`, `1`, `1e0`; JavaScript writes a whole `f64`
/// without a fraction). An integer that JavaScript cannot hold (above 2⁵³ and not a
/// whole `f64`) comes back changed, and so no longer verifies: better refused than
/// resumed with another number.
pub(super) fn canonical(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) => number(n, out),
        Value::String(s) => string(s, out),
        Value::Array(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical(x, out);
            }
            out.push(b']');
        }
        Value::Object(m) => canonical_object(m.iter(), out),
    }
}

fn canonical_object<'a>(entries: impl Iterator<Item = (&'a String, &'a Value)>, out: &mut Vec<u8>) {
    let mut entries: Vec<(&String, &Value)> = entries.collect();
    entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    out.push(b'{');
    for (i, (k, x)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(k, out);
        out.push(b':');
        canonical(x, out);
    }
    out.push(b'}');
}

fn string(s: &str, out: &mut Vec<u8>) {
    // Writing a `&str` to a `Vec` cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn number(n: &serde_json::Number, out: &mut Vec<u8>) {
    /// 2⁶⁴: a whole `f64` below it is also a `u64` or an `i64` (as `serde_json` reads
    /// the integer JavaScript writes for it).
    const INTEGERS: f64 = 18_446_744_073_709_551_616.0;
    let text = if let Some(i) = n.as_i64() {
        i.to_string()
    } else if let Some(u) = n.as_u64() {
        u.to_string()
    } else {
        match n.as_f64() {
            // Exact: `f` is whole and within ±2⁶⁴.
            Some(f) if f.fract() == 0.0 && f.abs() < INTEGERS => (f as i128).to_string(),
            _ => n.to_string(),
        }
    };
    out.extend_from_slice(text.as_bytes());
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    let digit = |c: u8| (c as char).to_digit(16).and_then(|d| u8::try_from(d).ok());
    let s = s.as_bytes();
    if s.len() % 2 != 0 {
        return None;
    }
    s.chunks(2)
        .map(|p| Some((digit(p[0])? << 4) | digit(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn text(v: &Value) -> String {
        let mut out = Vec::new();
        canonical(v, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn canonical_text_ignores_key_order_and_number_spelling() {
        let a: Value =
            serde_json::from_str(r#"{"b": [1.0, 2.5, -0.0, 1e19], "a": {"y": 1e2, "x": "é\n"}}"#)
                .unwrap();
        let b: Value = serde_json::from_str(
            r#"{"a": {"x": "é\n", "y": 100}, "b": [1, 2.5, 0, 10000000000000000000]}"#,
        )
        .unwrap();
        assert_eq!(text(&a), text(&b));
        assert_eq!(
            text(&b),
            r#"{"a":{"x":"é\n","y":100},"b":[1,2.5,0,10000000000000000000]}"#
        );
        assert_ne!(text(&json!({"a": 1})), text(&json!({"a": "1"})));
    }

    #[test]
    fn documents_verify_only_unchanged_and_for_their_execution() {
        let key = StateKey::new(&[7; 32]).unwrap();
        let mut doc = json!({"workflow": "w", "state": {"AfterX": {"n": 1}}, "next": "x"});
        let signature = key.sign_document("e", &doc);
        doc[SIGNATURE] = json!(signature);
        assert!(key.verify_document("e", &doc).is_ok());
        assert!(key.verify_document("other", &doc).is_err());
        // What Step Functions adds is not signed.
        let mut added = doc.clone();
        added["children_result"] = json!([{"output": 1}]);
        added["caught"] = json!({"Error": "E"});
        assert!(key.verify_document("e", &added).is_ok());
        let mut forged = doc.clone();
        forged["state"]["AfterX"]["n"] = json!(2);
        assert!(key.verify_document("e", &forged).is_err());
        let mut extra = doc.clone();
        extra["output"] = json!(1);
        assert!(key.verify_document("e", &extra).is_err());
        let other = StateKey::new(&[8; 32]).unwrap();
        assert!(other.verify_document("e", &doc).is_err());
        let mut unsigned = doc.clone();
        unsigned.as_object_mut().unwrap().remove(SIGNATURE);
        assert!(key.verify_document("e", &unsigned).is_err());
        assert!(StateKey::new(&[1; 31]).is_err());
    }

    #[test]
    fn child_tickets_bind_workflow_id_and_input() {
        let key = StateKey::new(b"0123456789abcdef0123456789abcdef").unwrap();
        let t = key.sign_child("w", "p/1.0", &json!({"a": 1}));
        assert!(key.verify_child("w", "p/1.0", &json!({"a": 1.0}), &t));
        assert!(!key.verify_child("w", "p/1.1", &json!({"a": 1}), &t));
        assert!(!key.verify_child("v", "p/1.0", &json!({"a": 1}), &t));
        assert!(!key.verify_child("w", "p/1.0", &json!({"a": 2}), &t));
        assert!(!key.verify_child("w", "p/1.0", &json!({"a": 1}), "zz"));
        assert_eq!(unhex(&hex(&[0, 15, 16, 255])), Some(vec![0, 15, 16, 255]));
    }
}
