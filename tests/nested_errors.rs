//! Children's errors as their parents get them: a `parallel(…)` batch of children with
//! different error types (`tests/ui/pass/parallel_errors.rs`, in either order), and a
//! chain of workflows that all return `NestedError<E>`, where `?` flattens a grandchild's
//! failure. (`tests/asl.rs` runs the same workflows as ASL.)

#[path = "ui/pass/parallel_errors.rs"]
mod flows;

use flows::{count_then_text, counts, matching, text_then_count, top, TextError};
use workflow::prelude::*;

fn runtime() -> Runtime {
    Runtime::builder()
        .register(count_then_text)
        .register(text_then_count)
        .register(counts)
        .register(top)
        .register(matching)
        .build()
        .unwrap()
}

/// The infallible child first or last: the batch's error is the other child's, and its
/// failure comes back typed, naming that child.
#[tokio::test(start_paused = true)]
async fn a_parallel_batch_fails_with_its_fallible_childs_error_in_either_order() {
    let rt = runtime();
    let ok = rt.start(count_then_text, 2).await.unwrap().result().await;
    assert_eq!(ok.unwrap(), "20 #2");
    let ok = rt.start(text_then_count, 3).await.unwrap().result().await;
    assert_eq!(ok.unwrap(), "#3 30 10");
    assert_eq!(
        rt.start(counts, 4).await.unwrap().result().await.unwrap(),
        90
    );

    let a = rt.start(count_then_text, 0).await.unwrap();
    let b = rt.start(text_then_count, 0).await.unwrap();
    let failing = [
        (a.id().clone(), a.result().await, 1),
        (b.id().clone(), b.result().await, 0),
    ];
    for (id, result, index) in failing {
        let err = result.unwrap_err();
        let RunError::Failed(NestedError::Failed { child, error }) = err else {
            panic!("expected the text child's failure, got {err:?}");
        };
        assert_eq!(error, TextError::Zero);
        assert_eq!(child.as_str(), format!("{id}/1.{index}"));
    }
}

/// Three levels, each returning `NestedError<TextError>`: the top gets the grandchild's
/// error, typed and named after the grandchild, and keeps its error name.
#[tokio::test(start_paused = true)]
async fn a_grandchilds_failure_flattens_through_question_mark() {
    let rt = runtime();
    assert_eq!(
        rt.start(top, 2).await.unwrap().result().await.unwrap(),
        "top middle #2"
    );
    let exec = rt.start(top, 0).await.unwrap();
    let id = exec.id().clone();
    let err = exec.result().await.unwrap_err();
    let RunError::Failed(flat) = err else {
        panic!("expected a failure, got {err:?}");
    };
    assert_eq!(
        flat,
        NestedError::Failed {
            child: ExecutionId::from(format!("{id}/1.0/1.0")),
            error: TextError::Zero,
        }
    );
    assert_eq!(flat.error_name(), "Zero");
    // The middle one failed with the grandchild's error wrapped once, as its own.
    let tree = rt.tree(&id).await.unwrap();
    assert_eq!(tree.children[0].status, Status::Failed);
    assert_eq!(tree.children[0].children[0].status, Status::Failed);
}

/// A parent that binds the child's result instead of `?` matches the child's own typed
/// error (here the grandchild's failure, wrapped by the middle workflow).
#[tokio::test(start_paused = true)]
async fn the_direct_childs_typed_error_stays_matchable() {
    let rt = runtime();
    let handled = rt.start(matching, 0).await.unwrap().result().await;
    assert_eq!(handled.unwrap(), "the grandchild had no text");
    let passed = rt.start(matching, 5).await.unwrap().result().await;
    assert_eq!(passed.unwrap(), "middle #5");
}

/// `flatten` keeps what the child's own end was when it did not fail because of its
/// child.
#[test]
fn flattening_keeps_the_childs_own_end() {
    let cancelled: NestedError<NestedError<TextError>> = NestedError::Cancelled {
        child: ExecutionId::from("p/0.1"),
    };
    let flat: NestedError<TextError> = cancelled.into();
    assert_eq!(
        flat,
        NestedError::Cancelled {
            child: ExecutionId::from("p/0.1")
        }
    );
    let inner_timeout: NestedError<NestedError<TextError>> = NestedError::Failed {
        child: ExecutionId::from("p/0.1"),
        error: NestedError::TimedOut {
            child: ExecutionId::from("p/0.1/0.0"),
        },
    };
    let flat = inner_timeout.flatten();
    assert_eq!(flat.child().as_str(), "p/0.1/0.0");
    assert_eq!(flat.error_name(), "Workflow.Timeout");
}
