//! [`Store::reopen`] on both backends: all or nothing, refused when anything changed.

use std::time::Duration;

use serde_json::json;

use super::{
    CallSite, Checkpoint, ExecutionRecord, MemoryStore, PendingBatch, PendingChild, Reopen,
    SavedState, SqliteOptions, SqliteStore, Store, Wait,
};
use crate::error::StoreError;
use crate::execution::{ExecutionId, Outcome, Status};
use crate::history::{Event, EventKind};
use crate::time::Timestamp;

pub(super) fn record(id: &str, parent: Option<(&str, usize)>) -> ExecutionRecord {
    ExecutionRecord {
        id: id.into(),
        workflow: "W".into(),
        fingerprint: 7,
        parent: parent.map(|(p, _)| ExecutionId::from(p)),
        call_site: parent.map(|(_, index)| CallSite {
            node: "map".into(),
            batch: 1,
            index,
        }),
        status: Status::Running,
        input: json!(1).into(),
        state: b"\"Start\"".to_vec(),
        waiting: None,
        batches: 0,
        outcome: None,
        wake_at: None,
        created_at: Timestamp(1),
        updated_at: Timestamp(1),
        redrives: 0,
        redriven_at: None,
        trace: None,
    }
}

fn batch() -> Wait {
    Wait::Children(PendingBatch {
        batch: 1,
        node: 0,
        max_concurrency: Some(1),
        calls: vec![
            PendingChild {
                workflow: "W".into(),
                input: json!(1).into(),
            };
            2
        ],
        deadline: None,
    })
}

fn timer() -> Wait {
    Wait::Timer {
        node: 1,
        until: Timestamp(500),
    }
}

/// Checkpoints `id` at `waiting`, then ends it with `outcome`.
async fn end(store: &dyn Store, id: &str, waiting: Wait, outcome: Outcome) {
    let checkpoint = |status, state, outcome| Checkpoint {
        id: id.into(),
        status,
        state,
        outcome,
        events: vec![Event {
            at: Timestamp(2),
            state: None,
            kind: EventKind::TaskScheduled,
        }],
        parent_events: Vec::new(),
        at: Timestamp(2),
    };
    let saved = SavedState {
        bytes: format!("\"{id}\"").into_bytes(),
        waiting: Some(waiting),
        batches: 1,
    };
    store
        .checkpoint(&checkpoint(Status::Running, Some(saved), None))
        .await
        .unwrap();
    let status = Status::of(&outcome);
    store
        .checkpoint(&checkpoint(status, None, Some(outcome)))
        .await
        .unwrap();
}

fn reopen(id: &str, expected: Status, redrives: u32, waiting: Option<Wait>) -> Reopen {
    Reopen {
        id: id.into(),
        expected,
        redrives,
        waiting,
        events: vec![Event {
            at: Timestamp(900),
            state: None,
            kind: EventKind::ExecutionRedriven { count: redrives },
        }],
        at: Timestamp(900),
    }
}

/// A parent that failed on its batch, a failed child waiting on a timer, a child that
/// succeeded.
async fn ended_family(store: &dyn Store) {
    store
        .create(record("p", None), Vec::new(), Vec::new())
        .await
        .unwrap();
    for (i, id) in ["p/1.0", "p/1.1"].into_iter().enumerate() {
        store
            .create(record(id, Some(("p", i))), Vec::new(), Vec::new())
            .await
            .unwrap();
    }
    let failed = || Outcome::Failed(json!("down").into());
    end(store, "p/1.0", timer(), failed()).await;
    end(store, "p/1.1", timer(), Outcome::Succeeded(json!(2).into())).await;
    end(store, "p", batch(), failed()).await;
}

async fn snapshot(store: &dyn Store) -> Vec<(ExecutionRecord, Vec<Event>)> {
    let mut all = Vec::new();
    for id in ["p", "p/1.0", "p/1.1"] {
        let id = ExecutionId::from(id);
        all.push((
            store.get(&id).await.unwrap().unwrap(),
            store.history(&id).await.unwrap(),
        ));
    }
    all
}

