//! The SQLite store on its own: schema, lock, round trips, group commit, faults.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{params, Connection};
use serde_json::json;

use super::{SqliteOptions, SqliteStore};
use crate::error::{OpenError, StoreError};
use crate::execution::{ExecutionId, Status};
use crate::history::{Event, EventKind};
use crate::store::{
    CallSite, Checkpoint, ExecutionFilter, ExecutionRecord, PendingBatch, PendingChild, SavedState,
    Store, Wait,
};
use crate::time::Timestamp;

fn record(id: &str, parent: Option<&str>) -> ExecutionRecord {
    ExecutionRecord {
        id: id.into(),
        workflow: "W".into(),
        fingerprint: u64::MAX - 7,
        parent: parent.map(ExecutionId::from),
        call_site: parent.map(|_| CallSite {
            node: "map w".into(),
            batch: 1,
            index: 0,
        }),
        status: Status::Running,
        input: json!({"n": 1}).into(),
        state: b"{\"Start\":{}}".to_vec(),
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

fn event(kind: EventKind) -> Event {
    Event {
        at: Timestamp(2),
        state: Some("node".into()),
        kind,
    }
}

fn checkpoint(id: &str, bytes: &[u8], waiting: Option<Wait>) -> Checkpoint {
    Checkpoint {
        id: id.into(),
        status: Status::Running,
        state: Some(SavedState {
            bytes: bytes.to_vec(),
            waiting,
            batches: 1,
        }),
        outcome: None,
        events: vec![event(EventKind::TaskScheduled)],
        parent_events: Vec::new(),
        at: Timestamp(3),
    }
}

/// A write's events are encoded into one string and split again by the writer: each
/// comes back whole and in order, whatever its JSON holds (raw newlines kept by
/// `Json::parse`, multi-byte characters), and a checkpoint without events adds none.
#[tokio::test]
async fn the_events_of_one_write_come_back_whole_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("db.sqlite")).unwrap();
    store
        .create(record("a", None), vec![], vec![])
        .await
        .unwrap();
    let pretty = crate::json::Json::parse("{\n  \"k\": \"é\u{1F600}\"\n}".into()).unwrap();
    let events = vec![
        event(EventKind::TaskSucceeded {
            output: Some(pretty),
        }),
        event(EventKind::TaskScheduled),
        event(EventKind::TaskSucceeded {
            output: Some(json!("\n,}{").into()),
        }),
    ];
    let mut cp = checkpoint("a", b"[1]", None);
    cp.events = events.clone();
    store.checkpoint(&cp).await.unwrap();
    cp.events = Vec::new();
    store.checkpoint(&cp).await.unwrap();
    assert_eq!(store.history(&"a".into()).await.unwrap(), events);
}

#[tokio::test]
async fn records_and_histories_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let batch = Wait::Children(PendingBatch {
        deadline: None,
        batch: 1,
        node: 0,
        max_concurrency: Some(3),
        calls: vec![PendingChild {
            workflow: "C".into(),
            input: json!([1, 2]).into(),
        }],
    });
    {
        let store = SqliteStore::open(&path).unwrap();
        store
            .create(
                record("a", None),
                vec![event(EventKind::TaskScheduled)],
                vec![],
            )
            .await
            .unwrap();
        store
            .checkpoint(&checkpoint("a", b"[1]", Some(batch.clone())))
            .await
            .unwrap();
        let started = event(EventKind::ChildStarted {
            child: "a/1.0".into(),
            workflow: "C".into(),
        });
        store
            .create(record("a/1.0", Some("a")), vec![], vec![started])
            .await
            .unwrap();
    }
    // Reopened: everything is there, typed.
    let store = SqliteStore::open(&path).unwrap();
    let a = store.get(&"a".into()).await.unwrap().unwrap();
    assert_eq!(a.state, b"[1]");
    assert_eq!(a.waiting, Some(batch));
    assert_eq!(a.batches, 1);
    assert_eq!(a.fingerprint, u64::MAX - 7, "all 64 bits survive");
    assert_eq!(store.history(&"a".into()).await.unwrap().len(), 3);
    assert_eq!(
        store.children(&"a".into()).await.unwrap(),
        [ExecutionId::from("a/1.0")]
    );
    let child = store.get(&"a/1.0".into()).await.unwrap().unwrap();
    assert_eq!(child.call_site.unwrap().node, "map w");
    let unfinished = store.unfinished().await.unwrap();
    assert_eq!(unfinished.len(), 2);
    let listed = store
        .list(&ExecutionFilter::new().top_level().status(Status::Running))
        .await
        .unwrap();
    let listed: Vec<_> = listed.into_iter().map(Result::unwrap).collect();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, ExecutionId::from("a"));
}

