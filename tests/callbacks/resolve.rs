//! How a callback is resolved, in memory: every way it ends, and every refusal.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use workflow::prelude::*;
use workflow::store::Wait;
use workflow::{CallbackToken, CompletionError, EventKind, ExecutionFilter, ExecutionId, Status};

use super::shared::{acknowledge, approve, Decision, Desk, Order, OrderError};

fn runtime() -> (Runtime, Arc<Desk>) {
    let desk = Arc::new(Desk::default());
    let runtime = Runtime::builder()
        .register(approve)
        .register(acknowledge)
        .dependency_arc(Arc::clone(&desk))
        .build()
        .unwrap();
    desk.runtime.set(runtime.clone()).ok();
    (runtime, desk)
}

async fn kinds(runtime: &Runtime, id: &ExecutionId) -> Vec<&'static str> {
    let history = runtime.history(id).await.unwrap();
    history.iter().map(|e| e.kind.name()).collect()
}

/// `token` with its secret's last digit changed.
fn forged(token: &CallbackToken) -> CallbackToken {
    let text = token.to_string();
    let mut parts: Vec<String> = text.splitn(4, '.').map(str::to_owned).collect();
    let secret = &mut parts[2];
    let last = if secret.ends_with('0') { '1' } else { '0' };
    secret.pop();
    secret.push(last);
    parts.join(".").parse().unwrap()
}

#[tokio::test]
async fn a_completion_gives_the_workflow_its_value() {
    let (rt, desk) = runtime();
    let run = rt
        .start(approve, Order::new("o-1", 10, 60_000))
        .await
        .unwrap();
    let token = desk.token("o-1").await;
    assert_eq!(token.execution().as_ref(), Some(run.id()));
    rt.complete(&token, Decision::Approve).await.unwrap();
    let id = run.id().clone();
    assert_eq!(run.result().await.unwrap(), "o-1 approved");
    assert_eq!(
        kinds(&rt, &id).await,
        [
            "ExecutionStarted",
            "CallbackStarted",
            "CallbackCompleted",
            "ExecutionSucceeded"
        ]
    );
    let history = rt.history(&id).await.unwrap();
    let started = history.iter().find_map(|e| match &e.kind {
        EventKind::CallbackStarted {
            callback,
            timeout,
            heartbeat,
        } => Some((callback.clone(), *timeout, *heartbeat, e.state.clone())),
        _ => None,
    });
    let (callback, timeout, heartbeat, state) = started.unwrap();
    assert_eq!(Some(callback.as_str()), token.callback());
    assert_eq!(timeout, Duration::from_secs(60));
    assert_eq!(heartbeat, Some(Duration::from_secs(3600)));
    assert_eq!(state.as_deref(), Some("callback desk.request"));
    // The secret is in no event.
    let secret = token.to_string().split('.').nth(2).unwrap().to_owned();
    assert!(history
        .iter()
        .all(|e| !serde_json::to_string(e).unwrap().contains(&secret)));
    // The token went out once.
    assert_eq!(desk.sent("o-1").len(), 1);
}

#[tokio::test]
async fn a_value_the_code_rejects_is_the_workflows_own_error() {
    let (rt, desk) = runtime();
    let run = rt
        .start(approve, Order::new("o-2", 10, 60_000))
        .await
        .unwrap();
    let reject = Decision::Reject {
        reason: "over budget".into(),
    };
    rt.complete(&desk.token("o-2").await, reject).await.unwrap();
    assert_eq!(
        run.result().await,
        Err(RunError::Failed(OrderError::Rejected("over budget".into())))
    );
}

