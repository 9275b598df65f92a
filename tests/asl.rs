//! The emitted ASL: snapshots, both community validators, and differential runs of every
//! hand-written workflow (each workflow × scenario run natively and as ASL; see
//! `support/differential.rs` for how runs are compared). `tests/generated.rs` runs the
//! same differential over the generated corpus.

#[path = "../examples/bench/workflows.rs"]
#[allow(dead_code, unused_imports, clippy::all)]
mod bench;
#[path = "ui/pass/callbacks.rs"]
#[allow(clippy::all)]
mod callbacks;
#[path = "support/differential.rs"]
mod differential;
#[path = "ui/pass/exits.rs"]
#[allow(clippy::all)]
mod exits;
#[path = "ui/pass/control_flow.rs"]
#[allow(clippy::all)]
mod flows;
#[path = "support/localstack.rs"]
mod localstack;
#[path = "ui/pass/nested_control_flow.rs"]
#[allow(clippy::all)]
mod nested_flows;
#[path = "asl/nesting.rs"]
mod nesting;
#[path = "ui/pass/parallel_errors.rs"]
#[allow(clippy::all)]
mod parallel_errors;
#[path = "ui/pass/nesting_pattern.rs"]
#[allow(clippy::all)]
mod pass_nesting;
#[path = "asl/retries.rs"]
mod retries;
#[path = "ui/pass/while_let_rewrite.rs"]
#[allow(clippy::all)]
mod while_let_rewrite;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use differential::{node_tools, Info, Native};
use serde_json::{json, Value};
use workflow::asl::{serve_json_lines, StateMachine, StepClock, StepHandler, TaskCompletion};
use workflow::sfn::{
    ActivityWorker, DeployOptions, RemoteError, RemoteStatus, SfnError, StepFunctions,
};
use workflow::WorkflowError;
use workflow::{CallbackToken, Runtime};

/// Every workflow of these tests: `workflows!(register <builder>)` registers them (and
/// their dependencies), `workflows!(info)` lists what the native side needs of each.
macro_rules! workflows {
    ($mode:ident $([$arg:expr])?) => {
        workflows!(@ $mode [$($arg)?]
            flows::branches, flows::matching, flows::counting, flows::whiles, flows::fors,
            flows::labels, flows::early, flows::shadowing, flows::blocks, flows::poll_rounds,
            flows::child_loop, flows::square, flows::tail_match,
            flows::unannotated_temporaries, flows::assignments, flows::skip_ahead,
            flows::ping_all, nested_flows::grid, nested_flows::layered, nested_flows::drain,
            exits::halve, exits::value_blocks, exits::for_in_while, exits::match_break_value,
            exits::labelled_blocks, exits::continue_after_sleep, exits::let_else_break,
            exits::match_arms, exits::early_exits, exits::outer_variable,
            pass_nesting::unit_workflow, nesting::run_job, nesting::main_flow, pass_nesting::run_job,
            pass_nesting::main_flow, retries::retried, retries::caught, retries::timed,
            retries::polled, retries::looped, retries::fetch_child, retries::nested_retried,
            retries::nested_timed, retries::bounded_child, retries::calls_bounded,
            retries::nested_map, retries::panicky, callbacks::approve_request,
            callbacks::collect_votes, parallel_errors::count_then_text,
            parallel_errors::text_then_count, parallel_errors::counts, parallel_errors::top,
            parallel_errors::matching, parallel_errors::count, parallel_errors::text,
            parallel_errors::middle, while_let_rewrite::drain,
        )
    };
    (@ register [$builder:expr] $($w:path,)*) => {
        $builder
            $(.register($w))*
            .dependency(flows::Calc::default())
            .dependency(nested_flows::Log::default())
            .dependency(exits::Svc::default())
            .dependency(nesting::scripted())
            .dependency(pass_nesting::Svc)
            .dependency(retries::Flaky::default())
    };
    (@ info [] $($w:path,)*) => {
        vec![$(Info::of($w)),*]
    };
}

macro_rules! all_workflows {
    ($builder:expr) => {
        workflows!(register[$builder])
    };
}

/// The native side's view of one of these tests' workflows.
fn info(name: &str) -> Info {
    let all: Vec<Info> = workflows!(info);
    all.into_iter()
        .find(|i| i.name == name)
        .unwrap_or_else(|| panic!("`{name}` is not one of the tests' workflows"))
}

/// Completes the callbacks of `tests/ui/pass/callbacks.rs`: a native token through the
/// runtime it is given once built, a Step Functions token through the local
/// SendTask* endpoint of the ASL harness (`tools/asl/run.cjs`), whose tokens are
/// `{endpoint}#{random}`, with the request [`TaskCompletion`] describes.
///
/// With a Step Functions connection (the LocalStack test), a token that is not the local
/// harness's is sent to it.
#[derive(Default)]
struct Completer {
    runtime: Arc<OnceLock<Runtime>>,
    sfn: Option<StepFunctions>,
}

impl callbacks::Answer for Completer {
    fn send(&self, token: CallbackToken, reply: callbacks::Reply) -> callbacks::AnswerFuture<'_> {
        Box::pin(async move {
            if let Some(task_token) = token.task_token() {
                let done = match reply {
                    callbacks::Reply::Complete(value) => TaskCompletion::success(&token, &value),
                    callbacks::Reply::Fail { error, cause } => {
                        TaskCompletion::failure(&token, &error, &cause)
                    }
                }
                .map_err(|e| e.to_string())?;
                if let Some(sfn) = &self.sfn {
                    return sfn.send(&done).await.map_err(|e| e.to_string());
                }
                let (endpoint, _) = task_token
                    .split_once('#')
                    .ok_or("not a token of the local harness")?;
                let answer = reqwest::Client::new()
                    .post(endpoint)
                    .header("X-Amz-Target", done.target())
                    .header("Content-Type", "application/x-amz-json-1.0")
                    .json(done.body())
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                return match answer.status().is_success() {
                    true => Ok(()),
                    false => Err(answer.text().await.unwrap_or_default()),
                };
            }
            let runtime = self.runtime.get().ok_or("the completer has no runtime")?;
            match reply {
                callbacks::Reply::Complete(value) => runtime.complete_json(&token, value).await,
                callbacks::Reply::Fail { error, cause } => {
                    runtime.fail(&token, &error, &cause).await
                }
            }
            .map_err(|e| e.to_string())
        })
    }
}

