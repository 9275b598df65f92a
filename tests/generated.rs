//! The generated differential corpus (`tests/generated/flows.rs`, written by
//! `cargo run -p xtask -- gen-flows`): every generated workflow runs natively on each of
//! its scenarios, and so does its plain-Rust twin; both must end the same way.
//!
//! **How outcomes are compared.** Both sides give the output as JSON, or the error as
//! JSON (the workflow's `GenError`, as the runtime records it). Errors must have the same
//! name (`WorkflowError::error_name`) and the same JSON once the ids of child executions
//! are removed (a twin's children have none). Both run under paused tokio time, so the
//! attempts and elapsed times of polls compare exactly.
//!
//! A mismatch that is a bug of the macro or the runtime, not of the generator, goes into
//! [`EXPECTED_FAILURES`] with a note: it is printed, and tolerated while it reproduces.
//!
//! **As ASL.** Every scenario also runs as ASL on `aws-local-stepfunctions` and must end
//! as natively, through the same sequence of states (`support/differential.rs`), and
//! every generated definition must pass both validators.

#[path = "support/differential.rs"]
mod differential;
// Written by the generator, which the first test checks: `cargo fmt` must leave it alone.
#[rustfmt::skip]
#[path = "generated/flows.rs"]
mod flows;
#[path = "../xtask/src/gen.rs"]
#[allow(dead_code)]
mod gen;

use std::collections::BTreeSet;

use std::sync::Arc;

use differential::{node_tools, Info};
use serde_json::Value;
use workflow::asl::{StepClock, StepHandler, StepHandlerBuilder};
use workflow::{Outcome, Runtime, Workflow, WorkflowError};

use flows::{GenError, Svc};

/// (workflow, JSON input of the scenario, why): mismatches known not to be the
/// generator's.
const EXPECTED_FAILURES: &[(&str, &str, &str)] = &[];

/// (workflow, JSON input, why): scenarios whose ASL run may end with another child's
/// error than the native run, because two children of one batch fail and which fails
/// first is a matter of timing. Natively the batch's waits take their virtual time; the
/// local interpreter runs Wait states at once, so a sibling that waits before failing
/// fails first there. (On Step Functions, waits take their time, as natively.)
const ASL_RACES: &[(&str, &str, &str)] = &[(
    "gen_007",
    "[18,0]",
    "both children of `parallel(gen_child, gen_child_loop)` fail; `gen_child` waits 1 ms first",
)];

#[test]
fn the_checked_in_corpus_is_what_the_generator_writes() {
    let on_disk = include_str!("generated/flows.rs");
    let config = gen::Config::of_file(on_disk).unwrap();
    assert_eq!(
        config.seed,
        gen::DEFAULT_SEED,
        "the corpus is the default seed's"
    );
    assert_eq!(config.count, gen::DEFAULT_COUNT);
    let written = gen::generate(&config);
    if written != on_disk {
        let line = written
            .lines()
            .zip(on_disk.lines())
            .position(|(a, b)| a != b)
            .map_or(written.lines().count().min(on_disk.lines().count()), |n| n);
        panic!(
            "tests/generated/flows.rs differs from what `cargo run -p xtask -- gen-flows {}` \
             writes, first at line {}; run that command",
            config.args(),
            line + 1
        );
    }
}

#[test]
fn the_manifest_covers_every_exit_kind() {
    assert!(
        flows::MANIFEST.len() >= 200,
        "{} workflows",
        flows::MANIFEST.len()
    );
    for kind in gen::EXIT_KINDS {
        let n = flows::MANIFEST
            .iter()
            .filter(|(_, kinds)| kinds.contains(kind))
            .count();
        println!("{kind}: in {n} workflows");
        assert!(n > 0, "no generated workflow contains the exit `{kind}`");
    }
    for (name, kinds) in flows::MANIFEST {
        for k in *kinds {
            assert!(gen::EXIT_KINDS.contains(k), "{name}: unknown exit `{k}`");
        }
    }
    let with_scenarios: BTreeSet<&str> = flows::scenarios().iter().map(|(w, _)| *w).collect();
    assert_eq!(with_scenarios.len(), flows::MANIFEST.len());
}

/// How a run ended, comparable across the runtime and a twin.
#[derive(Debug, PartialEq)]
enum End {
    Output(Value),
    Error {
        name: String,
        value: Value,
    },
    /// Cancelled, timed out or faulted (never expected here).
    Other(String),
}

impl End {
    fn error(value: Value) -> End {
        let name = serde_json::from_value::<GenError>(value.clone()).map_or_else(
            |e| format!("<not a GenError: {e}>"),
            |e| e.error_name().into_owned(),
        );
        End::Error {
            name,
            value: without_child_ids(value),
        }
    }
}

/// `value` without the `child` fields of `NestedError`s.
fn without_child_ids(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(k, _)| k != "child")
                .map(|(k, v)| (k, without_child_ids(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_child_ids).collect()),
        other => other,
    }
}

fn paused() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
}

/// One run on a fresh runtime and `Svc` (its polls count calls per key).
fn native(name: &str, input: &Value) -> End {
    paused().block_on(async {
        let runtime: Runtime = flows::generated_workflows!(flows, Runtime::builder())
            .build()
            .unwrap();
        let id = runtime.start_json(name, input.clone()).await.unwrap();
        match runtime.wait(&id).await.unwrap() {
            Outcome::Succeeded(v) => End::Output(v.to_value()),
            Outcome::Failed(e) => End::error(e.to_value()),
            other => End::Other(format!("{other:?}")),
        }
    })
}