#[tokio::test]
async fn a_failure_is_a_typed_error_named_as_given() {
    let (rt, desk) = runtime();
    let run = rt
        .start(approve, Order::new("o-3", 10, 60_000))
        .await
        .unwrap();
    let id = run.id().clone();
    let token = desk.token("o-3").await;
    rt.fail(&token, "Approval.Withdrawn", "the customer cancelled")
        .await
        .unwrap();
    let error = match run.result().await {
        Err(RunError::Failed(e)) => e,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        error,
        OrderError::Callback(CallbackError::Failed {
            error: "Approval.Withdrawn".into(),
            cause: "the customer cancelled".into(),
        })
    );
    assert_eq!(error.error_name(), "Approval.Withdrawn");
    let failed = rt.history(&id).await.unwrap();
    assert!(failed.iter().any(|e| matches!(&e.kind,
        EventKind::ExecutionFailed { name: Some(n), .. } if n == "Approval.Withdrawn")));
    assert!(kinds(&rt, &id).await.contains(&"CallbackFailed"));
}

#[tokio::test]
async fn a_failure_needs_a_valid_error_name() {
    let (rt, desk) = runtime();
    let run = rt
        .start(approve, Order::new("o-4", 10, 60_000))
        .await
        .unwrap();
    let token = desk.token("o-4").await;
    for (error, cause) in [
        ("", "x"),
        ("States.Timeout", "x"),
        (&*"E".repeat(257), "x"),
        ("Big", &*"c".repeat(32_769)),
    ] {
        let refused = rt.fail(&token, error, cause).await;
        assert!(
            matches!(refused, Err(CompletionError::InvalidFailure { .. })),
            "{refused:?}"
        );
    }
    // Nothing was changed: it still waits.
    rt.complete(&token, Decision::Approve).await.unwrap();
    assert_eq!(run.result().await.unwrap(), "o-4 approved");
}

#[tokio::test]
async fn nobody_answering_times_the_callback_out() {
    let (rt, desk) = runtime();
    let run = rt.start(approve, Order::new("o-5", 10, 300)).await.unwrap();
    let id = run.id().clone();
    let token = desk.token("o-5").await;
    assert_eq!(
        run.result().await,
        Err(RunError::Failed(OrderError::Callback(
            CallbackError::TimedOut {
                timeout: Duration::from_millis(300)
            }
        )))
    );
    let timed_out = rt.history(&id).await.unwrap();
    assert!(timed_out.iter().any(|e| matches!(
        &e.kind,
        EventKind::CallbackTimedOut {
            heartbeat: false,
            ..
        }
    )));
    // Too late: the execution has ended.
    let late = rt.complete(&token, Decision::Approve).await;
    assert!(
        matches!(
            late,
            Err(CompletionError::Ended {
                status: Status::Failed,
                ..
            })
        ),
        "{late:?}"
    );
}

#[tokio::test]
async fn heartbeats_keep_a_callback_alive_until_one_is_missed() {
    let (rt, desk) = runtime();
    let order = Order {
        heartbeat_ms: 250,
        ..Order::new("o-6", 10, 60_000)
    };
    let run = rt.start(approve, order).await.unwrap();
    let id = run.id().clone();
    let token = desk.token("o-6").await;
    // Five heartbeats, 100 ms apart: past two heartbeat intervals in all.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        rt.heartbeat(&token).await.unwrap();
    }
    assert_eq!(rt.record(&id).await.unwrap().status, Status::Running);
    // Then none.
    assert_eq!(
        run.result().await,
        Err(RunError::Failed(OrderError::Callback(
            CallbackError::HeartbeatTimedOut {
                heartbeat: Duration::from_millis(250)
            }
        )))
    );
    let history = rt.history(&id).await.unwrap();
    let beats = history
        .iter()
        .filter(|e| matches!(e.kind, EventKind::CallbackHeartbeat { .. }))
        .count();
    assert_eq!(beats, 5);
    assert!(history.iter().any(|e| matches!(
        &e.kind,
        EventKind::CallbackTimedOut {
            heartbeat: true,
            ..
        }
    )));
    let late = rt.heartbeat(&token).await;
    assert!(
        matches!(late, Err(CompletionError::Ended { .. })),
        "{late:?}"
    );
}