/// The handler of the differential runs: signed, as children take their native ids
/// (`{parent}/{batch}.{index}`) only with a signed ticket.
fn handler() -> StepHandler {
    all_workflows!(StepHandler::builder())
        .dependency(callbacks::Approver::new(Completer::default()))
        .clock(StepClock::Virtual)
        .signing_key(differential::TEST_KEY)
        .build()
        .expect("every dependency and child is registered")
}

/// The same handler without a signing key, whose documents can be changed by hand.
fn unsigned_handler() -> StepHandler {
    all_workflows!(StepHandler::builder())
        .dependency(callbacks::Approver::new(Completer::default()))
        .clock(StepClock::Virtual)
        .build()
        .expect("every dependency and child is registered")
}

fn machines() -> Vec<StateMachine> {
    handler().state_machines()
}

#[test]
fn asl_snapshots() {
    for m in machines() {
        insta::assert_snapshot!(m.workflow(), m.to_pretty());
    }
}

#[test]
fn state_names_are_unique_short_and_tokens_name_nodes() {
    for m in machines() {
        let mut names = Vec::new();
        collect_names(&m.definition()["States"], &mut names);
        let unique: std::collections::HashSet<&String> = names.iter().collect();
        assert_eq!(
            unique.len(),
            names.len(),
            "{}: duplicate state names",
            m.workflow()
        );
        for n in &names {
            assert!(
                n.chars().count() <= 80,
                "{}: `{n}` is too long",
                m.workflow()
            );
        }
        for (state, token) in m.tokens() {
            assert!(
                names.contains(state),
                "{}: token of a missing state",
                m.workflow()
            );
            assert!(!token.is_empty());
        }
    }
}

fn collect_names(states: &Value, out: &mut Vec<String>) {
    let Some(states) = states.as_object() else {
        return;
    };
    for (name, state) in states {
        out.push(name.clone());
        for b in state["Branches"].as_array().into_iter().flatten() {
            collect_names(&b["States"], out);
        }
        collect_names(&state["ItemProcessor"]["States"], out);
    }
}

#[test]
fn bad_requests_get_catchable_errors() {
    let h = handler();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let name = |req: Value| rt.block_on(h.handle(req)).unwrap_err().name().to_owned();
    assert_eq!(name(json!({"nope": 1})), "Workflow.InvalidRequest");
    assert_eq!(
        name(json!({"workflow": "Missing", "at": "Start"})),
        "Workflow.UnknownWorkflow"
    );
    assert_eq!(
        name(json!({"workflow": "branches", "at": "No such state"})),
        "Workflow.InvalidRequest"
    );
    assert_eq!(
        name(
            json!({"workflow": "branches", "at": "Start", "execution": "e", "document": {"input": "x"}})
        ),
        "Workflow.InvalidInput"
    );
    // Without `$$.Execution.Id` there is no execution id.
    assert_eq!(
        name(json!({"workflow": "shadowing", "at": "Start", "document": {"input": 2}})),
        "Workflow.InvalidRequest"
    );
    let start =
        json!({"workflow": "shadowing", "at": "Start", "execution": "e", "document": {"input": 2}});
    let doc = rt.block_on(h.handle(start.clone())).unwrap();
    assert_eq!(doc["next"], "calc.double");
    let mut bad = doc.clone();
    bad["state"] = json!({"NoSuchVariant": {}});
    let req = |d: Value| json!({"workflow": "shadowing", "at": "calc.double", "execution": "e", "document": d});
    assert_eq!(name(req(bad)), "Workflow.InvalidState");
    // A document of another definition of the workflow (signed by the same key, or
    // unsigned as here) is incompatible, not forged.
    let unsigned = unsigned_handler();
    let mut old = rt.block_on(unsigned.handle(start)).unwrap();
    old["fingerprint"] = json!("1");
    assert_eq!(
        rt.block_on(unsigned.handle(req(old))).unwrap_err().name(),
        "Workflow.IncompatibleState"
    );
    // And the JSON-lines process answers garbage with an error line, not a crash.
    let mut out = Vec::new();
    serve_json_lines(
        &h,
        &b"not json\n\n{\"id\": 7, \"workflow\": \"x\", \"at\": \"Start\"}\n"[..],
        &mut out,
    )
    .unwrap();
    let lines: Vec<Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["error"]["name"], "Workflow.InvalidRequest");
    assert_eq!(lines[1]["id"], 7);
    assert_eq!(lines[1]["error"]["name"], "Workflow.UnknownWorkflow");
}

#[test]
fn a_retried_batch_is_answered_as_the_next_batch_after_a_wait() {
    let h = handler();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let step = |at: &str, document: Value| {
        let req =
            json!({"workflow": "nested_retried", "at": at, "execution": "e", "document": document});
        rt.block_on(h.handle(req)).unwrap()
    };
    let doc = step("Start", json!({"input": "fail9:y"}));
    assert_eq!(doc["next"], "fetch_child");
    assert_eq!(doc["children"][0]["id"], "e/1.0");
    // The child failed (as `.sync:2` reports it): the batch runs again as batch 2.
    let failed = |mut doc: Value| {
        let id = doc["children"][0]["id"].clone();
        doc["children_error"] = json!({
            "Error": "States.TaskFailed",
            "Cause": json!({"Status": "FAILED", "Error": "Unavailable", "Cause": "\"Unavailable\"", "Input": {"id": id}}).to_string(),
        });
        doc
    };
    let again = step("fetch_child: resume", failed(doc.clone()));
    assert_eq!(again["next"], "fetch_child: retry");
    assert_eq!(
        again["state"], doc["state"],
        "the state that waited for the batch"
    );
    assert_eq!(again["children"][0]["id"], "e/2.0");
    assert_eq!(again["children"][0]["input"], doc["children"][0]["input"]);
    assert_eq!(
        (again["batches"].clone(), again["retries"].clone()),
        (json!(2), json!(1))
    );
    assert_eq!(again["wait_seconds"], 1);
    // The attempt count comes back with the document: the second retry waits 2 s, and
    // after it the policy (`max_attempts = 2`) gives up.
    let third = step("fetch_child: resume", failed(again));
    assert_eq!(
        (
            third["children"][0]["id"].clone(),
            third["retries"].clone(),
            third["wait_seconds"].clone()
        ),
        (json!("e/3.0"), json!(2), json!(2))
    );
    let end = step("fetch_child: resume", failed(third));
    assert_eq!(end["next"], "Fail");
    assert_eq!(end["error"]["name"], "Unavailable");
    // A child past its own execution timeout is described as `TIMED_OUT`.
    let doc = step("Start", json!({"input": "ok:y"}));
    let mut timed_out = doc.clone();
    timed_out["children_error"] = json!({
        "Error": "States.TaskFailed",
        "Cause": json!({"Status": "TIMED_OUT", "Input": {"id": "e/1.0"}}).to_string(),
    });
    let again = step("fetch_child: resume", timed_out);
    assert_eq!(
        again["next"], "fetch_child: retry",
        "`Workflow.Timeout` is retried"
    );
}