#[tokio::test]
async fn a_child_is_created_once_and_an_ended_execution_takes_no_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("db.sqlite")).unwrap();
    store
        .create(record("p", None), vec![], vec![])
        .await
        .unwrap();
    store
        .create(record("p/1.0", Some("p")), vec![], vec![])
        .await
        .unwrap();
    // Same id again.
    let again = store
        .create(record("p/1.0", Some("p")), vec![], vec![])
        .await;
    assert_eq!(again, Err(StoreError::AlreadyExists("p/1.0".into())));
    // Another id for the same call site is refused by the uniqueness constraint.
    let twin = store
        .create(record("p/1.0bis", Some("p")), vec![], vec![])
        .await;
    assert_eq!(twin, Err(StoreError::AlreadyExists("p/1.0bis".into())));
    let orphan = store
        .create(record("q/1.0", Some("q")), vec![], vec![])
        .await;
    assert_eq!(orphan, Err(StoreError::NotFound("q".into())));

    let mut end = checkpoint("p/1.0", b"[]", None);
    end.status = Status::Succeeded;
    end.state = None;
    end.outcome = Some(crate::Outcome::Succeeded(json!(1).into()));
    end.parent_events = vec![event(EventKind::ChildSucceeded {
        child: "p/1.0".into(),
    })];
    store.checkpoint(&end).await.unwrap();
    let late = store.checkpoint(&checkpoint("p/1.0", b"[]", None)).await;
    assert_eq!(late, Err(StoreError::Ended("p/1.0".into())));
    let parent_history = store.history(&"p".into()).await.unwrap();
    assert_eq!(
        parent_history.len(),
        1,
        "the child's end is in its parent's history"
    );
}

/// Writes a version-1 file, rows and all, as the previous release did.
fn write_version_1(path: &Path, executions: &[(ExecutionRecord, Vec<Event>)]) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(super::schema::VERSION_1).unwrap();
    conn.pragma_update(None, "application_id", super::schema::APPLICATION_ID)
        .unwrap();
    conn.pragma_update(None, "user_version", 1).unwrap();
    for (r, events) in executions {
        let site = r.call_site.as_ref();
        conn.execute(
            "INSERT INTO executions (id, workflow, fingerprint, parent_id, call_node, \
             call_batch, call_index, status, input, state, waiting, batches, outcome, \
             wake_at, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
            params![
                r.id.as_str(),
                r.workflow,
                i64::from_ne_bytes(r.fingerprint.to_ne_bytes()),
                r.parent.as_ref().map(ExecutionId::as_str),
                site.map(|s| s.node.clone()),
                site.map(|s| s.batch as i64),
                site.map(|s| s.index as i64),
                r.status.as_str(),
                to_json(&r.input),
                r.state,
                r.waiting.as_ref().map(to_json),
                r.batches as i64,
                r.outcome.as_ref().map(to_json),
                r.wake_at.map(|t| t.0 as i64),
                r.created_at.0 as i64,
                r.updated_at.0 as i64,
            ],
        )
        .unwrap();
        for (seq, e) in events.iter().enumerate() {
            conn.execute(
                "INSERT INTO events (execution_id, seq, at, type, state, body) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    r.id.as_str(),
                    seq as i64 + 1,
                    e.at.0 as i64,
                    e.kind.name(),
                    e.state.as_deref(),
                    to_json(e),
                ],
            )
            .unwrap();
        }
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap()
}

