//! The differential runs shared by `tests/asl.rs` and `tests/generated.rs`: each
//! workflow × scenario run natively under virtual time and as ASL on
//! `aws-local-stepfunctions`, its Lambda Tasks answered by this process's step handler
//! over JSON lines; both must end the same way and enter the same sequence of states.
//!
//! The Node tools live in `tools/asl/` and are installed with `npm ci` on first use. If
//! Node is missing the Node tests fail when `CI` is set, and print a loud skip otherwise.
//!
//! **How states are compared.** Both runs are mapped to a sequence of graph node names:
//! natively `TaskSucceeded N`, `WaitStarted N`, `PollAttempt N`, `CallbackStarted N`
//! and the `ChildStarted N` of a batch's first child each give `N`; in ASL each entered
//! state gives [`StateMachine::token`] (`N` for a task's Lambda, a Wait, a poll attempt,
//! a child / Parallel / Map state, a callback's Task; nothing for routing and resume
//! states). Both end with
//! `Succeed`, `Fail` (the Fail state, or a poll's give-up state), `TimedOut` or `Fault`.
//!
//! **Execution timeouts.** A run past its `#[workflow(timeout)]` ends natively with
//! `Outcome::TimedOut`, and on Step Functions with `States.Timeout`. Both count as the
//! same outcome, `{"timed_out": true}`, and end the state sequence with `TimedOut`.

// Included by several tests, each using a part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde_json::{json, Value};
use workflow::asl::{serve_json_lines, StateMachine, StepHandler, Target};
use workflow::{EventKind, ExecutionId, Outcome, Runtime, StateGraph, Workflow, WorkflowError};

/// The signing key of the handlers in differential runs: a child execution takes the
/// native id its parent chose (`{parent}/{batch}.{index}`, which errors name) only with
/// the ticket a signing handler gives it.
pub const TEST_KEY: &[u8] = b"the differential runs' key, 32+ bytes long";

/// What the native side of a comparison needs of a workflow: its graph, and the name of
/// an error (as JSON) of its typed error.
pub struct Info {
    pub name: &'static str,
    pub graph: &'static StateGraph,
    pub error_name: fn(&Value) -> String,
}

impl Info {
    pub fn of<W: Workflow>(_: W) -> Info {
        fn error_name<W: Workflow>(error: &Value) -> String {
            serde_json::from_value::<W::Error>(error.clone()).map_or_else(
                |e| format!("<not a {} error: {e}>", W::NAME),
                |e| e.error_name().into_owned(),
            )
        }
        Info {
            name: W::NAME,
            graph: W::graph(),
            error_name: error_name::<W>,
        }
    }
}

/// One native run: its execution id, how it ended, the states it entered, and how long
/// it took on the runtime's clock (virtual time in these tests: the waits it made).
pub struct Native {
    pub id: String,
    pub outcome: Value,
    pub tokens: Vec<String>,
    pub elapsed: std::time::Duration,
    /// A child of a `parallel(…)` batch failed or timed out, in this execution or a
    /// descendant (LocalStack mishandles it: see the LocalStack test).
    pub parallel_failure: bool,
}

/// Runs `name` on `input` to its end on `runtime` and maps it for the comparison.
pub async fn run_natively(runtime: &Runtime, info: &Info, input: &Value) -> Native {
    let started = tokio::time::Instant::now();
    let id: ExecutionId = runtime.start_json(info.name, input.clone()).await.unwrap();
    let outcome = runtime.wait(&id).await.unwrap();
    let elapsed = started.elapsed();
    let history = runtime.history(&id).await.unwrap();
    // A task with a policy has its state entered before the call, so its state stands
    // for its failure too.
    let has_policy = |state: &str| info.graph.node(state).is_some_and(|n| n.policy.is_some());
    let mut tokens: Vec<String> = history
        .iter()
        .filter_map(|e| {
            let state = e.state.as_deref()?;
            let counts = match &e.kind {
                EventKind::TaskSucceeded { .. }
                | EventKind::WaitStarted { .. }
                | EventKind::PollAttempt { .. }
                | EventKind::CallbackStarted { .. } => true,
                EventKind::TaskFailed { .. } => has_policy(state),
                EventKind::ChildStarted { child, .. } => child.as_str().ends_with(".0"),
                _ => false,
            };
            counts.then(|| state.to_owned())
        })
        .collect();
    let outcome = match outcome {
        Outcome::Succeeded(v) => {
            tokens.push("Succeed".into());
            json!({"output": v})
        }
        Outcome::Failed(e) => {
            tokens.push("Fail".into());
            let e = e.to_value();
            json!({"error": {"name": (info.error_name)(&e), "cause": e.to_string()}})
        }
        Outcome::TimedOut => {
            tokens.push("TimedOut".into());
            json!({"timed_out": true})
        }
        // A fault is an error of the runtime's name (`Workflow.Panic`, …), which the
        // ASL run fails with too; its message is not JSON, so only names compare.
        Outcome::Faulted(fault) => {
            tokens.push("Fault".into());
            json!({"error": {"name": fault.name(), "cause": fault.message()}})
        }
        Outcome::Cancelled => {
            tokens.push("Fault".into());
            json!({"fault": "cancelled"})
        }
    };
    let parallel_failure = parallel_failure(runtime, &id).await;
    Native {
        id: id.to_string(),
        outcome,
        tokens,
        elapsed,
        parallel_failure,
    }
}

