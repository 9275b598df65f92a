//! The token a `wait_for_callback!` hands out, and the random bits it is made of.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{CompletionError, PendingCallback};
use crate::execution::ExecutionId;

/// The prefix of a token the native runtime issued: `wf1.{callback}.{secret}.{execution}`.
const NATIVE: &str = "wf1";
/// The prefix of a token that wraps a Step Functions task token: `sfn1.{task token}`.
const STEP_FUNCTIONS: &str = "sfn1";

/// Hex digits of a callback's public id (64 random bits): what the history and errors
/// name it by.
pub(crate) const ID_HEX: usize = 16;
/// Hex digits of a callback's secret (128 random bits): what makes a token unguessable.
pub(crate) const SECRET_HEX: usize = 32;

/// The longest Step Functions task token (the API's limit).
const MAX_TASK_TOKEN: usize = 1024;

/// The token of one `wait_for_callback!`: whoever holds it can complete, fail or
/// heartbeat that callback, and only that one.
///
/// It is opaque text (`Display`, `FromStr`, serde as a string), safe to put in an
/// e-mail, a URL or a message queue and to parse back where the answer comes in. A
/// token issued by the native runtime names its execution and carries 128 random bits
/// that the runtime checks against the callback the execution waits on, so it cannot
/// be guessed, nor used for another callback or another execution. On Step Functions
/// it wraps the task token of the `.waitForTaskToken` state instead (see
/// [`asl::TaskCompletion`](crate::asl::TaskCompletion) for completing it).
///
/// ```
/// use workflow_runtime::{CallbackToken, CompletionError};
///
/// let token: CallbackToken = "wf1.0123456789abcdef.0123456789abcdef0123456789abcdef.run-1"
///     .parse()
///     .unwrap();
/// assert_eq!(token.execution().unwrap().as_str(), "run-1");
/// assert_eq!(token.callback(), Some("0123456789abcdef"));
///
/// let forged = "wf1.0123.guess.run-1".parse::<CallbackToken>();
/// assert!(matches!(forged, Err(CompletionError::Malformed { .. })));
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CallbackToken(String);

/// What a token is made of.
pub(crate) enum Parts<'a> {
    Native {
        callback: &'a str,
        secret: &'a str,
        execution: &'a str,
    },
    StepFunctions(&'a str),
}

impl CallbackToken {
    /// The token of `callback`, which execution `execution` waits on.
    pub(crate) fn native(execution: &ExecutionId, callback: &PendingCallback) -> Self {
        CallbackToken(format!(
            "{NATIVE}.{}.{}.{execution}",
            callback.id, callback.secret
        ))
    }

    /// A token wrapping the Step Functions task token `task_token` (`$$.Task.Token`).
    pub(crate) fn step_functions(task_token: &str) -> Self {
        CallbackToken(format!("{STEP_FUNCTIONS}.{task_token}"))
    }

    /// The token as text: what to send, and what [`FromStr`] reads back.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The execution waiting on it, for a token of the native runtime.
    pub fn execution(&self) -> Option<ExecutionId> {
        match self.parts() {
            Parts::Native { execution, .. } => Some(ExecutionId::from(execution)),
            Parts::StepFunctions(_) => None,
        }
    }

    /// The callback's public id (as the history names it), for a token of the native
    /// runtime.
    pub fn callback(&self) -> Option<&str> {
        match self.parts() {
            Parts::Native { callback, .. } => Some(callback),
            Parts::StepFunctions(_) => None,
        }
    }

    /// The Step Functions task token it wraps, for a token handed out by the step
    /// handler of a deployed workflow.
    pub fn task_token(&self) -> Option<&str> {
        match self.parts() {
            Parts::StepFunctions(token) => Some(token),
            Parts::Native { .. } => None,
        }
    }

    /// Its parts; a token is only ever made valid (`native`, `step_functions`,
    /// `from_str`), so this cannot fail.
    pub(crate) fn parts(&self) -> Parts<'_> {
        match split(&self.0) {
            Ok(parts) => parts,
            Err(_) => unreachable!("a CallbackToken is valid by construction"),
        }
    }
}