/// A version-1 file (executions keyed by their text id) is upgraded in place on open:
/// the same records, histories, children and listings, in the same order; recovery
/// finds the same unfinished executions; writes go on where the file left off, and a
/// child's call site is still taken once.
#[tokio::test]
async fn a_version_1_file_is_upgraded_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let timer = Wait::Timer {
        node: 1,
        until: Timestamp(9_000),
    };
    let batch = Wait::Children(PendingBatch {
        deadline: None,
        batch: 1,
        node: 0,
        max_concurrency: None,
        calls: Vec::new(),
    });
    // Created in this order, which is not the ids' order.
    let mut p = record("p", None);
    p.waiting = Some(batch);
    p.batches = 1;
    let mut first = record("p/1.0", Some("p"));
    first.waiting = Some(timer);
    first.wake_at = Some(Timestamp(9_000));
    let mut second = record("p/1.1", Some("p"));
    second.call_site.as_mut().unwrap().index = 1;
    second.status = Status::Succeeded;
    second.outcome = Some(crate::Outcome::Succeeded(json!("done").into()));
    let mut b = record("b", None);
    b.workflow = "V".into();
    b.status = Status::Failed;
    b.outcome = Some(crate::Outcome::Failed(json!({"error": "no"}).into()));
    let started = |child: &str| {
        event(EventKind::ChildStarted {
            child: child.into(),
            workflow: "W".into(),
        })
    };
    let executions = vec![
        (
            p,
            vec![
                event(EventKind::TaskScheduled),
                started("p/1.0"),
                started("p/1.1"),
                event(EventKind::ChildSucceeded {
                    child: "p/1.1".into(),
                }),
            ],
        ),
        (
            first,
            vec![event(EventKind::WaitStarted {
                until: Timestamp(9_000),
            })],
        ),
        (second, vec![event(EventKind::TaskScheduled)]),
        (b, vec![]),
    ];
    write_version_1(&path, &executions);

    let store = SqliteStore::open(&path).unwrap();
    for (r, events) in &executions {
        assert_eq!(store.get(&r.id).await.unwrap().as_ref(), Some(r));
        assert_eq!(&store.history(&r.id).await.unwrap(), events, "{}", r.id);
    }
    let ids = |v: Vec<ExecutionId>| v.iter().map(|id| id.to_string()).collect::<Vec<_>>();
    assert_eq!(
        ids(store.children(&"p".into()).await.unwrap()),
        ["p/1.0", "p/1.1"]
    );
    assert!(store.children(&"b".into()).await.unwrap().is_empty());
    let listed = |filter: ExecutionFilter| {
        let store = store.clone();
        async move {
            let summaries = store.list(&filter).await.unwrap();
            ids(summaries.into_iter().map(|s| s.unwrap().id).collect())
        }
    };
    assert_eq!(
        listed(ExecutionFilter::new()).await,
        ["p", "p/1.0", "p/1.1", "b"]
    );
    assert_eq!(listed(ExecutionFilter::new().top_level()).await, ["p", "b"]);
    assert_eq!(listed(ExecutionFilter::new().workflow("V")).await, ["b"]);
    assert_eq!(
        listed(ExecutionFilter::new().status(Status::Succeeded)).await,
        ["p/1.1"]
    );
    let summary = store.list(&ExecutionFilter::new()).await.unwrap()[1].clone();
    assert_eq!(summary.unwrap().parent, Some("p".into()));
    let unfinished: Vec<ExecutionRecord> = store
        .unfinished()
        .await
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        unfinished,
        [executions[0].0.clone(), executions[1].0.clone()]
    );

    // Writes go on: event numbers continue, call sites stay taken.
    store
        .checkpoint(&checkpoint("p/1.0", b"[2]", None))
        .await
        .unwrap();
    assert_eq!(store.history(&"p/1.0".into()).await.unwrap().len(), 2);
    let twin = store
        .create(record("p/1.0bis", Some("p")), vec![], vec![])
        .await;
    assert_eq!(twin, Err(StoreError::AlreadyExists("p/1.0bis".into())));
    let again = store.create(record("b", None), vec![], vec![]).await;
    assert_eq!(again, Err(StoreError::AlreadyExists("b".into())));
    let mut next = record("p/2.0", Some("p"));
    next.call_site.as_mut().unwrap().batch = 2;
    store
        .create(next, vec![], vec![started("p/2.0")])
        .await
        .unwrap();
    assert_eq!(
        ids(store.children(&"p".into()).await.unwrap()),
        ["p/1.0", "p/1.1", "p/2.0"]
    );
    assert_eq!(store.history(&"p".into()).await.unwrap().len(), 5);
    drop(store);

    let conn = Connection::open(&path).unwrap();
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, super::schema::SCHEMA_VERSION);
    let leftovers: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name LIKE '%v1%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(leftovers, 0, "the version-1 tables are gone");
}