#[test]
fn retried_calls_answer_errors_and_caught_errors_reach_the_code() {
    let h = handler();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let step = |workflow: &str, at: &str, document: Value| {
        rt.block_on(h.handle(
            json!({"workflow": workflow, "at": at, "execution": "e", "document": document}),
        ))
    };
    // The step before a task with a policy stops before its call.
    let doc = step("caught", "Start", json!({"input": "fail9:z"})).unwrap();
    assert_eq!(doc["next"], "svc.fetch");
    // The call fails with an error the policy retries: an error of that name, whose
    // message (a `Catch`'s `Cause`) is the error as JSON.
    let e = step("caught", "svc.fetch", doc.clone()).unwrap_err();
    assert_eq!(e.name(), "Unavailable");
    assert_eq!(e.to_string(), "\"Unavailable\"");
    // Caught as AWS Lambda reports a function error: the code gets it, no call is made.
    let mut caught = doc.clone();
    caught["caught"] = json!({
        "Error": "Unavailable",
        "Cause": json!({"errorType": "Unavailable", "errorMessage": "\"Unavailable\""}).to_string(),
    });
    let end = step("caught", "svc.fetch: caught", caught).unwrap();
    assert_eq!(end["next"], "Succeed");
    assert_eq!(end["output"], "default after unavailable");
    // A hung invocation's `States.Timeout` is the call's own timeout error.
    let doc = step("timed", "Start", json!({"input": "ok:z"})).unwrap();
    assert_eq!(doc["next"], "svc.fetch");
    let mut caught = doc.clone();
    caught["caught"] = json!({"Error": "States.Timeout", "Cause": "Task timed out"});
    let end = step("timed", "svc.fetch: caught", caught).unwrap();
    assert_eq!(end["next"], "Fail");
    assert_eq!(end["error"]["name"], "Workflow.Timeout");
    // A `caught` state without the caught error is a bad request.
    let e = step("timed", "svc.fetch: caught", doc).unwrap_err();
    assert_eq!(e.name(), "Workflow.InvalidState");
}

#[test]
fn a_callback_sends_its_task_token_and_resumes_with_what_step_functions_adds() {
    let h = handler();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let step = |at: &str, document: Value, token: Option<&str>| {
        let mut req = json!({"workflow": "approve_request", "at": at, "execution": "e", "document": document});
        if let Some(token) = token {
            req["token"] = json!(token);
        }
        rt.block_on(h.handle(req))
    };
    let send = "callback approver.ask";
    let resume = "callback approver.ask: resume";
    // The step before the callback carries its limits, for the Task's …SecondsPath.
    let doc = step(
        "Start",
        json!({"input": {"id": "silent-9", "amount": 500}}),
        None,
    )
    .unwrap();
    assert_eq!(doc["next"], send);
    assert_eq!(
        (
            doc["callback"]["timeout_seconds"].clone(),
            doc["callback"]["heartbeat_seconds"].clone()
        ),
        (json!(7200), json!(600))
    );
    // The Task's Lambda sends `$$.Task.Token` (here to nobody: a silent approver).
    let sent = step(send, doc.clone(), Some("AAAA-task-token")).unwrap();
    assert_eq!(sent["sent"], true);
    let e = step(send, doc.clone(), None).unwrap_err();
    assert_eq!(e.name(), "Workflow.InvalidRequest");
    // A send that fails is an error of its own name, caught by the Task.
    let unsendable = step(
        "Start",
        json!({"input": {"id": "unsendable-9", "amount": 500}}),
        None,
    )
    .unwrap();
    let e = step(send, unsendable, Some("AAAA-task-token")).unwrap_err();
    assert_eq!(e.name(), "Workflow.CallbackNotSent");
    assert_eq!(e.to_string(), "\"no approver for unsendable-9\"");
    // The resume Lambda: the value of SendTaskSuccess, or what the Task caught.
    let with = |field: &str, value: Value| {
        let mut d = doc.clone();
        d[field] = value;
        step(resume, d, None)
    };
    let end = with("callback_result", json!("Approve")).unwrap();
    assert_eq!(
        (end["next"].clone(), end["output"].clone()),
        (json!("Succeed"), json!("silent-9 approved"))
    );
    let end = with("callback_result", json!({"Reject": {"reason": "no"}})).unwrap();
    assert_eq!(end["error"]["name"], "Rejected");
    let failed = |error: &str, cause: &str| {
        with("callback_error", json!({"Error": error, "Cause": cause})).unwrap()["error"].clone()
    };
    let timed_out = failed("States.Timeout", "");
    assert_eq!(timed_out["name"], "Workflow.CallbackTimedOut");
    let cause: Value = serde_json::from_str(timed_out["cause"].as_str().unwrap()).unwrap();
    assert_eq!(
        cause,
        json!({"Callback": {"TimedOut": {"timeout": {"secs": 7200, "nanos": 0}}}})
    );
    assert_eq!(
        failed("States.HeartbeatTimeout", "")["name"],
        "Workflow.CallbackHeartbeatTimedOut"
    );
    let withdrawn = failed("Approval.Withdrawn", "changed their mind");
    assert_eq!(withdrawn["name"], "Approval.Withdrawn");
    assert!(withdrawn["cause"]
        .as_str()
        .unwrap()
        .contains("changed their mind"));
    // The send's Lambda panicked: the execution's fault, as natively.
    let e = with(
        "callback_error",
        json!({"Error": "Workflow.Panic", "Cause": "boom"}),
    )
    .unwrap_err();
    assert_eq!(e.name(), "Workflow.Panic");
    // Step Functions cannot check the value's type: one that does not decode faults.
    let e = with("callback_result", json!(42)).unwrap_err();
    assert_eq!(e.name(), "Workflow.Fault");
    assert!(e.to_string().contains("Decision"), "{e}");
    let e = step(resume, doc.clone(), None).unwrap_err();
    assert_eq!(e.name(), "Workflow.InvalidState");
    // The limits are signed with the rest of the answer.
    let mut changed = doc.clone();
    changed["callback"]["timeout_seconds"] = json!(1);
    changed["callback_result"] = json!("Approve");
    let e = step(resume, changed, None).unwrap_err();
    assert_eq!(e.name(), "Workflow.InvalidState");
}