/// Whether a child of a `parallel(…)` batch failed or timed out in execution `id` or a
/// descendant of it.
async fn parallel_failure(runtime: &Runtime, id: &ExecutionId) -> bool {
    let mut todo = vec![runtime.tree(id).await.unwrap()];
    while let Some(tree) = todo.pop() {
        let graph = runtime.catalog().graph(&tree.workflow).unwrap();
        for e in runtime.history(&tree.id).await.unwrap() {
            let failed = matches!(
                e.kind,
                EventKind::ChildFailed { .. } | EventKind::ChildTimedOut { .. }
            );
            let in_parallel = e
                .state
                .as_deref()
                .and_then(|s| graph.node(s))
                .is_some_and(|n| matches!(n.kind, workflow::NodeKind::Parallel { .. }));
            if failed && in_parallel {
                return true;
            }
        }
        todo.extend(tree.children);
    }
    false
}

/// `tools/asl` with its packages installed, or `None` (after a loud skip) without Node.
pub fn node_tools() -> Option<&'static Path> {
    static TOOLS: OnceLock<Option<PathBuf>> = OnceLock::new();
    TOOLS
        .get_or_init(|| {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/asl");
            let node = Command::new("node").arg("--version").output();
            if !node.is_ok_and(|o| o.status.success()) {
                if std::env::var_os("CI").is_some() {
                    panic!("Node.js (node, npm) is required by the ASL tests in CI; install Node 20 or newer");
                }
                eprintln!("\n!!!!!!!! SKIPPED: Node.js is not installed; the ASL validators and differential runs did not run !!!!!!!!\n");
                return None;
            }
            if !dir.join("node_modules/aws-local-stepfunctions").exists() {
                let status = Command::new("npm")
                    .args(["ci", "--no-audit", "--no-fund"])
                    .current_dir(&dir)
                    .status()
                    .expect("npm runs");
                assert!(status.success(), "`npm ci` in tools/asl failed");
            }
            Some(dir)
        })
        .as_deref()
}

/// Runs every definition of `handler`, for both targets (Lambda and activity), through
/// both validators; panics on an error. Returns how many definitions passed.
pub fn validate(tools: &Path, handler: &StepHandler) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for target in [Target::Lambda, Target::Activity] {
        for m in handler.state_machines_for(target) {
            let path = dir
                .path()
                .join(format!("{}.{target:?}.asl.json", m.workflow()));
            // An activity's ARN is the Task's `Resource`, which must be an ARN: as a
            // deploy does, the placeholder is filled in.
            let text = m.to_pretty().replace(
                workflow::asl::STEP_HANDLER_ACTIVITY_PLACEHOLDER,
                "arn:aws:states:us-east-1:123456789012:activity:workflow-step-handler",
            );
            std::fs::write(&path, text).unwrap();
            files.push(path);
        }
    }
    let out = Command::new("node")
        .arg(tools.join("validate.cjs"))
        .args(&files)
        .output()
        .expect("node runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let report = report.as_object().unwrap();
    assert_eq!(report.len(), files.len());
    for (file, r) in report {
        for validator in ["asl-validator", "statelint"] {
            assert_eq!(r[validator], json!([]), "{file}: {validator} found errors");
        }
    }
    report.len()
}