#[tokio::test]
async fn the_first_resolution_wins_and_nothing_resumes_twice() {
    let (rt, desk) = runtime();
    let run = rt
        .start(approve, Order::new("o-7", 10, 60_000))
        .await
        .unwrap();
    let id = run.id().clone();
    let token = desk.token("o-7").await;
    // Many completions at once, from many tasks: exactly one is taken.
    let attempts: Vec<_> = (0..20)
        .map(|i| {
            let (rt, token) = (rt.clone(), token.clone());
            tokio::spawn(async move {
                if i % 2 == 0 {
                    rt.complete(&token, Decision::Approve).await
                } else {
                    rt.fail(&token, "Approval.Withdrawn", "no").await
                }
            })
        })
        .collect();
    let mut taken = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(()) => taken += 1,
            Err(CompletionError::AlreadyResolved { .. } | CompletionError::Ended { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(taken, 1);
    let result = run.result().await;
    // Again once it has moved on: refused as resolved (the execution has ended too).
    let again = rt.complete(&token, Decision::Approve).await;
    assert!(
        matches!(
            again,
            Err(CompletionError::AlreadyResolved { .. } | CompletionError::Ended { .. })
        ),
        "{again:?}"
    );
    let history = rt.history(&id).await.unwrap();
    let resolutions = history
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                EventKind::CallbackCompleted { .. } | EventKind::CallbackFailed { .. }
            )
        })
        .count();
    let ends = history
        .iter()
        .filter(|e| e.kind.name().starts_with("Execution") && e.kind.name() != "ExecutionStarted")
        .count();
    assert_eq!((resolutions, ends), (1, 1), "{result:?}");
}

#[tokio::test]
async fn a_second_completion_of_a_resolved_callback_is_refused_while_the_execution_runs() {
    let (rt, desk) = runtime();
    let run = rt
        .start(acknowledge, Order::new("o-8", 10, 60_000))
        .await
        .unwrap();
    let first = desk.token("o-8").await;
    rt.complete(&first, json!({"anything": true}))
        .await
        .unwrap();
    // The execution is on its second callback now.
    let second = desk.nth("o-8", 1).await;
    assert_ne!(first, second);
    let again = rt.complete(&first, json!(1)).await;
    assert!(
        matches!(again, Err(CompletionError::AlreadyResolved { .. })),
        "{again:?}"
    );
    // The second's value is bound without `?`: a failure is a value too.
    rt.complete(&second, 5).await.unwrap();
    assert_eq!(run.result().await.unwrap(), 15);
}

#[tokio::test]
async fn forged_malformed_and_foreign_tokens_are_refused_and_change_nothing() {
    let (rt, desk) = runtime();
    let run = rt
        .start(approve, Order::new("o-9", 10, 60_000))
        .await
        .unwrap();
    let token = desk.token("o-9").await;
    let refused = rt.complete(&forged(&token), Decision::Approve).await;
    assert!(
        matches!(refused, Err(CompletionError::Forged { .. })),
        "{refused:?}"
    );
    let other_id = token
        .to_string()
        .replacen(token.callback().unwrap(), "0123456789abcdef", 1)
        .parse()
        .unwrap();
    let refused = rt.heartbeat(&other_id).await;
    assert!(
        matches!(refused, Err(CompletionError::Forged { .. })),
        "{refused:?}"
    );
    let unknown: CallbackToken = token
        .to_string()
        .replace(run.id().as_str(), "no-such-execution")
        .parse()
        .unwrap();
    let refused = rt.complete(&unknown, Decision::Approve).await;
    assert!(
        matches!(refused, Err(CompletionError::UnknownExecution { .. })),
        "{refused:?}"
    );
    for text in ["", "wf1.x.y.z", "a token", &token.to_string()[..40]] {
        let malformed = text.parse::<CallbackToken>();
        assert!(
            matches!(malformed, Err(CompletionError::Malformed { .. })),
            "{text:?}: {malformed:?}"
        );
    }
    let aws: CallbackToken = "sfn1.AAAAKgAAAAIAAAAAAAAAA".parse().unwrap();
    let refused = rt.complete(&aws, Decision::Approve).await;
    assert!(matches!(refused, Err(CompletionError::StepFunctionsToken)));
    // A deserialized token is checked as a parsed one.
    assert!(serde_json::from_value::<CallbackToken>(json!("wf1.nope")).is_err());
    // Untouched: the real token still completes it.
    rt.complete(&token, Decision::Approve).await.unwrap();
    assert_eq!(run.result().await.unwrap(), "o-9 approved");
}

