//! Runs every workflow of `tests/ui/pass/control_flow.rs` (yield points inside branches,
//! loops and blocks) under virtual time, and checks its result, its history and its
//! state graph.

#[path = "ui/pass/control_flow.rs"]
mod flows;

use std::sync::atomic::Ordering;

use flows::*;
use workflow::prelude::*;
use workflow::{EventKind, ExecutionId, Status};

fn runtime() -> Runtime {
    Runtime::builder()
        .register(branches)
        .register(matching)
        .register(counting)
        .register(whiles)
        .register(fors)
        .register(labels)
        .register(early)
        .register(shadowing)
        .register(blocks)
        .register(poll_rounds)
        .register(child_loop)
        .register(tail_match)
        .register(unannotated_temporaries)
        .register(assignments)
        .register(skip_ahead)
        .register(ping_all)
        .dependency(Calc::default())
        .build()
        .expect("the dependency is provided")
}

async fn run<W: Workflow>(
    rt: &Runtime,
    w: W,
    input: W::Input,
) -> (Result<W::Output, RunError<W::Error>>, ExecutionId) {
    let exec = rt.start(w, input).await.expect("registered");
    let id = exec.id().clone();
    (exec.result().await, id)
}

/// The history as `Kind state` lines, without the start and end events.
async fn trace(rt: &Runtime, id: &ExecutionId) -> Vec<String> {
    rt.history(id)
        .await
        .unwrap()
        .iter()
        .filter_map(|e| Some(format!("{} {}", e.kind.name(), e.state.as_ref()?)))
        .collect()
}

async fn count(rt: &Runtime, id: &ExecutionId, line: &str) -> usize {
    trace(rt, id).await.iter().filter(|l| *l == line).count()
}

#[tokio::test(start_paused = true)]
async fn branches_take_each_way() {
    let rt = runtime();
    let (out, id) = run(&rt, branches, 3).await;
    assert_eq!(out.unwrap(), 1009);
    assert_eq!(
        trace(&rt, &id).await,
        [
            "TaskScheduled calc.double",
            "TaskSucceeded calc.double",
            "WaitStarted sleep",
            "WaitEnded sleep"
        ]
    );
    let (out, id) = run(&rt, branches, 50).await;
    assert_eq!(out.unwrap(), 1050);
    assert_eq!(
        trace(&rt, &id).await,
        ["WaitStarted sleep #2", "WaitEnded sleep #2"]
    );
    let (out, id) = run(&rt, branches, 200).await;
    assert_eq!(out.unwrap(), 2400);
    assert_eq!(count(&rt, &id, "TaskSucceeded calc.double #2").await, 1);
}

#[tokio::test(start_paused = true)]
async fn if_let_and_match_arms_yield() {
    let rt = runtime();
    assert_eq!(run(&rt, matching, Some(4)).await.0.unwrap(), "some 4 even");
    assert_eq!(run(&rt, matching, Some(5)).await.0.unwrap(), "some 5 odd");
    assert_eq!(run(&rt, matching, Some(0)).await.0.unwrap(), "some 0 zero");
    assert_eq!(run(&rt, matching, None).await.0.unwrap(), "none nothing");
    let (out, id) = run(&rt, matching, Some(13)).await;
    assert_eq!(out.unwrap_err(), RunError::Failed(Oops::Unlucky(13)));
    assert_eq!(count(&rt, &id, "TaskFailed calc.check").await, 1);
}

#[tokio::test(start_paused = true)]
async fn loop_with_continue_and_break_value() {
    let rt = runtime();
    let (out, id) = run(&rt, counting, 5).await;
    assert_eq!(out.unwrap(), 24_010);
    // i = 1, 2, 4, 5 call the service; 3 is skipped by `continue`.
    assert_eq!(count(&rt, &id, "TaskSucceeded calc.double").await, 4);
    assert_eq!(run(&rt, counting, 3).await.0.unwrap(), 14_008);
}

#[tokio::test(start_paused = true)]
async fn while_and_while_let() {
    let rt = runtime();
    let (out, id) = run(&rt, whiles, vec![1, 2, 3]).await;
    assert_eq!(out.unwrap(), [6, 4, 2, 128]);
    assert_eq!(count(&rt, &id, "TaskSucceeded calc.double").await, 3);
    assert_eq!(count(&rt, &id, "TaskSucceeded calc.double #2").await, 7);
}

#[tokio::test(start_paused = true)]
async fn for_over_collections_and_ranges() {
    let rt = runtime();
    let (out, id) = run(&rt, fors, vec![1, 2, 3]).await;
    assert_eq!(out.unwrap(), (12, 14, 12));
    assert_eq!(count(&rt, &id, "WaitEnded sleep").await, 4);
    assert_eq!(count(&rt, &id, "TaskSucceeded calc.double #2").await, 3);
    let (out, _) = run(&rt, fors, vec![]).await;
    assert_eq!(out.unwrap(), (0, 14, 12));
}

#[tokio::test(start_paused = true)]
async fn labelled_break_and_continue_cross_yields() {
    let rt = runtime();
    let (out, _) = run(&rt, labels, 2).await;
    assert_eq!(out.unwrap(), [(1, 1), (1, 2), (2, 1), (2, 2)]);
    assert_eq!(run(&rt, labels, 0).await.0.unwrap(), []);
}

#[tokio::test(start_paused = true)]
async fn early_return_and_question_mark_inside_loops() {
    let rt = runtime();
    assert_eq!(run(&rt, early, vec![1, 2, 0, 5]).await.0.unwrap(), 3);
    assert_eq!(run(&rt, early, vec![1, 2]).await.0.unwrap(), 1_003);
    let (out, id) = run(&rt, early, vec![1, 13, 2]).await;
    assert_eq!(out.unwrap_err(), RunError::Failed(Oops::Unlucky(13)));
    assert_eq!(rt.record(&id).await.unwrap().status, Status::Failed);
}