/// The parts of `text`, or why it is not a token.
fn split(text: &str) -> Result<Parts<'_>, String> {
    let (prefix, rest) = text
        .split_once('.')
        .ok_or("it has no `wf1.` or `sfn1.` prefix")?;
    match prefix {
        NATIVE => {
            let mut fields = rest.splitn(3, '.');
            let (Some(callback), Some(secret), Some(execution)) =
                (fields.next(), fields.next(), fields.next())
            else {
                return Err(
                    "a native token has four parts: `wf1.{callback}.{secret}.{execution}`".into(),
                );
            };
            if !is_hex(callback, ID_HEX) || !is_hex(secret, SECRET_HEX) {
                return Err(format!(
                    "a native token's callback id is {ID_HEX} and its secret {SECRET_HEX} lowercase hex digits"
                ));
            }
            if execution.is_empty() {
                return Err("it names no execution".into());
            }
            Ok(Parts::Native {
                callback,
                secret,
                execution,
            })
        }
        STEP_FUNCTIONS if !rest.is_empty() && rest.len() <= MAX_TASK_TOKEN => {
            Ok(Parts::StepFunctions(rest))
        }
        STEP_FUNCTIONS => Err(format!(
            "a Step Functions task token has 1 to {MAX_TASK_TOKEN} characters"
        )),
        _ => Err("it has no `wf1.` or `sfn1.` prefix".into()),
    }
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl FromStr for CallbackToken {
    type Err = CompletionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        split(s).map_err(|reason| CompletionError::Malformed { reason })?;
        Ok(CallbackToken(s.to_owned()))
    }
}

impl fmt::Display for CallbackToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Without the secret: a token in a log line must not be usable.
impl fmt::Debug for CallbackToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.parts() {
            Parts::Native {
                callback,
                execution,
                ..
            } => write!(f, "CallbackToken({NATIVE}.{callback}.….{execution})"),
            Parts::StepFunctions(_) => write!(f, "CallbackToken({STEP_FUNCTIONS}.…)"),
        }
    }
}

impl Serialize for CallbackToken {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for CallbackToken {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        split(&text).map_err(|reason| {
            serde::de::Error::custom(format!("not a callback token: {reason}"))
        })?;
        Ok(CallbackToken(text))
    }
}

/// A new callback's public id and secret, from the operating system's random source:
/// 64 and 128 bits, as lowercase hex.
pub(crate) fn fresh() -> Result<(String, String), getrandom::Error> {
    let mut bytes = [0u8; (ID_HEX + SECRET_HEX) / 2];
    getrandom::fill(&mut bytes)?;
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let (id, secret) = bytes.split_at(ID_HEX / 2);
    Ok((hex(id), hex(secret)))
}

/// Whether two secrets are equal, in a time that does not depend on where they differ.
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_tokens_parse_back_and_differ() {
        let (id, secret) = fresh().unwrap();
        assert_eq!((id.len(), secret.len()), (ID_HEX, SECRET_HEX));
        let text = format!("wf1.{id}.{secret}.parent/1.0");
        let token: CallbackToken = text.parse().unwrap();
        assert_eq!(token.to_string(), text);
        assert_eq!(token.execution().unwrap().as_str(), "parent/1.0");
        assert_ne!(fresh().unwrap(), (id, secret));
        // The secret is not in its Debug output.
        assert!(!format!("{token:?}").contains(&text[21..53]));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        for bad in [
            "",
            "wf1",
            "wf2.0123456789abcdef.0123456789abcdef0123456789abcdef.x",
            "wf1.0123456789abcdef.0123456789abcdef0123456789abcdef.",
            "wf1.0123456789ABCDEF.0123456789abcdef0123456789abcdef.x",
            "wf1.0123456789abcdef.0123456789abcdef.x",
            "sfn1.",
        ] {
            assert!(bad.parse::<CallbackToken>().is_err(), "{bad:?}");
        }
        let aws: CallbackToken = "sfn1.AAAAKgAAAAIAAAAA".parse().unwrap();
        assert_eq!(aws.task_token(), Some("AAAAKgAAAAIAAAAA"));
        assert_eq!(aws.execution(), None);
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
    }
}