/// A version-2 file (before redrives) is upgraded in place on open: its rows read as
/// never redriven, keep their keys and histories, and can be redriven.
#[tokio::test]
async fn a_version_2_file_is_upgraded_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let mut failed = record("f", None);
    failed.status = Status::Failed;
    failed.outcome = Some(crate::Outcome::Failed(json!("no").into()));
    failed.waiting = Some(Wait::Timer {
        node: 1,
        until: Timestamp(9_000),
    });
    {
        let conn = Connection::open(&path).unwrap();
        for migration in &super::schema::MIGRATIONS[..2] {
            conn.execute_batch(migration).unwrap();
        }
        conn.pragma_update(None, "application_id", super::schema::APPLICATION_ID)
            .unwrap();
        conn.pragma_update(None, "user_version", 2).unwrap();
        conn.execute(
            "INSERT INTO executions (key, id, workflow, fingerprint, status, input, state, \
             waiting, batches, outcome, created_at, updated_at) \
             VALUES (41, 'f', 'W', ?1, 'Failed', ?2, ?3, ?4, 0, ?5, 1, 1)",
            params![
                i64::from_ne_bytes(failed.fingerprint.to_ne_bytes()),
                to_json(&failed.input),
                failed.state,
                failed.waiting.as_ref().map(to_json),
                failed.outcome.as_ref().map(to_json),
            ],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO events (execution, seq, body) VALUES (41, 1, ?1)",
            [to_json(&event(EventKind::TaskScheduled))],
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    let id = ExecutionId::from("f");
    assert_eq!(store.get(&id).await.unwrap(), Some(failed.clone()));
    assert_eq!((failed.redrives, failed.redriven_at), (0, None));
    let redriven = Event {
        at: Timestamp(10),
        state: None,
        kind: EventKind::ExecutionRedriven { count: 1 },
    };
    store
        .reopen(&[crate::store::Reopen {
            id: id.clone(),
            expected: Status::Failed,
            redrives: 1,
            waiting: failed.waiting.clone(),
            events: vec![redriven.clone()],
            at: Timestamp(10),
        }])
        .await
        .unwrap();
    let reopened = store.get(&id).await.unwrap().unwrap();
    assert_eq!(
        (reopened.status, reopened.redrives, reopened.redriven_at),
        (Status::Running, 1, Some(Timestamp(10)))
    );
    assert_eq!(reopened.wake_at, Some(Timestamp(9_000)));
    assert_eq!(
        store.history(&id).await.unwrap(),
        [event(EventKind::TaskScheduled), redriven]
    );
    drop(store);
    let conn = Connection::open(&path).unwrap();
    let (version, key): (i64, i64) = conn
        .query_row(
            "SELECT (SELECT user_version FROM pragma_user_version), key FROM executions",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((version, key), (super::schema::SCHEMA_VERSION, 41));
}

#[tokio::test]
async fn a_version_3_file_is_upgraded_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let mut running = record("r", None);
    running.waiting = Some(Wait::Timer {
        node: 0,
        until: Timestamp(9_000),
    });
    running.wake_at = Some(Timestamp(9_000));
    {
        let conn = Connection::open(&path).unwrap();
        for migration in &super::schema::MIGRATIONS[..3] {
            conn.execute_batch(migration).unwrap();
        }
        conn.pragma_update(None, "application_id", super::schema::APPLICATION_ID)
            .unwrap();
        conn.pragma_update(None, "user_version", 3).unwrap();
        conn.execute(
            "INSERT INTO executions (key, id, workflow, fingerprint, status, input, state, \
             waiting, batches, wake_at, created_at, updated_at) \
             VALUES (7, 'r', 'W', ?1, 'Running', ?2, ?3, ?4, 0, 9000, 1, 1)",
            params![
                i64::from_ne_bytes(running.fingerprint.to_ne_bytes()),
                to_json(&running.input),
                running.state,
                running.waiting.as_ref().map(to_json),
            ],
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    let id = ExecutionId::from("r");
    assert_eq!(store.get(&id).await.unwrap(), Some(running));
    let callbacks = ExecutionFilter::new().waiting_on_callback();
    assert!(store.list(&callbacks).await.unwrap().is_empty());
    // It takes callbacks from now on.
    let callback =
        crate::callback::PendingCallback::new(1, Timestamp(10), Duration::from_secs(60), None)
            .unwrap();
    let wait = Wait::Callback(callback);
    store
        .checkpoint(&checkpoint("r", b"[2]", Some(wait.clone())))
        .await
        .unwrap();
    let listed: Vec<ExecutionId> = store
        .list(&callbacks)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.unwrap().id)
        .collect();
    assert_eq!(listed, std::slice::from_ref(&id));
    assert_eq!(store.get(&id).await.unwrap().unwrap().waiting, Some(wait));
    drop(store);
    let conn = Connection::open(&path).unwrap();
    let (version, key): (i64, i64) = conn
        .query_row(
            "SELECT (SELECT user_version FROM pragma_user_version), key FROM executions",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((version, key), (super::schema::SCHEMA_VERSION, 7));
}

#[tokio::test]
async fn a_second_store_on_the_same_file_is_refused_until_the_first_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let first = SqliteStore::open(&path).unwrap();
    let err = SqliteStore::open(&path).unwrap_err();
    match &err {
        OpenError::Locked { path: p, holder } => {
            assert_eq!(p, &path);
            let holder = holder.as_ref().expect("the holder is known");
            assert_eq!(holder.pid, std::process::id());
            assert!(
                err.to_string().contains(&format!("pid {}", holder.pid)),
                "{err}"
            );
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    assert!(err
        .to_string()
        .contains("in use by another workflow runtime"));
    let clone = first.clone();
    drop(first);
    assert!(
        SqliteStore::open(&path).is_err(),
        "a clone still holds the lock"
    );
    drop(clone);
    SqliteStore::open(&path).unwrap();
}

/// A runtime that stopped has released its clone, but a call it had in flight may still
/// hold that clone: the store closes when the caller drops the last clone of theirs, not
/// when that call ends (it then answers `Stopped`).
#[tokio::test]
async fn a_released_clone_still_in_use_does_not_keep_the_store_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let kept = SqliteStore::open(&path).unwrap();
    let runtimes: Arc<dyn Store> = Arc::new(kept.clone());
    let in_flight = Arc::clone(&runtimes);
    runtimes.release();
    drop(runtimes);
    in_flight
        .create(record("a", None), vec![], vec![])
        .await
        .unwrap();
    drop(kept);
    let reopened = SqliteStore::open(&path).expect("no clone holds the store");
    assert_eq!(
        in_flight
            .create(record("b", None), vec![], vec![])
            .await
            .unwrap_err(),
        StoreError::Stopped
    );
    assert!(reopened.get(&"a".into()).await.unwrap().is_some());
    // Letting go twice (released, then dropped) counts once: a clone made after it
    // holds the store on its own.
    let clone = reopened.clone();
    clone.release();
    drop(clone);
    assert!(
        SqliteStore::open(&path).is_err(),
        "`reopened` still holds it"
    );
}

/// The page size is set before anything else is written to a new file (a file in WAL
/// mode cannot change it later).
#[test]
fn a_new_file_gets_the_current_schema_and_page_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    drop(SqliteStore::open(&path).unwrap());
    let conn = Connection::open(&path).unwrap();
    let (page_size, version): (i64, i64) = conn
        .query_row(
            "SELECT page_size, user_version FROM pragma_page_size, pragma_user_version",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        (page_size, version),
        (super::schema::PAGE_SIZE, super::schema::SCHEMA_VERSION)
    );
}

#[test]
fn a_newer_schema_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    drop(SqliteStore::open(&path).unwrap());
    let conn = Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    match SqliteStore::open(&path).unwrap_err() {
        OpenError::SchemaTooNew {
            found, supported, ..
        } => assert_eq!((found, supported), (99, super::schema::SCHEMA_VERSION)),
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
    let conn = Connection::open(&path).unwrap();
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, 99);
}

#[test]
fn another_applications_database_and_garbage_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other.sqlite");
    Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE accounts (id INTEGER)")
        .unwrap();
    assert!(matches!(
        SqliteStore::open(&other).unwrap_err(),
        OpenError::ForeignDatabase {
            application_id: 0,
            ..
        }
    ));
    let garbage = dir.path().join("garbage.sqlite");
    std::fs::write(&garbage, vec![0x42; 8192]).unwrap();
    assert!(matches!(
        SqliteStore::open(&garbage).unwrap_err(),
        OpenError::Sqlite { .. }
    ));
}