#[tokio::test(start_paused = true)]
async fn shadowed_names_keep_their_own_types() {
    let rt = runtime();
    assert_eq!(run(&rt, shadowing, 5).await.0.unwrap(), "4");
}

#[tokio::test(start_paused = true)]
async fn blocks_and_value_matches() {
    let rt = runtime();
    assert_eq!(run(&rt, blocks, 3).await.0.unwrap(), 14);
    let (out, id) = run(&rt, blocks, 6).await;
    assert_eq!(out.unwrap(), 13);
    assert_eq!(count(&rt, &id, "WaitEnded sleep").await, 1);
}

#[tokio::test(start_paused = true)]
async fn polls_inside_a_loop() {
    let rt = runtime();
    let (out, id) = run(&rt, poll_rounds, 3).await;
    assert_eq!(out.unwrap(), 3);
    assert_eq!(count(&rt, &id, "PollAttempt poll calc.ready").await, 3);
}

#[tokio::test(start_paused = true)]
async fn children_started_in_loops_get_distinct_ids() {
    let rt = runtime();
    let (out, id) = run(&rt, child_loop, 4).await;
    assert_eq!(out.unwrap(), [0, 1, 1, 4, 9, 9]);
    let tree = rt.tree(&id).await.unwrap();
    let mut ids: Vec<&str> = tree.children.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids.len(), 6);
    ids.dedup();
    assert_eq!(ids.len(), 6, "every child has its own id");
}

#[tokio::test(start_paused = true)]
async fn a_yielding_match_as_the_tail() {
    let rt = runtime();
    assert_eq!(run(&rt, tail_match, 0).await.0.unwrap(), 0);
    assert_eq!(run(&rt, tail_match, 1).await.0.unwrap(), 2);
    let (out, id) = run(&rt, tail_match, 5).await;
    assert_eq!(out.unwrap(), 10);
    assert_eq!(count(&rt, &id, "WaitEnded sleep").await, 1);
}

#[tokio::test(start_paused = true)]
async fn temporaries_are_not_persisted() {
    let rt = runtime();
    assert_eq!(run(&rt, unannotated_temporaries, 3).await.0.unwrap(), 32);
}

#[tokio::test(start_paused = true)]
async fn assignments_from_yields_and_nested_loops() {
    let rt = runtime();
    let (out, id) = run(&rt, assignments, 2).await;
    // acc: 1 → 2 + 2 = 4 → 8 + 4 = 12; seen: 1+4, 121+144, 4+9, 144+169.
    assert_eq!(out.unwrap(), (12, vec![5, 265, 13, 313]));
    assert_eq!(rt.tree(&id).await.unwrap().children.len(), 8);
}

#[tokio::test(start_paused = true)]
async fn labelled_blocks_and_if_without_else() {
    let rt = runtime();
    // n = 3: no wait; d = 6 → wait, out = 7.
    let (out, id) = run(&rt, skip_ahead, 3).await;
    assert_eq!(out.unwrap(), 7);
    assert_eq!(
        trace(&rt, &id)
            .await
            .iter()
            .filter(|l| l.starts_with("WaitEnded"))
            .count(),
        1
    );
    // n = 30: wait, out = 130; d = 260 > 50 → leave the block.
    let (out, id) = run(&rt, skip_ahead, 30).await;
    assert_eq!(out.unwrap(), 260);
    assert_eq!(count(&rt, &id, "WaitEnded sleep").await, 1);
    assert_eq!(count(&rt, &id, "WaitEnded sleep #2").await, 0);
}

#[tokio::test(start_paused = true)]
async fn a_unit_workflow_ending_in_a_loop() {
    let rt = runtime();
    let (out, id) = run(&rt, ping_all, 3).await;
    out.unwrap();
    assert_eq!(count(&rt, &id, "TaskSucceeded calc.double").await, 3);
}

#[tokio::test(start_paused = true)]
async fn every_service_call_is_one_task() {
    let calc = std::sync::Arc::new(Calc::default());
    let rt = Runtime::builder()
        .register(counting)
        .dependency_arc(calc.clone())
        .build()
        .unwrap();
    let (out, id) = run(&rt, counting, 5).await;
    out.unwrap();
    let scheduled = rt
        .history(&id)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.kind == EventKind::TaskScheduled)
        .count();
    assert_eq!(calc.calls.load(Ordering::SeqCst) as usize, scheduled);
}

#[test]
fn edges_lead_from_each_yield_point_to_where_its_code_can_go() {
    let graph = <counting as Workflow>::graph();
    let names: Vec<&str> = graph.names().collect();
    // Only yield points and the ends are states: branches and loops are code.
    assert_eq!(names, ["calc.double", "Succeed"]);
    let targets = |edges: &[workflow::Edge]| -> Vec<&str> {
        edges.iter().map(|e| graph.nodes[e.to].name).collect()
    };
    // From the start the loop cannot end before its task (no `break` comes first);
    // after the task, it runs it again or ends.
    assert_eq!(targets(graph.start), ["calc.double"]);
    assert_eq!(targets(graph.nodes[0].edges), ["calc.double", "Succeed"]);

    let graph = <branches as Workflow>::graph();
    let targets = |edges: &[workflow::Edge]| -> Vec<&str> {
        edges.iter().map(|e| graph.nodes[e.to].name).collect()
    };
    // Each branch of the `if` starts with its own yield point.
    assert_eq!(
        targets(graph.start),
        ["calc.double", "sleep #2", "calc.double #2"]
    );
    assert!(graph.names().all(|n| !n.starts_with("if ")));
}
