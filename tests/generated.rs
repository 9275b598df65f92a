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

// Written by the generator, which the first test checks: `cargo fmt` must leave it alone.
#[rustfmt::skip]
#[path = "generated/flows.rs"]
mod flows;
#[path = "../xtask/src/gen.rs"]
#[allow(dead_code)]
mod gen;

use std::collections::BTreeSet;

use serde_json::Value;
use workflow::{Outcome, Runtime, WorkflowError};

use flows::{GenError, Svc};

/// (workflow, JSON input of the scenario, why): mismatches known not to be the
/// generator's.
const EXPECTED_FAILURES: &[(&str, &str, &str)] = &[];

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