async fn reopen_is_all_or_nothing(store: &dyn Store) {
    ended_family(store).await;
    // An end keeps what the execution waited for, but not its timer's `wake_at`.
    let p = store.get(&"p".into()).await.unwrap().unwrap();
    assert_eq!((p.status, &p.waiting), (Status::Failed, &Some(batch())));
    let child = store.get(&"p/1.0".into()).await.unwrap().unwrap();
    assert_eq!((&child.waiting, child.wake_at), (&Some(timer()), None));
    let before = snapshot(store).await;

    // Refused as a whole, with nothing written, when one of them is not as expected.
    let refusals = [
        (
            vec![
                reopen("p", Status::Failed, 1, Some(batch())),
                reopen("p/1.0", Status::Cancelled, 1, Some(timer())),
            ],
            StoreError::Changed("p/1.0".into()),
        ),
        (
            vec![
                reopen("p", Status::Failed, 1, Some(batch())),
                reopen("p/1.0", Status::Failed, 2, Some(timer())),
            ],
            StoreError::Changed("p/1.0".into()),
        ),
        (
            vec![
                reopen("p", Status::Failed, 1, Some(batch())),
                reopen("p/1.9", Status::Failed, 1, None),
            ],
            StoreError::NotFound("p/1.9".into()),
        ),
    ];
    for (executions, error) in refusals {
        assert_eq!(store.reopen(&executions).await, Err(error));
        assert_eq!(snapshot(store).await, before, "nothing written");
    }

    // Accepted: both running again, the succeeded child untouched.
    let accepted = [
        reopen("p", Status::Failed, 1, Some(batch())),
        reopen("p/1.0", Status::Failed, 1, Some(timer())),
    ];
    store.reopen(&accepted).await.unwrap();
    for (id, waiting) in [("p", batch()), ("p/1.0", timer())] {
        let r = store.get(&id.into()).await.unwrap().unwrap();
        assert_eq!(r.status, Status::Running, "{id}");
        assert_eq!(r.outcome, None, "{id}");
        assert_eq!(r.wake_at, waiting.wake_at(), "{id}");
        assert_eq!(r.waiting, Some(waiting), "{id}");
        assert_eq!(
            (r.redrives, r.redriven_at),
            (1, Some(Timestamp(900))),
            "{id}"
        );
        assert_eq!(r.updated_at, Timestamp(900), "{id}");
        assert_eq!(r.state, format!("\"{id}\"").into_bytes(), "the state stays");
        let history = store.history(&id.into()).await.unwrap();
        assert_eq!(
            history.last().map(|e| &e.kind),
            Some(&EventKind::ExecutionRedriven { count: 1 })
        );
    }
    assert_eq!(snapshot(store).await[2], before[2]);
    let unfinished = store.unfinished().await.unwrap();
    assert_eq!(unfinished.len(), 2, "both are resumed by a recovery");

    // The same reopen again: they are running, not failed, any more.
    assert_eq!(
        store.reopen(&accepted).await,
        Err(StoreError::Changed("p".into()))
    );
    // Running executions take checkpoints again, and end again.
    end(store, "p", batch(), Outcome::TimedOut).await;
    let p = store.get(&"p".into()).await.unwrap().unwrap();
    assert_eq!((p.status, p.redrives), (Status::TimedOut, 1));
    store
        .reopen(&[reopen("p", Status::TimedOut, 2, Some(batch()))])
        .await
        .unwrap();
    assert_eq!(store.get(&"p".into()).await.unwrap().unwrap().redrives, 2);
}

#[tokio::test]
async fn a_memory_reopen_is_all_or_nothing() {
    reopen_is_all_or_nothing(&MemoryStore::new()).await;
}

#[tokio::test]
async fn a_sqlite_reopen_is_all_or_nothing_and_lasts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let store = SqliteStore::open(&path).unwrap();
    reopen_is_all_or_nothing(&store).await;
    let before = snapshot(&store).await;
    drop(store);
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(
        snapshot(&store).await,
        before,
        "the same after a reopen of the file"
    );
}

/// A reopen refused in a group commit leaves the other writes of its transaction alone.
#[tokio::test]
async fn a_refused_reopen_does_not_fail_its_group_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let options = SqliteOptions::new().busy_timeout(Duration::from_secs(60));
    let store = SqliteStore::open_with(&path, options).unwrap();
    ended_family(&store).await;
    store
        .create(record("other", None), Vec::new(), Vec::new())
        .await
        .unwrap();
    let append = |store: &SqliteStore| {
        let store = store.clone();
        tokio::spawn(async move {
            let event = Event {
                at: Timestamp(3),
                state: None,
                kind: EventKind::TaskScheduled,
            };
            store.append(&"other".into(), vec![event]).await
        })
    };
    let before = store.stats();
    // The writer waits for the lock with a first write; the next two queue behind it
    // and share the next transaction.
    let blocker = rusqlite::Connection::open(&path).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let first = append(&store);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let refused = {
        let store = store.clone();
        tokio::spawn(async move {
            let refused = [
                reopen("p", Status::Failed, 1, Some(batch())),
                reopen("p/1.0", Status::Succeeded, 1, Some(timer())),
            ];
            store.reopen(&refused).await
        })
    };
    let second = append(&store);
    tokio::time::sleep(Duration::from_millis(200)).await;
    blocker.execute_batch("COMMIT").unwrap();
    first.await.unwrap().unwrap();
    assert_eq!(
        refused.await.unwrap(),
        Err(StoreError::Changed("p/1.0".into()))
    );
    second.await.unwrap().unwrap();
    let after = store.stats();
    assert_eq!(
        (
            after.writes - before.writes,
            after.transactions - before.transactions
        ),
        (3, 2),
        "the reopen shared a transaction"
    );
    assert_eq!(store.history(&"other".into()).await.unwrap().len(), 2);
    let p = store.get(&"p".into()).await.unwrap().unwrap();
    assert_eq!((p.status, p.redrives), (Status::Failed, 0));
}