/// Every `#[workflow]` of `tests/ui/pass`, `tests/asl` and the examples is in the
/// differential runs, with at least one scenario: a workflow added there without one
/// fails here. (The benchmark's fan-out workflows call their own copy of the nesting
/// example's child, under the same name as the one registered here, so they run in a
/// differential of their own, [`bench_workflows_behave_like_native_runs`].)
#[test]
fn every_pass_and_example_workflow_takes_part_in_the_differential() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<PathBuf> = ["tests/ui/pass", "tests/asl"]
        .iter()
        .flat_map(|dir| std::fs::read_dir(root.join(dir)).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    files.push(root.join("examples/nesting/workflows.rs"));
    files.push(root.join("examples/bench/workflows.rs"));
    let mut registered = handler().workflows();
    registered.extend(bench_handler().workflows());
    let mut scenarios = scenarios();
    scenarios.extend(bench_scenarios());
    let mut missing = Vec::new();
    let mut found = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for name in workflow_names(&text) {
            found += 1;
            if !registered.contains(&name.as_str()) {
                missing.push(format!("{name} ({}): not registered", file.display()));
            } else if !scenarios.iter().any(|(w, _)| *w == name) {
                missing.push(format!("{name} ({}): no scenario", file.display()));
            }
        }
    }
    assert!(
        found >= 40,
        "only {found} workflows found: is the scan broken?"
    );
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

