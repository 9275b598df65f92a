//! An execution's history as the memory store keeps it: packed into bytes.
//!
//! A [`Event`] is 88 bytes before any payload, and a polling execution adds three per
//! poll: 100,000 executions polling every second for a minute were 18 million events,
//! most of the 3 GiB the process grew to. Packed, the events of a poll loop take a few
//! bytes each: the time as a difference from the previous event's, the state-graph node
//! as an index into names shared by the whole store, and a tag; the payload of the kinds
//! a poll loop writes (`WaitStarted`, `WaitEnded`, `PollAttempt`, `TaskScheduled`) as
//! integers. Every other kind keeps its payload as JSON, so every event, of any kind,
//! reads back equal to what was written.

use crate::execution::ExecutionId;
use crate::HashMap;
use std::borrow::Cow;

use crate::error::StoreError;
use crate::history::{Event, EventKind, PollOutcome};
use crate::time::Timestamp;

/// The node names of every history in a store, each kept once.
#[derive(Debug, Default)]
pub(super) struct Names {
    names: Vec<Cow<'static, str>>,
    index: HashMap<Cow<'static, str>, u64>,
    /// Where an event's JSON is written before it is copied in after its length: kept
    /// here, shared by every history, so that packing allocates nothing once warm.
    scratch: Vec<u8>,
}

impl Names {
    /// The name's code: 0 for none, else its index + 1.
    fn code(&mut self, name: Option<&Cow<'static, str>>) -> u64 {
        let Some(name) = name else { return 0 };
        if let Some(&code) = self.index.get(name) {
            return code;
        }
        self.names.push(name.clone());
        let code = self.names.len() as u64;
        self.index.insert(name.clone(), code);
        code
    }

    fn name(&self, code: u64) -> Option<Option<Cow<'static, str>>> {
        match code {
            0 => Some(None),
            n => self
                .names
                .get(usize::try_from(n - 1).ok()?)
                .cloned()
                .map(Some),
        }
    }
}

/// The largest scratch buffer kept after an event: one large payload should not hold
/// its size for the life of the store.
const SCRATCH_KEPT: usize = 64 * 1024;

/// The kinds with a packed payload; everything else is [`Tag::Json`].
#[derive(Clone, Copy)]
#[repr(u8)]
enum Tag {
    /// A varint length, then the JSON of the `EventKind`.
    Json = 0,
    TaskScheduled = 1,
    /// The difference `until - at`, zigzag varint.
    WaitStarted = 2,
    WaitEnded = 3,
    /// The attempt number, varint.
    PollNotReady = 4,
    /// The attempt number, varint.
    PollReady = 5,
}

/// One execution's events, packed.
#[derive(Debug, Default)]
pub(super) struct History {
    bytes: Vec<u8>,
    /// The time of the last event, which the next one's is relative to.
    last_at: u64,
}

impl History {
    /// An empty history with room for a short execution's events (its start, a few
    /// tasks, its end), so that those do not grow it from nothing several times over.
    pub(super) fn new() -> Self {
        History {
            bytes: Vec::with_capacity(256),
            last_at: 0,
        }
    }

    pub(super) fn push(&mut self, names: &mut Names, event: &Event) {
        let at = event.at.0;
        put_signed(&mut self.bytes, delta(at, self.last_at));
        self.last_at = at;
        put(&mut self.bytes, names.code(event.state.as_ref()));
        match &event.kind {
            EventKind::TaskScheduled => self.bytes.push(Tag::TaskScheduled as u8),
            EventKind::WaitStarted { until } => {
                self.bytes.push(Tag::WaitStarted as u8);
                put_signed(&mut self.bytes, delta(until.0, at));
            }
            EventKind::WaitEnded => self.bytes.push(Tag::WaitEnded as u8),
            EventKind::PollAttempt {
                attempt,
                outcome: outcome @ (PollOutcome::Ready | PollOutcome::NotReady),
            } => {
                self.bytes.push(if *outcome == PollOutcome::Ready {
                    Tag::PollReady as u8
                } else {
                    Tag::PollNotReady as u8
                });
                put(&mut self.bytes, u64::from(*attempt));
            }
            kind => {
                let json = &mut names.scratch;
                json.clear();
                // Serializing payloads (already JSON), strings and numbers cannot fail.
                let _ = serde_json::to_writer(&mut *json, kind);
                self.bytes.push(Tag::Json as u8);
                put(&mut self.bytes, json.len() as u64);
                self.bytes.extend_from_slice(json);
                if json.capacity() > SCRATCH_KEPT {
                    *json = Vec::new();
                }
            }
        }
    }

