//! [`Store::callback`] on both backends: a compare and set on the callback an execution
//! waits on, with the listing that follows it.

use std::time::Duration;

use serde_json::json;

use super::{
    CallbackChange, CallbackUpdate, Checkpoint, ExecutionFilter, ExecutionRecord, MemoryStore,
    SavedState, SqliteStore, Store, Wait,
};
use crate::callback::{CallbackResolution, PendingCallback};
use crate::error::StoreError;
use crate::execution::{ExecutionId, Outcome, Status};
use crate::history::{Event, EventKind};
use crate::time::Timestamp;

/// A running top-level execution, as the reopen tests make it.
fn record(id: &str) -> ExecutionRecord {
    super::reopen_tests::record(id, None)
}

fn callback() -> PendingCallback {
    PendingCallback {
        node: 2,
        id: "0123456789abcdef".into(),
        secret: "00112233445566778899aabbccddeeff".into(),
        started: Timestamp(1_000),
        timeout: Duration::from_millis(50),
        heartbeat: Some(Duration::from_millis(10)),
        last_heartbeat: None,
        sent: false,
        resolution: None,
    }
}

fn waits(id: &str, waiting: Option<Wait>, status: Status) -> Checkpoint {
    Checkpoint {
        id: id.into(),
        status,
        state: Some(SavedState {
            bytes: b"\"Waiting\"".to_vec(),
            waiting,
            batches: 0,
        }),
        outcome: status.is_terminal().then_some(Outcome::Cancelled),
        events: Vec::new(),
        parent_events: Vec::new(),
        at: Timestamp(2),
    }
}

fn update(id: &str, change: CallbackChange, at: u64) -> CallbackUpdate {
    let c = callback();
    CallbackUpdate {
        id: id.into(),
        callback: c.id,
        secret: c.secret,
        change,
        events: vec![Event {
            at: Timestamp(at),
            state: Some("callback".into()),
            kind: EventKind::CallbackHeartbeat {
                callback: "0123456789abcdef".into(),
            },
        }],
        at: Timestamp(at),
    }
}

async fn waiting_ids(store: &dyn Store) -> Vec<ExecutionId> {
    let filter = ExecutionFilter::new().waiting_on_callback();
    store
        .list(&filter)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.unwrap().id)
        .collect()
}

async fn compare_and_set(store: &dyn Store) {
    for id in ["a", "b", "c"] {
        store
            .create(record(id), Vec::new(), Vec::new())
            .await
            .unwrap();
    }
    let cb = Some(Wait::Callback(callback()));
    store
        .checkpoint(&waits("a", cb.clone(), Status::Running))
        .await
        .unwrap();
    store
        .checkpoint(&waits("b", cb.clone(), Status::Running))
        .await
        .unwrap();
    assert_eq!(
        waiting_ids(store).await,
        ["a".into(), "b".into()] as [ExecutionId; 2]
    );
    let a = store.get(&"a".into()).await.unwrap().unwrap();
    // The earlier of the timeout (1,000 + 50 ms) and the heartbeat (1,000 + 10 ms).
    assert_eq!(a.wake_at, Some(Timestamp(11_000)));

    // Sent, then a heartbeat: the next one is due 10 ms after it.
    let sent = store
        .callback(&update("a", CallbackChange::Sent, 3_000))
        .await
        .unwrap();
    assert!(sent.sent);
    let beat = store
        .callback(&update("a", CallbackChange::Heartbeat, 5_000))
        .await
        .unwrap();
    assert_eq!(beat.last_heartbeat, Some(Timestamp(5_000)));
    let a = store.get(&"a".into()).await.unwrap().unwrap();
    assert_eq!(a.wake_at, Some(Timestamp(15_000)));
    assert_eq!(a.waiting, Some(Wait::Callback(beat.clone())));
    assert_eq!(a.updated_at, Timestamp(5_000));

    // The first resolution wins; a second one, or a heartbeat, is refused.
    let done = CallbackResolution::Completed {
        value: json!({"ok": 1}).into(),
    };
    let resolved = store
        .callback(&update("a", CallbackChange::Resolve(done.clone()), 6_000))
        .await
        .unwrap();
    assert_eq!(resolved.resolution, Some(done.clone()));
    for change in [
        CallbackChange::Resolve(CallbackResolution::TimedOut),
        CallbackChange::Heartbeat,
    ] {
        let refused = store.callback(&update("a", change, 7_000)).await;
        assert!(
            matches!(refused, Err(StoreError::CallbackResolved { .. })),
            "{refused:?}"
        );
    }
    // `Sent` after a resolution is harmless: the resolution is kept.
    let after = store
        .callback(&update("a", CallbackChange::Sent, 7_000))
        .await
        .unwrap();
    assert_eq!(after.resolution, Some(done));
    let a = store.get(&"a".into()).await.unwrap().unwrap();
    assert_eq!(a.wake_at, None, "a resolved callback has no deadline");
    assert_eq!(waiting_ids(store).await, ["b".into()] as [ExecutionId; 1]);
    // Four changes were made, with an event each.
    assert_eq!(store.history(&"a".into()).await.unwrap().len(), 4);

    // Another secret, another callback, no callback, no execution, an ended one.
    let mut forged = update("b", CallbackChange::Heartbeat, 8_000);
    forged.secret = "ffffffffffffffffffffffffffffffff".into();
    let mut other = update("b", CallbackChange::Heartbeat, 8_000);
    other.callback = "fedcba9876543210".into();
    for refused in [
        store.callback(&forged).await,
        store.callback(&other).await,
        store
            .callback(&update("c", CallbackChange::Sent, 8_000))
            .await,
    ] {
        assert!(
            matches!(refused, Err(StoreError::NoCallback { .. })),
            "{refused:?}"
        );
    }
    let refused = store
        .callback(&update("zz", CallbackChange::Sent, 8_000))
        .await;
    assert!(
        matches!(refused, Err(StoreError::NotFound(_))),
        "{refused:?}"
    );
    assert!(
        store.history(&"b".into()).await.unwrap().is_empty(),
        "nothing written"
    );
    let ended = Checkpoint {
        state: None,
        ..waits("b", None, Status::Cancelled)
    };
    store.checkpoint(&ended).await.unwrap();
    let refused = store
        .callback(&update("b", CallbackChange::Sent, 9_000))
        .await;
    assert!(matches!(refused, Err(StoreError::Ended(_))), "{refused:?}");
    assert!(
        waiting_ids(store).await.is_empty(),
        "an end waits on nothing"
    );
}

#[tokio::test]
async fn memory_store_callbacks() {
    compare_and_set(&MemoryStore::new()).await;
}

#[tokio::test]
async fn sqlite_store_callbacks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    compare_and_set(&SqliteStore::open(&path).unwrap()).await;
    // Reopened, the resolution is there.
    let store = SqliteStore::open(&path).unwrap();
    let a = store.get(&"a".into()).await.unwrap().unwrap();
    assert!(matches!(
        a.waiting,
        Some(Wait::Callback(PendingCallback {
            resolution: Some(CallbackResolution::Completed { .. }),
            ..
        }))
    ));
}