/// While another connection holds the write lock, queued writes wait (retrying `BUSY`)
/// and then commit together: fewer transactions than writes. The wait is the writer's
/// time in a transaction ([`StoreStats::writing`](crate::StoreStats::writing)).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_writes_are_retried_and_queued_writes_share_a_commit() {
    let opened = std::time::Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let store = SqliteStore::open_with(
        &path,
        SqliteOptions::new().busy_timeout(Duration::from_secs(60)),
    )
    .unwrap();
    store
        .create(record("a", None), vec![], vec![])
        .await
        .unwrap();
    let before = store.stats();

    let blocker = Connection::open(&path).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let writes: Vec<_> = (0..50)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let events = vec![event(EventKind::PollAttempt {
                    attempt: i,
                    outcome: crate::PollOutcome::NotReady,
                })];
                store.append(&"a".into(), events).await
            })
        })
        .collect();
    // Let every write reach the queue while the lock is held.
    tokio::time::sleep(Duration::from_millis(200)).await;
    blocker.execute_batch("COMMIT").unwrap();
    for w in writes {
        w.await.unwrap().unwrap();
    }
    let after = store.stats();
    assert_eq!(after.writes - before.writes, 50);
    assert!(
        after.transactions - before.transactions < 50,
        "group commit: {before:?} → {after:?}"
    );
    // The lock was held for 200 ms after the writes were queued: the writer spent most
    // of it in `BEGIN IMMEDIATE`, and it has one thread, so never more than what passed.
    let writing = after.writing - before.writing;
    assert!(
        writing >= Duration::from_millis(100),
        "{before:?} → {after:?}"
    );
    assert!(after.writing <= opened.elapsed(), "{after:?}");
    assert_eq!(store.history(&"a".into()).await.unwrap().len(), 50);
}

/// A full disk (here: a size cap, which SQLite reports exactly like a full disk) fails
/// the whole transaction with a transient error, leaves the previous state, and the same
/// write succeeds once there is room.
#[tokio::test]
async fn a_full_disk_fails_cleanly_and_writes_resume_with_room() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("db.sqlite")).unwrap();
    store
        .create(record("a", None), vec![], vec![])
        .await
        .unwrap();
    store
        .checkpoint(&checkpoint("a", b"[\"small\"]", None))
        .await
        .unwrap();
    store.set_max_size(Some(1)).await.unwrap();
    let big = format!("[\"{}\"]", "x".repeat(64 * 1024));
    let err = store
        .checkpoint(&checkpoint("a", big.as_bytes(), None))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(err.to_string().contains("full"), "{err}");
    assert_eq!(store.stats().consecutive_failures, 1);
    let a = store.get(&"a".into()).await.unwrap().unwrap();
    assert_eq!(a.state, b"[\"small\"]", "the previous state is intact");
    assert_eq!(store.history(&"a".into()).await.unwrap().len(), 1);
    store.set_max_size(None).await.unwrap();
    store
        .checkpoint(&checkpoint("a", big.as_bytes(), None))
        .await
        .unwrap();
    assert_eq!(store.stats().consecutive_failures, 0, "reset by a commit");
    assert!(
        !store.stats().broken,
        "a full disk does not break the store"
    );
    assert_eq!(
        store.get(&"a".into()).await.unwrap().unwrap().state,
        big.as_bytes()
    );
}