    pub(super) fn extend<'a>(
        &mut self,
        names: &mut Names,
        events: impl IntoIterator<Item = &'a Event>,
    ) {
        for event in events {
            self.push(names, event);
        }
    }

    /// The events, unpacked, oldest first.
    pub(super) fn events(&self, names: &Names, id: &ExecutionId) -> Result<Vec<Event>, StoreError> {
        let corrupt = || StoreError::Corrupt {
            id: id.clone(),
            message: "packed history does not decode".into(),
        };
        let mut events = Vec::new();
        let mut r = Reader(&self.bytes);
        let mut at = 0u64;
        while !r.0.is_empty() {
            at = at.wrapping_add_signed(r.signed().ok_or_else(corrupt)?);
            let state = names
                .name(r.varint().ok_or_else(corrupt)?)
                .ok_or_else(corrupt)?;
            let tag = r.byte().ok_or_else(corrupt)?;
            let attempt = |r: &mut Reader<'_>| {
                r.varint()
                    .and_then(|a| u32::try_from(a).ok())
                    .ok_or_else(corrupt)
            };
            let kind = match tag {
                t if t == Tag::TaskScheduled as u8 => EventKind::TaskScheduled,
                t if t == Tag::WaitStarted as u8 => EventKind::WaitStarted {
                    until: Timestamp(at.wrapping_add_signed(r.signed().ok_or_else(corrupt)?)),
                },
                t if t == Tag::WaitEnded as u8 => EventKind::WaitEnded,
                t if t == Tag::PollNotReady as u8 => EventKind::PollAttempt {
                    attempt: attempt(&mut r)?,
                    outcome: PollOutcome::NotReady,
                },
                t if t == Tag::PollReady as u8 => EventKind::PollAttempt {
                    attempt: attempt(&mut r)?,
                    outcome: PollOutcome::Ready,
                },
                t if t == Tag::Json as u8 => {
                    let len = r.varint().and_then(|n| usize::try_from(n).ok());
                    let json = len.and_then(|n| r.take(n)).ok_or_else(corrupt)?;
                    serde_json::from_slice(json).map_err(|e| StoreError::Corrupt {
                        id: id.clone(),
                        message: format!("history event: {e}"),
                    })?
                }
                _ => return Err(corrupt()),
            };
            events.push(Event {
                at: Timestamp(at),
                state,
                kind,
            });
        }
        Ok(events)
    }
}

fn delta(to: u64, from: u64) -> i64 {
    to.wrapping_sub(from) as i64
}

/// LEB128.
fn put(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Zigzag, then LEB128: small differences of either sign take a byte or two.
fn put_signed(out: &mut Vec<u8>, n: i64) {
    put(out, ((n << 1) ^ (n >> 63)) as u64);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn varint(&mut self) -> Option<u64> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Some(n);
            }
        }
        None
    }

    fn signed(&mut self) -> Option<i64> {
        let n = self.varint()?;
        Some(((n >> 1) as i64) ^ -((n & 1) as i64))
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::json::Json;

    use super::*;

    #[test]
    fn every_kind_reads_back_equal() {
        let at = |t| Timestamp(t);
        let events = vec![
            Event {
                at: at(1_700_000_000_000_000),
                state: None,
                kind: EventKind::ExecutionStarted {
                    input: Json::from(json!({"a": [1, 2.5, "x"], "b": u64::MAX})),
                    parent: Some("p".into()),
                },
            },
            Event {
                at: at(1_700_000_000_000_010),
                state: Some("start".into()),
                kind: EventKind::TaskScheduled,
            },
            Event {
                at: at(1_700_000_000_000_005),
                state: Some(Cow::Owned("poll status".into())),
                kind: EventKind::WaitStarted { until: at(3) },
            },
            Event {
                at: at(u64::MAX),
                state: Some("poll status".into()),
                kind: EventKind::WaitEnded,
            },
            Event {
                at: at(0),
                state: Some("poll status".into()),
                kind: EventKind::PollAttempt {
                    attempt: u32::MAX,
                    outcome: PollOutcome::NotReady,
                },
            },
            Event {
                at: at(7),
                state: None,
                kind: EventKind::PollAttempt {
                    attempt: 1,
                    outcome: PollOutcome::Ready,
                },
            },
            Event {
                at: at(8),
                state: None,
                kind: EventKind::PollAttempt {
                    attempt: 2,
                    outcome: PollOutcome::Error {
                        message: "down".into(),
                    },
                },
            },
            Event {
                at: at(9),
                state: Some("end".into()),
                kind: EventKind::ExecutionSucceeded {
                    output: Json::null(),
                },
            },
        ];
        let mut names = Names::default();
        let mut history = History::default();
        history.extend(&mut names, &events);
        assert_eq!(history.events(&names, &"e".into()).unwrap(), events);
        assert_eq!(names.names.len(), 3, "each name is kept once");
    }

    #[test]
    fn a_poll_takes_a_few_bytes() {
        let mut names = Names::default();
        let mut history = History::default();
        let start = 1_700_000_000_000_000;
        for attempt in 1..=60u32 {
            let at = start + u64::from(attempt) * 1_000_000;
            let ev = |at: u64, kind| Event {
                at: Timestamp(at),
                state: Some("poll status".into()),
                kind,
            };
            history.extend(
                &mut names,
                &[
                    ev(at, EventKind::WaitEnded),
                    ev(
                        at + 40,
                        EventKind::PollAttempt {
                            attempt,
                            outcome: PollOutcome::NotReady,
                        },
                    ),
                    ev(
                        at + 50,
                        EventKind::WaitStarted {
                            until: Timestamp(at + 1_000_050),
                        },
                    ),
                ],
            );
        }
        // The first event's time takes 9 bytes; each poll about 13.
        assert!(history.bytes.len() < 60 * 16, "{}", history.bytes.len());
    }
}