/// The published names of the `#[workflow]`s in a source file: `name = "…"` of the
/// attribute, else the function's name.
fn workflow_names(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("#[workflow") {
        rest = &rest[at + "#[workflow".len()..];
        if !rest.starts_with(']') && !rest.starts_with('(') {
            continue; // `#[workflow_error(…)]`
        }
        let Some(func) = rest.find("async fn ") else {
            break;
        };
        let attr = &rest[..rest.find(']').unwrap_or(0)];
        let named = attr.find("name = \"").map(|i| {
            let n = &attr[i + "name = \"".len()..];
            n[..n.find('"').unwrap()].to_owned()
        });
        let ident: String = rest[func + "async fn ".len()..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        out.push(named.unwrap_or(ident));
    }
    out
}

// --- Node -------------------------------------------------------------------------------

#[test]
fn every_definition_passes_both_validators() {
    let Some(tools) = node_tools() else { return };
    let n = differential::validate(tools, &handler());
    eprintln!("{n} definitions pass asl-validator and statelint with zero errors");
}

// --- Differential runs -------------------------------------------------------------------

/// Every workflow × scenario: the workflow's name and its input.
fn scenarios() -> Vec<(&'static str, Value)> {
    let job = |p1: &str, p2: u32| json!({"parameter1": p1, "parameter2": p2});
    let batch = |label: &str, parallel: Vec<Value>| json!({"label": label, "steps": [1, 2, 1], "parallel": parallel});
    vec![
        // The nesting example.
        ("NestingPatternAnotherStateMachine", job("a-ok", 3)),
        ("NestingPatternAnotherStateMachine", job("a-slow", 1)),
        ("NestingPatternAnotherStateMachine", job("a-flaky", 1)),
        ("NestingPatternAnotherStateMachine", job("a-reject", 1)),
        ("NestingPatternAnotherStateMachine", job("a-broken", 2)),
        (
            "NestingPatternMainStateMachine",
            batch("m-ok", vec![job("p-ok", 1), job("q-ok", 2), job("r-ok", 1)]),
        ),
        (
            "NestingPatternMainStateMachine",
            batch("m-reject", vec![job("p2-ok", 1)]),
        ),
        (
            "NestingPatternMainStateMachine",
            batch(
                "m-ff",
                vec![job("p3-ok", 1), job("p3-flaky", 1), job("q3-ok", 2)],
            ),
        ),
        ("NestingPatternMainStateMachine", batch("m-empty", vec![])),
        (
            "NestingPatternMainStateMachine",
            batch(
                "m-big",
                (1..=5).map(|i| job(&format!("b{i}-ok"), 1)).collect(),
            ),
        ), // waits for an approval that does not come
        // The pass workflows.
        ("Nested", json!(5)),
        ("Main", json!([[1, 2, 3], "x"])),
        ("branches", json!(3)),
        ("branches", json!(50)),
        ("branches", json!(200)),
        ("matching", json!(4)),
        ("matching", json!(3)),
        ("matching", json!(0)),
        ("matching", json!(null)),
        ("matching", json!(13)),
        ("counting", json!(5)),
        ("counting", json!(1)),
        ("whiles", json!([1, 2, 3])),
        ("whiles", json!([])),
        ("fors", json!([1, 2])),
        ("fors", json!([])),
        ("labels", json!(2)),
        ("early", json!([1, 2, 0, 5])),
        ("early", json!([1, 2])),
        ("early", json!([13])),
        ("shadowing", json!(7)),
        ("blocks", json!(1)),
        ("blocks", json!(6)),
        ("poll_rounds", json!(2)),
        ("poll_rounds", json!(0)),
        ("child_loop", json!(3)),
        ("child_loop", json!(0)),
        ("square", json!(4)),
        ("tail_match", json!(0)),
        ("tail_match", json!(1)),
        ("tail_match", json!(5)),
        ("unannotated_temporaries", json!(4)),
        ("assignments", json!(2)),
        ("skip_ahead", json!(3)),
        ("skip_ahead", json!(10)),
        ("skip_ahead", json!(30)),
        ("ping_all", json!(3)),
        ("ping_all", json!(0)),
        // Nested control flow: `grid` takes `continue 'outer` at 107 (row 1) and 203
        // (row 2), and leaves with `break 'outer v` in the last row.
        ("grid", json!([1, 3])),
        ("grid", json!([2, 3])),
        ("grid", json!([2, 5])),
        ("grid", json!([3, 4])),
        ("layered", json!([[5, null, 12, 30], true])),
        ("layered", json!([[], true])),
        ("layered", json!([[1], false])),
        ("drain", json!([3, 8, 5])),
        ("drain", json!([])),
        // Children with different error types, and a chain of `NestedError`s
        // (`ui/pass/parallel_errors.rs`): each child failing, in either order.
        ("ParallelCount", json!(1)),
        ("ParallelText", json!(1)),
        ("ParallelText", json!(0)),
        ("ParallelCountThenText", json!(2)),
        ("ParallelCountThenText", json!(0)),
        ("ParallelTextThenCount", json!(3)),
        ("ParallelTextThenCount", json!(0)),
        ("ParallelCounts", json!(4)),
        ("ChainMiddle", json!(1)),
        ("ChainMiddle", json!(0)),
        ("ChainTop", json!(2)),
        ("ChainTop", json!(0)),
        ("ChainMatch", json!(0)),
        ("ChainMatch", json!(5)),
        // The rewrite of a `while let` whose condition would yield.
        ("WhileLetRewrite", json!([1, 2, 3])),
        ("WhileLetRewrite", json!([])),
        // Every way out of the code after a yield point (`ui/pass/exits.rs`).
        ("halve", json!(9)),
        ("value_blocks", json!(1)), // no break: both blocks run their yields
        ("value_blocks", json!(4)), // `break 'b` after the yield, `break 'c` before
        ("value_blocks", json!(3)),
        ("for_in_while", json!([2, [1, 2, 3]])),
        ("for_in_while", json!([3, [1, 5, 2]])), // `continue 'rounds` at 105, 205, 305
        ("for_in_while", json!([2, [4, 7]])),    // `break 'rounds` at 107
        ("for_in_while", json!([0, [1]])),
        ("match_break_value", json!(5)),
        ("match_break_value", json!(0)),
        ("labelled_blocks", json!(2)), // `break 'inner` before its wait
        ("labelled_blocks", json!(3)), // `break 'outer` after the wait
        ("labelled_blocks", json!(5)), // through both blocks
        ("continue_after_sleep", json!(2)),
        ("continue_after_sleep", json!(0)),
        ("let_else_break", json!([2, 0, 1])),
        ("let_else_break", json!([])),
        ("match_arms", json!([3, 4, 5, 22, 6])), // continue, fall through, break at 22
        ("match_arms", json!([2, 6, 8])),
        ("early_exits", json!([1, 2, 3])),
        ("early_exits", json!([1, 0, 3])), // `return Ok` from the loop
        ("early_exits", json!([1, 200])),  // `return Err`
        ("early_exits", json!([1, 13])),   // `?` in the loop
        ("early_exits", json!([6, 7])),    // `?` after the loop (13)
        ("outer_variable", json!(2)),
        ("outer_variable", json!(0)),
        ("unit_workflow", json!(null)),
        // Retry policies and timeouts (see `asl/retries.rs` for the scripts).
        ("retried", json!("fail2:a")), // fails twice, then answers
        ("retried", json!("fail9:b")), // retries exhausted, `?` → Fail `Unavailable`
        ("retried", json!("bad:c")),   // not retryable: no retry, Fail `BadRequest`
        ("caught", json!("fail9:d")),  // retries exhausted, the `match` catches it
        ("caught", json!("fail1:e")),  // one retry
        ("caught", json!("bad:f")),    // not retried, caught at once
        ("timed", json!("slow1:g")),   // times out once, then answers
        ("timed", json!("slow5:h")),   // times out twice: Fail `Workflow.Timeout`
        ("polled", json!("fail2:i")),  // a poll attempt retried twice, then polled on
        ("polled", json!("fail9:j")),  // exhausted: the poll counts it, too many errors
        ("polled", json!("ok:k")),     // a poll with a policy that never fails
        ("looped", json!(["fail1:l1", "ok:l2", "fail1:l3"])), // the default policy in a loop
        ("looped", json!(["ok:l4", "fail2:l5"])), // exhausted inside the loop
        ("looped", json!([])),
        // Nested calls with policies, and execution timeouts.
        ("nested_retried", json!("fail1:m")), // the child fails once: a new batch answers
        ("nested_retried", json!("fail9:n")), // exhausted: `?` → Fail `Unavailable`
        ("nested_retried", json!("slow1:o")), // the batch times out once, then answers
        ("nested_timed", json!("slow1:p")),   // times out: Fail `Workflow.Timeout`
        ("nested_timed", json!("ok:q")),
        ("bounded_child", json!("slow1:r")), // the execution times out
        ("bounded_child", json!("ok:s")),
        ("calls_bounded", json!("slow1:t")), // the child's execution timeout, in the parent
        ("calls_bounded", json!("ok:u")),
        ("fetch_child", json!("ok:y1")),
        ("fetch_child", json!("bad:y2")),
        ("nested_map", json!(["ok:v1", "ok:v2", "ok:v3"])),
        ("nested_map", json!(["fail1:w"])), // a batch of one, run again
        ("nested_map", json!(["fail9:x"])), // exhausted: Fail `Unavailable`
        // Panics: faults named `Workflow.Panic`, retried only by a policy that names it.
        ("panicky", json!("panic1:z1")), // panics once, retried, answers
        ("panicky", json!("panic2:z2")), // panics twice: the execution faults
        ("retried", json!("panic1:z3")), // a policy that does not name it: faults
        ("caught", json!("panic1:z4")),  // a policy for every error: faults, not caught
        ("fetch_child", json!("panic1:z5")), // no policy: faults
        ("nested_timed", json!("panic1:z6")), // the child faults: the parent fails
        // Callbacks (`ui/pass/callbacks.rs`): completed, failed, silent (the heartbeat or
        // the timeout ends it), not sent; in a loop, bound without `?`.
        ("approve_request", json!({"id": "small-1", "amount": 50})),
        ("approve_request", json!({"id": "approve-1", "amount": 500})),
        ("approve_request", json!({"id": "reject-1", "amount": 500})),
        ("approve_request", json!({"id": "fail-1", "amount": 500})),
        ("approve_request", json!({"id": "silent-1", "amount": 500})),
        (
            "approve_request",
            json!({"id": "unsendable-1", "amount": 500}),
        ),
        (
            "collect_votes",
            json!([
                {"id": "yes-a", "amount": 1}, {"id": "no-b", "amount": 1},
                {"id": "silent-c", "amount": 1}, {"id": "fail-d", "amount": 1},
                {"id": "yes-e", "amount": 1}
            ]),
        ),
        ("collect_votes", json!([])), // the closing acknowledgement times out
        (
            "collect_votes",
            json!([{"id": "unsendable-f", "amount": 1}]),
        ),
    ]
}

fn run_natively(runs: &[(&'static str, Value)]) -> Vec<Native> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let completer = Completer::default();
        let slot = Arc::clone(&completer.runtime);
        let runtime: Runtime = all_workflows!(Runtime::builder())
            .dependency(callbacks::Approver::new(completer))
            .build()
            .unwrap();
        slot.set(runtime.clone()).ok();
        let mut out = Vec::new();
        for (name, input) in runs {
            out.push(differential::run_natively(&runtime, &info(name), input).await);
        }
        out
    })
}

#[test]
fn asl_runs_behave_like_native_runs() {
    let Some(tools) = node_tools() else { return };
    let runs = scenarios();
    let native = run_natively(&runs);
    let differences = differential::compare(tools, &handler(), &runs, &native, |_| {});
    differential::assert_none(&differences, runs.len());
    eprintln!(
        "{} workflow × scenario pairs: same outcome and same state sequence natively and as ASL \
         (aws-local-stepfunctions has no `.waitForTaskToken`: tools/asl/run.cjs implements the \
         callbacks' Tasks, `$$.Task.Token` and SendTask* from the ASL spec)",
        runs.len()
    );
}

/// The longest a scenario may wait (its native run's virtual time) to run on LocalStack,
/// where waits are real.
const LOCALSTACK_MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The shortest deadline Step Functions itself may enforce in a scenario that runs on
/// LocalStack: an execution timeout or a child's `#[timeout]` of 1 s, which the native
/// run meets in virtual time, is missed on a loaded engine where scheduling a state
/// alone can take a second. (A task's timeout is the step handler's, and takes part.)
const LOCALSTACK_MIN_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// The shortest deadline the engine enforces in workflow `name` or a workflow it calls:
/// its execution timeout, and the timeouts of its `call_nested!`s.
fn engine_deadline(
    name: &str,
    graphs: &[&'static workflow::StateGraph],
) -> Option<std::time::Duration> {
    let mut todo = vec![name];
    let mut seen = std::collections::HashSet::new();
    let mut shortest: Option<std::time::Duration> = None;
    let mut note = |d: std::time::Duration| shortest = Some(shortest.map_or(d, |s| s.min(d)));
    while let Some(name) = todo.pop() {
        if !seen.insert(name) {
            continue;
        }
        let graph = graphs.iter().find(|g| g.workflow == name).unwrap();
        if let Some(timeout) = graph.timeout {
            note(timeout());
        }
        for node in graph.nodes {
            let children: Vec<&'static str> = match &node.kind {
                workflow::NodeKind::Child { workflow }
                | workflow::NodeKind::Map { workflow, .. } => vec![*workflow],
                workflow::NodeKind::Parallel { workflows } => workflows.to_vec(),
                _ => continue,
            };
            if let Some(timeout) = node.policy().timeout {
                note(timeout);
            }
            todo.extend(children);
        }
    }
    shortest
}

/// The differential on LocalStack, an engine that implements Step Functions' service
/// API: every workflow deployed (twice: the second deploy updates in place) with its
/// Task states on an activity, every scenario that waits at most [`LOCALSTACK_MAX_WAIT`]
/// started at once, their steps run by this process's activity worker, each compared
/// with its native run (outcome, and the states entered, from `GetExecutionHistory`).
///
/// Top-level execution ids are ARNs on Step Functions, where the native runs have ids
/// of their own; an ARN in an ASL run's result is read as its native run's id (children's
/// ids derive from their parent's).
///
/// LocalStack's deviations from Step Functions that this test meets (localstack-core
/// 2026.3.0):
///
/// 1. `GetActivityTask`, `SendTaskSuccess`, `SendTaskFailure` and `SendTaskHeartbeat`
///    fail with 500 while another execution is starting, and `GetActivityTask` loses the
///    task it dequeued: `tools/localstack/serve.py` fixes the race (its docs have the
///    reproduction); the worker also retries a 5xx answer. Two more races lose a task
///    there, also fixed by `serve.py`: an answer that comes before the Task's state
///    waits for it (a step that fails at once) is never read, so the state times out
///    after `HeartbeatSeconds` and the step runs again; and a task is queued before its
///    token is known. A difference's message says when a task timed out and ran again.
/// 2. `startExecution.sync:2` calls STS: without `SERVICES=…,sts` every child Task fails
///    with `Service 'sts' is not enabled` (a `ChildFaulted` in the parent). Reproduction:
///    `SERVICES=stepfunctions`, any state machine with a `.sync:2` Task.
/// 3. An activity Task's heartbeat timeout fails the state with `States.Timeout`, not
///    `States.HeartbeatTimeout` (`HeartbeatTimeoutError` is a `TimeoutError`, which its
///    activity state maps to `States.Timeout`), so the step Tasks' retrier of a lost
///    worker does not match there. Reproduction: a Task on an activity with
///    `HeartbeatSeconds: 5` whose worker takes the task and never answers; the history
///    ends with `ActivityTimedOut` / `States.Timeout`. Workaround: the retrier of a
///    lost worker names `States.Timeout` too (a step Task on an activity has no
///    `TimeoutSeconds`, so nothing else raises it there).
/// 4. A Parallel state whose branch fails with a `States.` error (`States.TaskFailed`
///    from a failed child's `startExecution.sync:2`, `States.Timeout`) fails the
///    execution with `States.Runtime` ("Custom Error Names MUST NOT begin with the
///    prefix 'States.'"), which no `Catch` catches: its Parallel re-raises the branch's
///    error as a custom error name. Reproduction: a Parallel with one branch, a
///    `.sync:2` Task on a state machine that fails, and a `Catch` on `States.ALL`: the
///    execution fails with `States.Runtime`. The scenarios in which a `parallel(…)`
///    child fails (natively, at any depth) do not run here (the issue saw the same
///    with a Map without a `Catch`; our Maps, which always catch, are right).
/// 5. Under load, scheduling one state can take more than a second, so an execution
///    timeout or a child's `#[timeout]` of 1 s that the native run meets fails there: the
///    scenarios with an engine deadline under [`LOCALSTACK_MIN_DEADLINE`] do not run here
///    (they run on aws-local-stepfunctions above). Not a deviation from the spec, a
///    matter of speed; the same holds on AWS.
#[test]
fn asl_runs_on_localstack_behave_like_native_runs() {
    let all = scenarios();
    let native = run_natively(&all);
    let graphs = handler().graphs();
    let total = all.len();
    let (runs, native): (Vec<_>, Vec<_>) = all
        .into_iter()
        .zip(native)
        .filter(|((w, _), n)| {
            // Deviations 4 and 5 in the docs above.
            n.elapsed <= LOCALSTACK_MAX_WAIT
                && !n.parallel_failure
                && engine_deadline(w, &graphs).is_none_or(|d| d >= LOCALSTACK_MIN_DEADLINE)
        })
        .unzip();
    let started = std::time::Instant::now();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let asl = rt.block_on(async {
        let stack = localstack::LocalStack::start().await?;
        let sfn = StepFunctions::connect(Some(stack.url()), Some("us-east-1")).await;
        let handler = Arc::new(
            all_workflows!(StepHandler::builder())
                .dependency(callbacks::Approver::new(Completer {
                    sfn: Some(sfn.clone()),
                    ..Completer::default()
                }))
                .clock(StepClock::Virtual)
                .signing_key(differential::TEST_KEY)
                .build()
                .unwrap(),
        );
        let options = DeployOptions::new("arn:aws:iam::000000000000:role/workflows");
        let first = sfn.deploy(handler.graphs(), &options).await.unwrap();
        assert_eq!(first.created().len(), handler.workflows().len());
        let deployment = sfn.deploy(handler.graphs(), &options).await.unwrap();
        assert!(
            deployment.created().is_empty(),
            "a second deploy updates in place"
        );
        assert_eq!(first.state_machines(), deployment.state_machines());
        assert_eq!(first.activity_arn(), deployment.activity_arn());
        let worker = ActivityWorker::new(&sfn, deployment.activity_arn(), Arc::clone(&handler))
            .concurrency(32)
            .spawn();

        // A workflow's scenarios one after another, in their order (some share the
        // scripted services' keys, whose call counts the outputs show, as natively);
        // the workflows all at once.
        let mut chains: Vec<(&'static str, Vec<usize>)> = Vec::new();
        for (i, (workflow, _)) in runs.iter().enumerate() {
            match chains.iter_mut().find(|(w, _)| w == workflow) {
                Some((_, chain)) => chain.push(i),
                None => chains.push((workflow, vec![i])),
            }
        }
        let mut executions = tokio::task::JoinSet::new();
        for (workflow, chain) in chains {
            let sfn = sfn.clone();
            let arn = deployment.state_machine_arn(workflow).unwrap().to_owned();
            let chain: Vec<(usize, Value, String)> = chain
                .into_iter()
                .map(|i| (i, runs[i].1.clone(), native[i].id.clone()))
                .collect();
            executions.spawn(async move {
                let began = std::time::Instant::now();
                let mut out = Vec::new();
                for (i, input, native_id) in chain {
                    let execution = sfn.start_json(&arn, input).await.unwrap();
                    let d = sfn.wait(&execution).await.unwrap();
                    let history = sfn.history(&execution).await.unwrap();
                    let states: Vec<&str> = history
                        .iter()
                        .filter_map(|e| e.state_entered_event_details())
                        .map(|d| d.name())
                        .collect();
                    // A task Step Functions gave up on runs again (the lost-worker
                    // retrier): said in a difference's message, as it explains one.
                    let lost = history
                        .iter()
                        .filter(|e| e.r#type().as_str() == "ActivityTimedOut")
                        .count();
                    let mut result = json!({ "states": states, "lost_tasks": lost });
                    match d.status {
                        RemoteStatus::Succeeded => {
                            result["output"] = d.output.unwrap_or(Value::Null)
                        }
                        RemoteStatus::TimedOut => {
                            result["error"] = json!({"name": "States.Timeout", "cause": ""})
                        }
                        _ => {
                            result["error"] =
                                json!({"name": d.error, "cause": d.cause.unwrap_or_default()})
                        }
                    }
                    let text = result.to_string().replace(&execution, &native_id);
                    out.push((i, serde_json::from_str::<Value>(&text).unwrap()));
                }
                (workflow, began.elapsed(), out)
            });
        }
        let mut asl = vec![Value::Null; runs.len()];
        let mut chains = Vec::new();
        while let Some(done) = executions.join_next().await {
            let (workflow, took, results) = done.unwrap();
            chains.push((took, workflow, results.len()));
            for (i, result) in results {
                asl[i] = result;
            }
        }
        chains.sort_unstable_by(|a, b| b.cmp(a));
        eprintln!(
            "the longest chains of scenarios: {:.1?}",
            &chains[..chains.len().min(5)]
        );
        // The typed client: a workflow's own error comes back as its type.
        let failed = sfn
            .start::<retries::fetch_child>(&deployment, &"bad:typed".to_owned())
            .await
            .unwrap();
        match sfn.result::<retries::fetch_child>(&failed).await.unwrap() {
            Err(RemoteError::Failed(e)) => assert_eq!(e.error_name(), "BadRequest"),
            other => panic!("expected the workflow's BadRequest, got {other:?}"),
        }
        let report = worker.shutdown().await.unwrap();
        assert_eq!(report.unanswered, 0, "{report:?}");

        // A step longer than its Task's `HeartbeatSeconds` (1 s: the worker heartbeats
        // every 333 ms) succeeds, and a shutdown while it runs waits for its answer. On
        // an activity of its own: the long polls the first worker left (they end on the
        // service's side after 60 s) could take the task otherwise, as the worker's docs
        // say of a shutdown.
        let activity = sfn
            .client()
            .create_activity()
            .name("slow-step")
            .send()
            .await
            .unwrap()
            .activity_arn()
            .to_owned();
        let definition = json!({"StartAt": "Start", "States": {"Start": {
            "Type": "Task", "Resource": activity, "HeartbeatSeconds": 1,
            "Parameters": {"workflow": "fetch_child", "at": "Start", "heartbeat_seconds": 1,
                "execution.$": "$$.Execution.Id", "document.$": "$"},
            "End": true}}});
        let slow = sfn
            .client()
            .create_state_machine()
            .name("slow-step")
            .definition(definition.to_string())
            .role_arn("arn:aws:iam::000000000000:role/workflows")
            .send()
            .await
            .unwrap();
        let worker = ActivityWorker::new(&sfn, &activity, Arc::clone(&handler))
            .concurrency(1)
            .spawn();
        let execution = sfn
            .start_json(slow.state_machine_arn(), json!("slow1:heartbeat"))
            .await
            .unwrap();
        loop {
            let history = sfn.history(&execution).await.unwrap();
            if history
                .iter()
                .any(|e| e.r#type().as_str() == "ActivityStarted")
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let report = worker.shutdown().await.unwrap();
        assert_eq!((report.succeeded, report.failed), (1, 0), "{report:?}");
        let d = sfn.wait(&execution).await.unwrap();
        assert_eq!(d.status, RemoteStatus::Succeeded, "{d:?}");
        assert_eq!(d.output.unwrap()["next"], "svc.fetch");

        // A worker on an activity that does not exist stops with the service's error.
        let missing = deployment
            .activity_arn()
            .replace("workflow-step-handler", "no-such-activity");
        let stopped = ActivityWorker::new(&sfn, missing, Arc::clone(&handler))
            .spawn()
            .join()
            .await;
        match stopped {
            Err(e) => assert_eq!(e.code(), Some("ActivityDoesNotExist"), "{e}"),
            Ok(report) => panic!("the worker ran on a missing activity: {report:?}"),
        }
        drop(stack);
        Some(asl)
    });
    let Some(asl) = asl else { return };
    let machines = handler().state_machines_for(workflow::asl::Target::Activity);
    let differences = differential::compare_runs(&machines, &runs, &native, &asl);
    differential::assert_none(&differences, runs.len());
    eprintln!(
        "{} of the {total} workflow × scenario pairs (those that wait at most {LOCALSTACK_MAX_WAIT:?}, \
         have no engine deadline under {LOCALSTACK_MIN_DEADLINE:?} and no failing `parallel(…)` child) on LocalStack: same outcome \
         and same state sequence natively and on Step Functions' API, in {:.1?}",
        runs.len(),
        started.elapsed()
    );
}

/// The definitions for an activity worker: the same states as for the Lambda (so the
/// same state sequences), every step on the activity with a heartbeat and no timeout,
/// every callback sending the activity task's own token.
#[test]
fn activity_definitions_run_every_step_on_the_activity() {
    use workflow::asl::{Target, ACTIVITY_HEARTBEAT_SECONDS, STEP_HANDLER_ACTIVITY_PLACEHOLDER};
    let h = handler();
    let lambda = h.state_machines_for(Target::Lambda);
    let activity = h.state_machines_for(Target::Activity);
    let mut steps = 0;
    for (l, a) in lambda.iter().zip(&activity) {
        assert_eq!(l.tokens(), a.tokens(), "{}", a.workflow());
        assert_eq!(a.placeholders()[0], STEP_HANDLER_ACTIVITY_PLACEHOLDER);
        assert_eq!(l.placeholders()[1..], a.placeholders()[1..]);
        let (ls, as_) = (&l.definition()["States"], &a.definition()["States"]);
        assert_eq!(
            ls.as_object().unwrap().keys().collect::<Vec<_>>(),
            as_.as_object().unwrap().keys().collect::<Vec<_>>()
        );
        let text = a.to_json();
        assert!(!text.contains("lambda:invoke"), "{}", a.workflow());
        assert!(!text.contains("$$.Task.Token"), "{}", a.workflow());
        for (name, state) in as_.as_object().unwrap() {
            if state["Resource"] != STEP_HANDLER_ACTIVITY_PLACEHOLDER {
                continue;
            }
            let callback = state.get("TimeoutSecondsPath").is_some();
            if callback {
                assert_eq!(state["ResultPath"], "$.callback_result", "{name}");
                assert!(state.get("HeartbeatSeconds").is_none(), "{name}");
            } else {
                steps += 1;
                assert_eq!(
                    state["HeartbeatSeconds"], ACTIVITY_HEARTBEAT_SECONDS,
                    "{name}"
                );
                assert_eq!(
                    state["Parameters"]["heartbeat_seconds"],
                    ACTIVITY_HEARTBEAT_SECONDS
                );
                assert!(state.get("TimeoutSeconds").is_none(), "{name}: {state}");
                assert_eq!(
                    state["Retry"][0]["ErrorEquals"],
                    json!(["States.HeartbeatTimeout", "States.Timeout"])
                );
            }
            assert_eq!(
                state["Parameters"]["execution.$"], "$$.Execution.Id",
                "{name}"
            );
            assert_eq!(state["Parameters"]["document.$"], "$", "{name}");
        }
    }
    assert!(steps > 100, "{steps} step Tasks");
}

/// Deploying a workflow without a child it calls is refused before anything is created
/// (the endpoint here answers nothing).
#[test]
fn deploy_refuses_a_workflow_without_its_children() {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let sfn = StepFunctions::connect(Some("http://127.0.0.1:9"), Some("us-east-1")).await;
        let all = handler().graphs();
        // A child of some workflow, left out.
        let child = all
            .iter()
            .flat_map(|g| g.nodes.iter())
            .find_map(|n| match &n.kind {
                workflow::NodeKind::Child { workflow } => Some(*workflow),
                _ => None,
            })
            .unwrap();
        let graphs: Vec<_> = all.into_iter().filter(|g| g.workflow != child).collect();
        let options = DeployOptions::new("arn:aws:iam::000000000000:role/workflows");
        match sfn.deploy(graphs, &options).await {
            Err(SfnError::MissingChild { child: missing, .. }) => assert_eq!(missing, child),
            other => panic!("expected MissingChild, got {other:?}"),
        }
    });
}

/// The benchmark's fan-out workflows, with the benchmark's instant job service (ready at
/// the third status call).
fn bench_service() -> std::sync::Arc<bench::JobService> {
    use std::sync::Arc;
    let jobs = Arc::new(bench::Jobs::new(bench::Readiness::AfterPolls(3)));
    let every = std::time::Duration::from_secs(1);
    Arc::new(bench::JobService::with_api(jobs).polling(every, every * 600))
}

fn bench_handler() -> StepHandler {
    StepHandler::builder()
        .register(bench::fan_out_all)
        .register(bench::fan_out_100)
        .dependency_arc(bench_service())
        .clock(StepClock::Virtual)
        .signing_key(differential::TEST_KEY)
        .build()
        .unwrap()
}

fn bench_scenarios() -> Vec<(&'static str, Value)> {
    let jobs = |n: u32| -> Value {
        (1..=n)
            .map(|i| json!({"parameter1": format!("j{i}"), "parameter2": i}))
            .collect()
    };
    vec![
        ("FanOutAll", jobs(3)),
        ("FanOutAll", jobs(0)),
        ("FanOut100", jobs(2)),
        (
            "NestingPatternAnotherStateMachine",
            json!({"parameter1": "b", "parameter2": 1}),
        ),
    ]
}

#[test]
fn bench_workflows_behave_like_native_runs() {
    let Some(tools) = node_tools() else { return };
    let runs = bench_scenarios();
    let infos = [
        Info::of(bench::fan_out_all),
        Info::of(bench::fan_out_100),
        Info::of(bench::run_job),
    ];
    let native: Vec<Native> = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
        .block_on(async {
            let runtime = Runtime::builder()
                .register(bench::fan_out_all)
                .register(bench::fan_out_100)
                .dependency_arc(bench_service())
                .build()
                .unwrap();
            let mut out = Vec::new();
            for (name, input) in &runs {
                let info = infos.iter().find(|i| i.name == *name).unwrap();
                out.push(differential::run_natively(&runtime, info, input).await);
            }
            out
        });
    let differences = differential::compare(tools, &bench_handler(), &runs, &native, |_| {});
    differential::assert_none(&differences, runs.len());
}