/// A write that fails halfway (here a trigger refuses one of its events, after its row
/// was updated) fails alone: the batch is applied again write by write, the failing one
/// leaves nothing behind, the others commit, and the next event numbers are still right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_failing_halfway_is_undone_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let store = SqliteStore::open_with(
        &path,
        SqliteOptions::new().busy_timeout(Duration::from_secs(60)),
    )
    .unwrap();
    for id in ["a", "b", "c"] {
        store
            .create(record(id, None), vec![], vec![])
            .await
            .unwrap();
    }
    let blocker = Connection::open(&path).unwrap();
    blocker
        .execute_batch(
            "CREATE TRIGGER refuse BEFORE INSERT ON events \
             WHEN json_extract(NEW.body, '$.kind.type') = 'WaitEnded' \
             BEGIN SELECT RAISE(ABORT, 'refused by the test'); END; BEGIN IMMEDIATE",
        )
        .unwrap();
    let before = store.stats();
    // A first write keeps the writer waiting for the lock, so that the three checkpoints
    // queue behind it and make one batch.
    let first = {
        let store = store.clone();
        tokio::spawn(async move {
            let events = vec![event(EventKind::TaskScheduled)];
            store.append(&"c".into(), events).await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let writes: Vec<_> = ["a", "b", "c"]
        .into_iter()
        .map(|id| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut cp = checkpoint(id, b"[\"next\"]", None);
                if id == "b" {
                    cp.events.push(event(EventKind::WaitEnded));
                }
                store.checkpoint(&cp).await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    blocker.execute_batch("COMMIT").unwrap();
    first.await.unwrap().unwrap();
    let results: Vec<_> = futures_results(writes).await;
    assert_eq!(
        store.stats().transactions - before.transactions,
        2,
        "the first write, then one batch"
    );
    assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
    let err = results[1].clone().unwrap_err();
    assert!(!err.is_transient(), "{err:?}");
    assert!(err.to_string().contains("refused by the test"), "{err}");
    let b = store.get(&"b".into()).await.unwrap().unwrap();
    assert_eq!(b.state, record("b", None).state, "b's update was undone");
    assert!(store.history(&"b".into()).await.unwrap().is_empty());
    for id in ["a", "c"] {
        let r = store.get(&id.into()).await.unwrap().unwrap();
        assert_eq!(r.state, b"[\"next\"]");
    }
    // Event numbers continue where the file says, for the failed write's execution too.
    for id in ["a", "b", "c"] {
        store
            .checkpoint(&checkpoint(id, b"[\"again\"]", None))
            .await
            .unwrap();
    }
    assert_eq!(store.history(&"a".into()).await.unwrap().len(), 2);
    assert_eq!(store.history(&"b".into()).await.unwrap().len(), 1);
    assert_eq!(store.history(&"c".into()).await.unwrap().len(), 3);
}

async fn futures_results(
    tasks: Vec<tokio::task::JoinHandle<Result<(), StoreError>>>,
) -> Vec<Result<(), StoreError>> {
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    results
}

/// The lock is on the file, not on a name: a symlink, a relative path, or the same path
/// after the holder file was deleted all reach the held file and are refused, without
/// this process opening (and closing) a descriptor of it. (`tests/faults/store.rs` does
/// the same from another process, where the kernel's lock refuses.)
#[cfg(unix)]
#[tokio::test]
async fn every_path_to_a_held_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let store = SqliteStore::open(&path).unwrap();
    let link = dir.path().join("link.sqlite");
    std::os::unix::fs::symlink(&path, &link).unwrap();
    let dotted = dir.path().join(".").join("db.sqlite");
    for other in [&link, &dotted, &path] {
        match SqliteStore::open(other).unwrap_err() {
            OpenError::Locked {
                path: refused,
                holder: Some(holder),
            } => {
                assert_eq!(&refused, other);
                assert_eq!(holder.pid, std::process::id());
            }
            e => panic!("{}: expected Locked, got {e:?}", other.display()),
        }
    }
    // What the holder wrote down is only for the message: without it, still refused.
    let holder_file = dir.path().join("db.sqlite.holder");
    assert!(holder_file.exists());
    std::fs::remove_file(&holder_file).unwrap();
    assert!(matches!(
        SqliteStore::open(&link).unwrap_err(),
        OpenError::Locked { .. }
    ));
    // The refusals closed no descriptor of the file: the store still writes and reads.
    store
        .create(record("a", None), vec![], vec![])
        .await
        .unwrap();
    assert!(store.get(&"a".into()).await.unwrap().is_some());
    drop(store);
    let reopened = SqliteStore::open(&link).unwrap();
    assert!(reopened.get(&"a".into()).await.unwrap().is_some());
    drop(reopened);
    assert!(!holder_file.exists(), "removed by its holder on close");
}

/// Two names of one file would have two write-ahead logs: refused by either name.
#[cfg(unix)]
#[test]
fn a_hard_linked_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    drop(SqliteStore::open(&path).unwrap());
    let other = dir.path().join("other.sqlite");
    std::fs::hard_link(&path, &other).unwrap();
    for name in [&path, &other] {
        match SqliteStore::open(name).unwrap_err() {
            OpenError::HardLinked { path: p, links } => {
                assert_eq!((&p, links), (name, 2));
            }
            e => panic!("expected HardLinked, got {e:?}"),
        }
    }
    std::fs::remove_file(&other).unwrap();
    drop(SqliteStore::open(&path).unwrap());
}

/// Writes rows no version of the store writes, with a connection of its own.
fn write_rows(path: &Path, sql: &str) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(sql).unwrap();
}