#[tokio::test]
async fn a_value_of_the_wrong_type_is_refused_naming_the_type_and_changes_nothing() {
    let (rt, desk) = runtime();
    let run = rt
        .start(approve, Order::new("o-10", 10, 60_000))
        .await
        .unwrap();
    let id = run.id().clone();
    let token = desk.token("o-10").await;
    let refused = rt.complete(&token, json!({"approve": "yes"})).await;
    let Err(CompletionError::WrongType {
        expected, message, ..
    }) = &refused
    else {
        panic!("{refused:?}");
    };
    assert!(expected.ends_with("Decision"), "{expected}");
    assert!(!message.is_empty());
    let shown = refused.unwrap_err().to_string();
    assert!(shown.contains("Decision"), "{shown}");
    // Untouched: still waiting on the same callback, no event written.
    let record = rt.record(&id).await.unwrap();
    assert!(record.waiting_callback().is_some());
    assert!(!kinds(&rt, &id).await.contains(&"CallbackCompleted"));
    rt.complete_json(&token, json!("Approve")).await.unwrap();
    assert_eq!(run.result().await.unwrap(), "o-10 approved");
}

#[tokio::test]
async fn a_completion_while_the_token_is_being_sent_is_kept() {
    let (rt, desk) = runtime();
    let run = rt
        .start(approve, Order::new("instant-1", 10, 60_000))
        .await
        .unwrap();
    assert_eq!(run.result().await.unwrap(), "instant-1 approved");
    assert_eq!(desk.sends.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_token_that_cannot_be_sent_is_the_callbacks_error() {
    let (rt, _desk) = runtime();
    let run = rt
        .start(approve, Order::new("unsendable-1", 10, 60_000))
        .await
        .unwrap();
    let error = match run.result().await {
        Err(RunError::Failed(OrderError::Callback(e))) => e,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        error,
        CallbackError::NotSent {
            message: "no route to the approvers of unsendable-1".into()
        }
    );
    assert_eq!(error.error_name(), CallbackError::NOT_SENT);
}

#[tokio::test]
async fn executions_waiting_on_a_callback_can_be_listed() {
    let (rt, desk) = runtime();
    let waiting = rt
        .start(approve, Order::new("o-11", 10, 60_000))
        .await
        .unwrap();
    let answered = rt
        .start(approve, Order::new("o-12", 10, 60_000))
        .await
        .unwrap();
    let token = desk.token("o-12").await;
    desk.token("o-11").await;
    rt.complete(&token, Decision::Approve).await.unwrap();
    answered.result().await.unwrap();
    let listed = rt
        .list(ExecutionFilter::new().waiting_on_callback())
        .await
        .unwrap();
    let ids: Vec<&ExecutionId> = listed.executions.iter().map(|e| &e.id).collect();
    assert_eq!(ids, [waiting.id()]);
    let record = rt.record(waiting.id()).await.unwrap();
    assert!(matches!(record.waiting, Some(Wait::Callback(_))));
    assert_eq!(
        record.waiting_callback().map(|c| c.id.as_str()),
        desk.token("o-11").await.callback()
    );
    // A cancelled execution waits no more.
    rt.cancel(waiting.id()).await.unwrap();
    assert_eq!(waiting.result().await, Err(RunError::Cancelled));
    let listed = rt
        .list(ExecutionFilter::new().waiting_on_callback())
        .await
        .unwrap();
    assert!(listed.executions.is_empty());
}
