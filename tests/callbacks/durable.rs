//! Callbacks on SQLite: the pending callback survives restarts, and so does a
//! completion that comes while the program is down or before it has recovered.
//!
//! A "restart" is [`Runtime::shutdown`] and a new runtime on the same file, as in
//! `tests/durable.rs`; `crash.rs` does it with `kill -9`.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use workflow::prelude::*;
use workflow::{ExecutionFilter, Outcome, Status};

use super::shared::{approve, approve_in_time, Decision, Desk, Order, OrderError};

/// A runtime on the file at `path`. (Its desk does not know it: a desk holding its
/// runtime would keep the file open after `shutdown`.)
fn runtime(path: &Path, desk: &Arc<Desk>) -> Runtime {
    Runtime::builder()
        .register(approve)
        .register(approve_in_time)
        .dependency_arc(Arc::clone(desk))
        .sqlite(path)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_waits_across_restarts_and_its_token_is_sent_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("callbacks.sqlite");
    let desk = Arc::new(Desk::default());
    let rt = runtime(&db, &desk);
    let before = rt
        .start(approve, Order::new("b-1", 1, 60_000))
        .await
        .unwrap();
    let after = rt
        .start(approve, Order::new("b-2", 2, 60_000))
        .await
        .unwrap();
    let (early, late) = (desk.token("b-1").await, desk.token("b-2").await);
    let ids = (before.id().clone(), after.id().clone());
    // Wait for the drivers to mark both tokens sent, then stop as a crash would.
    for _ in 0..200 {
        let waiting = rt
            .list(ExecutionFilter::new().waiting_on_callback())
            .await
            .unwrap();
        let mut sent = 0;
        for e in &waiting.executions {
            if rt
                .record(&e.id)
                .await
                .unwrap()
                .waiting_callback()
                .is_some_and(|c| c.sent)
            {
                sent += 1;
            }
        }
        if sent == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    rt.shutdown().await;

    // A new program: one completion before it recovers, one after.
    let desk2 = Arc::new(Desk::default());
    let rt = runtime(&db, &desk2);
    let listed = rt
        .list(ExecutionFilter::new().waiting_on_callback())
        .await
        .unwrap();
    assert_eq!(listed.executions.len(), 2);
    rt.complete(&early, Decision::Approve).await.unwrap();
    let report = rt.recover().await.unwrap();
    assert_eq!(report.waiting_on_callbacks, 2, "{report}");
    rt.complete(&late, Decision::Approve).await.unwrap();
    for (id, expected) in [(&ids.0, "b-1 approved"), (&ids.1, "b-2 approved")] {
        match rt.wait(id).await.unwrap() {
            Outcome::Succeeded(v) => assert_eq!(v.decode::<String>().unwrap(), expected),
            other => panic!("{other:?}"),
        }
    }
    // Recovery did not send the tokens again: they had been sent.
    assert_eq!(desk2.sends.load(Ordering::SeqCst), 0);
    assert!(rt
        .list(ExecutionFilter::new().waiting_on_callback())
        .await
        .unwrap()
        .executions
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_that_passed_while_the_program_was_down_times_out_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("callbacks.sqlite");
    let desk = Arc::new(Desk::default());
    let rt = runtime(&db, &desk);
    let run = rt.start(approve, Order::new("d-1", 1, 300)).await.unwrap();
    let id = run.id().clone();
    let token = desk.token("d-1").await;
    rt.shutdown().await;
    tokio::time::sleep(Duration::from_millis(400)).await;

    let desk = Arc::new(Desk::default());
    let rt = runtime(&db, &desk);
    rt.recover().await.unwrap();
    let Outcome::Failed(error) = rt.wait(&id).await.unwrap() else {
        panic!("it should have failed");
    };
    assert_eq!(
        error.decode::<OrderError>().unwrap(),
        OrderError::Callback(CallbackError::TimedOut {
            timeout: Duration::from_millis(300)
        })
    );
    let late = rt.complete(&token, Decision::Approve).await;
    assert!(late.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redriven_execution_waits_on_the_same_callback_again() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("callbacks.sqlite");
    let desk = Arc::new(Desk::default());
    let rt = runtime(&db, &desk);
    let run = rt
        .start(approve_in_time, Order::new("r-1", 1, 0))
        .await
        .unwrap();
    let id = run.id().clone();
    let token = desk.token("r-1").await;
    assert_eq!(run.result().await, Err(RunError::TimedOut));
    assert_eq!(rt.record(&id).await.unwrap().status, Status::TimedOut);
    rt.redrive(&id).await.unwrap();
    // The same token, not sent again, completes the redriven execution.
    rt.complete(&token, Decision::Approve).await.unwrap();
    match rt.wait(&id).await.unwrap() {
        Outcome::Succeeded(v) => assert_eq!(v.decode::<String>().unwrap(), "r-1 approved"),
        other => panic!("{other:?}"),
    }
    assert_eq!(desk.sends.load(Ordering::SeqCst), 1);
}