const ROW_COLUMNS: &str =
    "(id, workflow, fingerprint, status, input, state, created_at, updated_at)";

/// A row that does not decode is reported on its own, in its place; the others are
/// listed. Recovery fails only that execution.
#[tokio::test]
async fn a_listing_reports_corrupt_rows_apart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    {
        let store = SqliteStore::open(&path).unwrap();
        for id in ["a", "b"] {
            store
                .create(record(id, None), vec![], vec![])
                .await
                .unwrap();
        }
    }
    write_rows(
        &path,
        &format!(
            "INSERT INTO executions {ROW_COLUMNS} VALUES
                ('bad-status', 'W', 1, 'Sleepwalking', '1', x'', 1, 1),
                ('bad-time', 'W', 1, 'Running', '1', x'', 'yesterday', 1),
                (x'ff00', 'W', 1, 'Running', '1', x'', 1, 1),
                ('bad-workflow', x'ff', 1, 'Running', '1', x'', 1, 1);
             INSERT INTO executions {ROW_COLUMNS} VALUES ('c', 'W', 1, 'Running', '1', x'', 1, 1);"
        ),
    );
    let store = SqliteStore::open(&path).unwrap();
    let rows = store.list(&ExecutionFilter::new()).await.unwrap();
    let listed: Vec<String> = rows
        .iter()
        .map(|row| match row {
            Ok(summary) => format!("ok {}", summary.id),
            Err(corrupt) => format!("corrupt {}: {}", corrupt.id, corrupt.message),
        })
        .collect();
    assert_eq!(listed.len(), 7, "{listed:#?}");
    assert_eq!(listed[..2], ["ok a", "ok b"]);
    assert_eq!(listed[2], "corrupt bad-status: status: Sleepwalking");
    assert!(
        listed[3].starts_with("corrupt bad-time: created_at"),
        "{listed:#?}"
    );
    assert_eq!(listed[4], "corrupt \u{fffd}\0: id: a blob");
    assert!(
        listed[5].starts_with("corrupt bad-workflow: workflow"),
        "{listed:#?}"
    );
    assert_eq!(listed[6], "ok c");
    // A status filter reads what is stored: the unknown status matches no filter.
    let running = store
        .list(&ExecutionFilter::new().status(Status::Running))
        .await
        .unwrap();
    assert_eq!(running.iter().filter(|r| r.is_err()).count(), 3);
    // Recovery's reading has the same row by row reports.
    let unfinished = store.unfinished().await.unwrap();
    let corrupt: Vec<_> = unfinished
        .iter()
        .filter_map(|r| r.as_ref().err())
        .map(|c| c.id.to_string())
        .collect();
    assert_eq!(corrupt, ["bad-time", "\u{fffd}\0", "bad-workflow"]);
}

/// Overwrites every page of the file but the first with garbage, once every committed
/// page is in it: the next transaction of the writer reads the pages from the file.
///
/// The writer's page cache is valid as long as no other connection changed the log;
/// the `TRUNCATE` checkpoint restarts it, so the writer drops its cache and reads the
/// (garbage) pages from the file again. Nothing may write in between.
fn corrupt_pages(path: &Path) {
    use std::io::{Seek, SeekFrom, Write};
    let conn = Connection::open(path).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    let (busy, _, _): (i64, i64, i64) = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!(busy, 0, "the checkpoint copied everything");
    let page_size: u64 = conn
        .pragma_query_value(None, "page_size", |r| r.get(0))
        .unwrap();
    drop(conn);
    let mut file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    let len = file.metadata().unwrap().len();
    assert!(len > page_size, "more than the first page");
    file.seek(SeekFrom::Start(page_size)).unwrap();
    let garbage = vec![0xA5; usize::try_from(len - page_size).unwrap()];
    file.write_all(&garbage).unwrap();
    file.sync_all().unwrap();
}