fn plain(name: &str, input: &Value) -> End {
    paused().block_on(async {
        match flows::run_plain(&Svc::default(), name, input.clone()).await {
            Ok(v) => End::Output(v),
            Err(e) => End::error(e),
        }
    })
}

#[test]
fn native_runs_end_like_their_plain_twins() {
    let scenarios = flows::scenarios();
    let mut mismatches = Vec::new();
    let mut outcomes: std::collections::BTreeMap<&str, BTreeSet<String>> = Default::default();
    let (mut ok, mut failed) = (0, 0);
    for (name, input) in &scenarios {
        let n = native(name, input);
        let p = plain(name, input);
        match &n {
            End::Output(_) => ok += 1,
            _ => failed += 1,
        }
        outcomes
            .entry(name)
            .or_default()
            .insert(format!("{n:?}").chars().take(40).collect());
        if n != p {
            mismatches.push((*name, input.to_string(), n, p));
        }
    }
    let varied = outcomes.values().filter(|o| o.len() > 1).count();
    println!(
        "{} runs of {} workflows: {ok} succeeded, {failed} failed; {varied} workflows end \
         in more than one way",
        scenarios.len(),
        outcomes.len()
    );
    let mut unexpected = Vec::new();
    for (name, input, n, p) in &mismatches {
        let known = EXPECTED_FAILURES
            .iter()
            .find(|(w, i, _)| w == name && i == input);
        match known {
            Some((_, _, why)) => {
                println!("expected failure: {name}({input}): native {n:?}, plain {p:?} ({why})")
            }
            None => {
                println!("MISMATCH {name}({input}):\n  native {n:?}\n  plain  {p:?}");
                unexpected.push(format!("{name}({input})"));
            }
        }
    }
    let fixed: Vec<String> = EXPECTED_FAILURES
        .iter()
        .filter(|(w, i, _)| !mismatches.iter().any(|(n, inp, ..)| n == w && inp == i))
        .map(|(w, i, _)| format!("{w}({i})"))
        .collect();
    assert!(
        unexpected.is_empty(),
        "{} native runs ended unlike their twins: {unexpected:?}",
        unexpected.len()
    );
    assert!(
        fixed.is_empty(),
        "expected failures no longer fail, remove them from EXPECTED_FAILURES: {fixed:?}"
    );
}

/// The generated workflows' step handler, with one `Svc` the caller can reset, and the
/// native side's view of each workflow.
struct AslSide {
    handler: StepHandlerBuilder,
    infos: Vec<Info>,
    svc: Arc<Svc>,
}

// What `generated_workflows!` calls on a builder.
impl AslSide {
    fn register<W: Workflow>(mut self, workflow: W) -> Self {
        self.infos.push(Info::of(workflow));
        self.handler = self.handler.register(workflow);
        self
    }

    fn dependency(mut self, _: Svc) -> Self {
        self.handler = self.handler.dependency_arc(self.svc.clone());
        self
    }
}

fn asl_side() -> (StepHandler, Vec<Info>, Arc<Svc>) {
    let svc = Arc::new(Svc::default());
    let side = flows::generated_workflows!(
        flows,
        AslSide {
            handler: StepHandler::builder()
                .clock(StepClock::Virtual)
                .signing_key(differential::TEST_KEY),
            infos: Vec::new(),
            svc: svc.clone(),
        }
    );
    (side.handler.build().unwrap(), side.infos, svc)
}

#[test]
fn every_generated_definition_passes_both_validators() {
    let Some(tools) = node_tools() else { return };
    let (handler, ..) = asl_side();
    let n = differential::validate(tools, &handler);
    assert!(n >= 200, "{n} definitions");
}

#[test]
fn asl_runs_behave_like_native_runs() {
    let Some(tools) = node_tools() else { return };
    let (handler, infos, svc) = asl_side();
    let scenarios = flows::scenarios();
    // Natively each run gets a fresh runtime and `Svc` (its polls count calls per key).
    let native: Vec<differential::Native> = scenarios
        .iter()
        .map(|(name, input)| {
            let info = infos.iter().find(|i| i.name == *name).unwrap();
            paused().block_on(async {
                let runtime: Runtime = flows::generated_workflows!(flows, Runtime::builder())
                    .build()
                    .unwrap();
                differential::run_natively(&runtime, info, input).await
            })
        })
        .collect();
    // As ASL the runs go one after another on one `Svc`: forget its calls whenever a
    // top-level execution starts (a child's start carries its id).
    let mut differences = differential::compare(tools, &handler, &scenarios, &native, |request| {
        if request["at"] == "Start" && request["document"].get("id").is_none() {
            svc.reset();
        }
    });
    // Known races: when they show, the two runs must still fail with the same error name
    // through the same states.
    for (workflow, input, why) in ASL_RACES {
        let input: Value = serde_json::from_str(input).unwrap();
        assert!(
            scenarios.iter().any(|(w, i)| w == workflow && *i == input),
            "race {workflow}({input}) is not a scenario"
        );
        let Some(at) = differences
            .iter()
            .position(|d| d.workflow == *workflow && d.input == input)
        else {
            // This time the sibling that fails first natively failed first here too.
            println!("known race {workflow}({input}): equal this time");
            continue;
        };
        let d = differences.remove(at);
        assert!(
            d.same_error_name && d.same_states,
            "{workflow}({input}): a race changes which sibling's error, not its name or the states:\n{}",
            d.text
        );
        println!("known race {workflow}({input}): {why}");
    }
    differential::assert_none(&differences, scenarios.len());
    println!(
        "{} scenarios of {} generated workflows: same outcome and same state sequence natively \
         and as ASL, but for the known races above",
        scenarios.len(),
        infos.len()
    );
}
