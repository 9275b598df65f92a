//! What the console and the command-line tool show of an execution, read once from a
//! runtime (or a read-only store) and formatted the same way by both.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use workflow_runtime::{
    Event, ExecutionId, ExecutionRecord, Outcome, Runtime, Status, StoreError, Timestamp,
};

/// An execution with its history and its children, as the pages and `workflow show`
/// present it.
pub(crate) struct Details {
    pub(crate) record: ExecutionRecord,
    pub(crate) history: Vec<Event>,
    pub(crate) children: Vec<Child>,
}

/// One child of an execution: enough for a row with a link.
pub(crate) struct Child {
    pub(crate) id: ExecutionId,
    pub(crate) workflow: String,
    pub(crate) status: Status,
    pub(crate) took: Duration,
}

impl Details {
    pub(crate) async fn read(runtime: &Runtime, id: &ExecutionId) -> Result<Details, StoreError> {
        let record = runtime.record(id).await?;
        let history = runtime.history(id).await?;
        let tree = runtime.tree(id).await?;
        let children = tree
            .children
            .into_iter()
            .map(|c| Child {
                took: c.updated_at.since(c.created_at),
                id: c.id,
                workflow: c.workflow,
                status: c.status,
            })
            .collect();
        Ok(Details {
            record,
            history,
            children,
        })
    }

    /// How long it ran: until it ended, or until its last checkpoint.
    pub(crate) fn took(&self) -> Duration {
        self.record.updated_at.since(self.record.created_at)
    }

    /// The output or error it ended with, as JSON, and its label.
    pub(crate) fn result(&self) -> Option<(&'static str, Value)> {
        Some(match self.record.outcome.as_ref()? {
            Outcome::Succeeded(output) => ("Output", output.to_value()),
            Outcome::Failed(error) => ("Error", error.to_value()),
            Outcome::Faulted(fault) => (
                "Fault",
                serde_json::json!({ "name": fault.name(), "message": fault.message() }),
            ),
            Outcome::Cancelled | Outcome::TimedOut => return None,
        })
    }
}

/// A time for people: RFC 3339, UTC, to the millisecond.
pub(crate) fn time(t: Timestamp) -> String {
    humantime::format_rfc3339_millis(t.to_system_time()).to_string()
}

/// A duration for people: `1.234s`, `56ms`, `2m 3s`.
pub(crate) fn duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else if d < Duration::from_secs(60) {
        format!("{:.3}s", d.as_secs_f64())
    } else {
        humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
    }
}

/// JSON, indented.
pub(crate) fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

/// An event's type, as in Step Functions' histories (`TaskScheduled`, …).
pub(crate) fn event_type(event: &Event) -> String {
    match serde_json::to_value(&event.kind) {
        Ok(Value::Object(fields)) => fields
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned(),
        _ => "?".to_owned(),
    }
}

/// An event's details: its fields but the type, as compact JSON (empty if none).
pub(crate) fn event_details(event: &Event) -> String {
    match serde_json::to_value(&event.kind) {
        Ok(Value::Object(mut fields)) => {
            fields.remove("type");
            if fields.is_empty() {
                String::new()
            } else {
                Value::Object(fields).to_string()
            }
        }
        _ => String::new(),
    }
}

/// The child an event names, for a link from the parent's history.
pub(crate) fn event_child(event: &Event) -> Option<ExecutionId> {
    let Ok(Value::Object(fields)) = serde_json::to_value(&event.kind) else {
        return None;
    };
    fields
        .get("child")
        .and_then(Value::as_str)
        .map(ExecutionId::from)
}

/// When `--since`/the console's "since" means: a duration ago (`90s`, `2h`, `3days`)
/// or a time (RFC 3339, `2026-12-03T10:00:00Z`).
pub(crate) fn parse_since(s: &str) -> Option<Timestamp> {
    let at = match humantime::parse_duration(s.trim()) {
        Ok(ago) => SystemTime::now().checked_sub(ago),
        Err(_) => humantime::parse_rfc3339_weak(s.trim()).ok(),
    };
    let since_epoch = at?.duration_since(UNIX_EPOCH).ok()?;
    Some(Timestamp(
        u64::try_from(since_epoch.as_micros()).unwrap_or(u64::MAX),
    ))
}

/// Parses a status name as the store writes it (`Running`, `Failed`, …), in any case.
pub(crate) fn parse_status(s: &str) -> Option<Status> {
    const ALL: [Status; 7] = [
        Status::Running,
        Status::Succeeded,
        Status::Failed,
        Status::Cancelled,
        Status::TimedOut,
        Status::Faulted,
        Status::VersionMismatch,
    ];
    ALL.into_iter()
        .find(|status| status.as_str().eq_ignore_ascii_case(s))
}

/// The statuses, for filters.
pub(crate) const STATUSES: [&str; 7] = [
    "Running",
    "Succeeded",
    "Failed",
    "Cancelled",
    "TimedOut",
    "Faulted",
    "VersionMismatch",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_is_a_duration_ago_or_a_time() {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let hour_ago = parse_since("1h").unwrap().0;
        let expected = u64::try_from((now - Duration::from_secs(3600)).as_micros()).unwrap();
        assert!(
            hour_ago.abs_diff(expected) < 5_000_000,
            "{hour_ago} vs {expected}"
        );
        let at = parse_since("2026-12-03T10:00:00Z").unwrap();
        assert_eq!(at.0, 1_796_292_000_000_000);
        assert_eq!(parse_since("yesterday"), None);
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(duration(Duration::from_micros(56_700)), "56ms");
        assert_eq!(duration(Duration::from_millis(1_234)), "1.234s");
        assert_eq!(duration(Duration::from_secs(123)), "2m 3s");
    }
}