/// A corrupted page is not "unavailable": the store stops with a typed error naming the
/// file, answers every later write and read with it, and says so in its counters.
#[tokio::test]
async fn a_corrupted_page_stops_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let store = SqliteStore::open(&path).unwrap();
    for id in ["a", "b", "c"] {
        store
            .create(
                record(id, None),
                vec![event(EventKind::TaskScheduled)],
                vec![],
            )
            .await
            .unwrap();
    }
    corrupt_pages(&path);
    let err = store
        .checkpoint(&checkpoint("a", b"[2]", None))
        .await
        .unwrap_err();
    let StoreError::Broken {
        path: named,
        reason,
    } = &err
    else {
        panic!("expected Broken, got {err:?}");
    };
    assert_eq!(named, &path);
    assert!(reason.contains("malformed"), "{reason}");
    assert!(!err.is_transient());
    assert_eq!(store.stats().consecutive_failures, 1);
    // Every later write and read: the same error, without touching the file.
    let again = store
        .create(record("d", None), vec![], vec![])
        .await
        .unwrap_err();
    assert_eq!(again, err);
    assert_eq!(store.get(&"b".into()).await.unwrap_err(), err);
    assert_eq!(store.list(&ExecutionFilter::new()).await.unwrap_err(), err);
    assert_eq!(store.unfinished().await.unwrap_err(), err);
    assert_eq!(store.stats().transactions, 3, "nothing committed since");
    assert!(store.stats().broken);
}

/// A read that finds the corruption first stops the store as well.
#[tokio::test]
async fn a_corrupted_page_found_by_a_read_stops_the_writes_too() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let store = SqliteStore::open(&path).unwrap();
    store
        .create(record("a", None), vec![], vec![])
        .await
        .unwrap();
    corrupt_pages(&path);
    let err = store.list(&ExecutionFilter::new()).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Broken { path: p, .. } if *p == path),
        "{err:?}"
    );
    let write = store
        .checkpoint(&checkpoint("a", b"[2]", None))
        .await
        .unwrap_err();
    assert_eq!(write, err);
}

/// A file deleted (or replaced) under the store: the first commit after it is not
/// acknowledged, and the store stops; the connections close without deleting the log.
#[cfg(unix)]
#[tokio::test]
async fn a_deleted_file_stops_the_store_at_the_next_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let store = SqliteStore::open(&path).unwrap();
    store
        .create(record("a", None), vec![], vec![])
        .await
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    let err = store
        .create(record("b", None), vec![], vec![])
        .await
        .unwrap_err();
    match &err {
        StoreError::Broken { path: p, reason } => {
            assert_eq!(p, &path);
            assert!(reason.contains("no longer exists"), "{reason}");
        }
        other => panic!("expected Broken, got {other:?}"),
    }
    assert_eq!(store.get(&"a".into()).await.unwrap_err(), err);

    // Replaced by another file: the same.
    let path = dir.path().join("replaced.sqlite");
    let store = SqliteStore::open(&path).unwrap();
    store
        .create(record("a", None), vec![], vec![])
        .await
        .unwrap();
    let other = dir.path().join("other");
    std::fs::write(&other, b"another file").unwrap();
    std::fs::rename(&other, &path).unwrap();
    let err = store.get(&"a".into()).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Broken { reason, .. } if reason.contains("another file")),
        "{err:?}"
    );
    drop(store);
    assert_eq!(std::fs::read(&path).unwrap(), b"another file", "left alone");
}

/// Which SQLite errors are retried and which stop the store.
#[test]
fn sqlite_errors_are_classified_by_whether_they_heal() {
    use super::errors::Cause;
    use rusqlite::ffi;
    let cause = |code: i32| {
        Cause::from(rusqlite::Error::SqliteFailure(
            ffi::Error::new(code),
            Some("test".into()),
        ))
    };
    for code in [
        ffi::SQLITE_BUSY,
        ffi::SQLITE_LOCKED,
        ffi::SQLITE_FULL,
        ffi::SQLITE_NOMEM,
        ffi::SQLITE_IOERR_NOMEM,
    ] {
        assert!(matches!(cause(code), Cause::Transient(_)), "{code}");
    }
    for code in [
        ffi::SQLITE_CORRUPT,
        ffi::SQLITE_NOTADB,
        ffi::SQLITE_IOERR,
        ffi::SQLITE_IOERR_FSYNC,
        ffi::SQLITE_IOERR_SHORT_READ,
        ffi::SQLITE_READONLY,
        ffi::SQLITE_READONLY_DBMOVED,
        ffi::SQLITE_CANTOPEN,
        ffi::SQLITE_PERM,
    ] {
        assert!(matches!(cause(code), Cause::Broken(_)), "{code}");
    }
    for code in [
        ffi::SQLITE_CONSTRAINT,
        ffi::SQLITE_TOOBIG,
        ffi::SQLITE_MISMATCH,
    ] {
        assert!(matches!(cause(code), Cause::Store(_)), "{code}");
    }
}