/// Runs `runs` as ASL, one after another, each with the id of its native run (which its
/// children's ids derive from), every request of the interpreter shown to `tap` before
/// the handler answers it; returns every run that does not end as natively or does not
/// enter the same states.
pub fn compare(
    tools: &Path,
    handler: &StepHandler,
    runs: &[(&'static str, Value)],
    native: &[Native],
    tap: impl FnMut(&Value),
) -> Vec<Difference> {
    assert_eq!(runs.len(), native.len());
    assert!(
        handler.signing(),
        "sign the differential's handler (`TEST_KEY`): children take their native ids only with a signed ticket"
    );
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.json");
    let results = dir.path().join("results.json");
    let machines = handler.state_machines();
    let plan_json = json!({
        "machines": machines
            .iter()
            .map(|m| (m.workflow().to_owned(), m.definition().clone()))
            .collect::<serde_json::Map<String, Value>>(),
        "runs": runs
            .iter()
            .zip(native)
            .map(|((w, input), n)| json!({"workflow": w, "input": input, "id": n.id}))
            .collect::<Vec<_>>(),
    });
    std::fs::write(&plan, plan_json.to_string()).unwrap();
    let mut node = Command::new("node")
        .arg(tools.join("run.cjs"))
        .arg(&plan)
        .arg(&results)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node runs");
    // The Node process asks, this process answers, until Node closes its output.
    let requests = Tap::new(BufReader::new(node.stdout.take().unwrap()), tap);
    let answers = node.stdin.take().unwrap();
    serve_json_lines(handler, requests, answers).unwrap();
    assert!(
        node.wait().unwrap().success(),
        "run.cjs failed (see stderr)"
    );
    let asl: Vec<Value> = serde_json::from_slice(&std::fs::read(&results).unwrap()).unwrap();
    compare_runs(&machines, runs, native, &asl)
}

/// Compares each native run with its ASL run, given as `{"states": [entered state
/// names], "output": …}` or `{"states": […], "error": {"name", "cause"}}`, and optionally
/// `"lost_tasks"`: how many tasks the engine gave up on and ran again.
pub fn compare_runs(
    machines: &[StateMachine],
    runs: &[(&'static str, Value)],
    native: &[Native],
    asl: &[Value],
) -> Vec<Difference> {
    assert_eq!(asl.len(), runs.len());
    let mut differences = Vec::new();
    for (((workflow, input), n), a) in runs.iter().zip(native).zip(asl) {
        let m = machines.iter().find(|m| m.workflow() == *workflow).unwrap();
        let mut tokens: Vec<String> = a["states"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| m.token(s.as_str()?).map(str::to_owned))
            .collect();
        let outcome = if a["error"]["name"] == "States.Timeout" {
            // The definition's `TimeoutSeconds`: Step Functions' execution timeout.
            tokens.push("TimedOut".into());
            json!({"timed_out": true})
        } else if a.get("error").is_some() {
            if tokens.last().map(String::as_str) != Some("Fail") {
                tokens.push("Fault".into());
            }
            json!({"error": a["error"]})
        } else {
            json!({"output": a["output"]})
        };
        let (same_outcome, same_error_name) = match (n.outcome.get("error"), outcome.get("error")) {
            (Some(ne), Some(ae)) => (
                // The same error (the cause is its JSON), or just its name.
                ne["name"] == ae["name"]
                    && serde_json::from_str::<Value>(ne["cause"].as_str().unwrap_or("")).ok()
                        == serde_json::from_str::<Value>(ae["cause"].as_str().unwrap_or("")).ok(),
                ne["name"] == ae["name"],
            ),
            (None, None) => (n.outcome == outcome, false),
            _ => (false, false),
        };
        let same_states = n.tokens == tokens;
        if !same_outcome || !same_states {
            differences.push(Difference {
                workflow,
                input: input.clone(),
                same_states,
                same_error_name,
                text: format!(
                    "{workflow}({input}):\n  native {} {:?}\n  asl    {} {:?}\n  asl states {}{}",
                    n.outcome,
                    n.tokens,
                    outcome,
                    tokens,
                    a["states"],
                    match a["lost_tasks"].as_u64() {
                        Some(n @ 1..) =>
                            format!("\n  {n} task(s) timed out on the engine and ran again"),
                        _ => String::new(),
                    }
                ),
            });
        }
    }
    differences
}

/// A run that ended otherwise as ASL than natively.
#[derive(Debug)]
pub struct Difference {
    pub workflow: &'static str,
    pub input: Value,
    /// The two runs entered the same states.
    pub same_states: bool,
    /// Both failed, with errors of the same name.
    pub same_error_name: bool,
    /// Both runs, for a failure message.
    pub text: String,
}

/// Panics with every difference, if there is one.
pub fn assert_none(differences: &[Difference], runs: usize) {
    assert!(
        differences.is_empty(),
        "{} of {runs} runs differ natively and as ASL:\n{}",
        differences.len(),
        differences
            .iter()
            .map(|d| d.text.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// A line reader that shows each line (parsed as JSON) to a callback before handing it on.
struct Tap<R, F> {
    inner: R,
    tap: F,
    line: Vec<u8>,
    at: usize,
}

impl<R: BufRead, F: FnMut(&Value)> Tap<R, F> {
    fn new(inner: R, tap: F) -> Self {
        Tap {
            inner,
            tap,
            line: Vec::new(),
            at: 0,
        }
    }
}

impl<R: BufRead, F: FnMut(&Value)> Read for Tap<R, F> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead, F: FnMut(&Value)> BufRead for Tap<R, F> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.at == self.line.len() {
            self.line.clear();
            self.at = 0;
            self.inner.read_until(b'\n', &mut self.line)?;
            if let Ok(request) = serde_json::from_slice::<Value>(&self.line) {
                (self.tap)(&request);
            }
        }
        Ok(&self.line[self.at..])
    }

    fn consume(&mut self, amount: usize) {
        self.at = (self.at + amount).min(self.line.len());
    }
}
