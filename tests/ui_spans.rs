//! Where the errors of `tests/ui/fail` land, as tools see them.
//!
//! `tests/ui.rs` compares rustc's rendered text, which maps a span inside the library
//! (a `macro_rules!` fallback, generated code spanned at the call site) back to the
//! caller. IDEs and `cargo check --message-format=json` show the primary span as it is.
//! So this test checks every case (`cargo check`) with JSON diagnostics, and that:
//!
//! - every error's primary span is in the case's own file, on a line marked
//!   `//~ ERROR` (one error) or `//~ ERROR N` (N errors, for a line where rustc adds its
//!   own to ours): never in the library, never on a line the case did not mark (such as
//!   the `#[workflow]` attribute, unless the case marks it);
//! - every marked line gets exactly the errors it announces: one mistake, one error.
//!
//! The cases are built as the binaries of one scratch crate, with its own target
//! directory under `target/tmp/`, so a second run rebuilds only what changed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const MARK: &str = "//~ ERROR";

/// One error of a case: where its primary span is (file, line), and its message.
struct Reported {
    at: Option<(String, usize)>,
    text: String,
}

/// The lines of `source` marked as expecting errors, with how many.
fn marks(source: &str) -> BTreeMap<usize, usize> {
    source
        .lines()
        .enumerate()
        .filter_map(|(i, line)| {
            let rest = &line[line.find(MARK)? + MARK.len()..];
            let n = rest.trim().parse().unwrap_or(1);
            Some((i + 1, n))
        })
        .collect()
}

/// The scratch crate: one `[[bin]]` per case, its path the case's own file.
fn scratch_crate(root: &Path, cases: &[PathBuf]) -> PathBuf {
    // Under the target directory cargo gives integration tests (`CARGO_TARGET_DIR` too).
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-spans");
    std::fs::create_dir_all(&dir).unwrap();
    let dep = |s: &str| s.replace('\\', "/");
    let mut manifest = format!(
        r#"[package]
name = "ui-spans"
version = "0.0.0"
edition = "2021"
publish = false

[workspace]

[dependencies]
workflow = {{ path = "{root}" }}
serde = {{ version = "1", features = ["derive"] }}
serde_json = "1"
thiserror = "2"
tokio = {{ version = "1", features = ["rt", "rt-multi-thread", "macros", "time", "sync"] }}
"#,
        root = dep(&root.display().to_string())
    );
    for case in cases {
        let name = case.file_stem().unwrap().to_str().unwrap();
        manifest += &format!(
            "\n[[bin]]\nname = \"{name}\"\npath = \"{}\"\ntest = false\n",
            dep(&case.display().to_string())
        );
    }
    std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    // The workspace's lock file: the same versions as every other test, no resolution.
    std::fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    dir
}

#[test]
fn every_error_of_a_failing_case_is_on_a_marked_line_of_that_case() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cases: Vec<PathBuf> = std::fs::read_dir(root.join("tests/ui/fail"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    cases.sort();
    let dir = scratch_crate(root, &cases);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["check", "--bins", "--keep-going", "--message-format=json"])
        .arg("--manifest-path")
        .arg(dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(dir.join("target"))
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .output()
        .expect("cargo runs");

    // Every error, by the case it belongs to.
    let mut errors: BTreeMap<PathBuf, Vec<Reported>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if msg["reason"] != "compiler-message" || msg["message"]["level"] != "error" {
            continue;
        }
        let Some(src) = msg["target"]["src_path"].as_str() else {
            continue;
        };
        let message = &msg["message"];
        let text = message["message"].as_str().unwrap_or("").to_owned();
        if text.starts_with("aborting due to") || text.starts_with("could not compile") {
            continue;
        }
        let primary = message["spans"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["is_primary"] == true)
            .map(|s| {
                let file = s["file_name"].as_str().unwrap_or("").to_owned();
                (file, s["line_start"].as_u64().unwrap_or(0) as usize)
            });
        errors
            .entry(PathBuf::from(src))
            .or_default()
            .push(Reported { at: primary, text });
    }

    let mut problems = Vec::new();
    for case in &cases {
        let source = std::fs::read_to_string(case).unwrap();
        let marked = marks(&source);
        let name = case
            .strip_prefix(root)
            .unwrap_or(case)
            .display()
            .to_string();
        if marked.is_empty() {
            problems.push(format!("{name}: no line is marked `{MARK}`"));
            continue;
        }
        let found = errors.remove(case).unwrap_or_default();
        let mut on_line: BTreeMap<usize, usize> = BTreeMap::new();
        for Reported { at, text } in &found {
            let Some((file, line)) = at else {
                problems.push(format!("{name}: an error without a span: {text}"));
                continue;
            };
            let same_file = Path::new(file) == case
                || root.join(file) == *case
                || case.ends_with(Path::new(file));
            if !same_file {
                problems.push(format!("{name}: an error in {file}:{line}: {text}"));
            } else if !marked.contains_key(line) {
                problems.push(format!(
                    "{name}:{line}: an error on an unmarked line: {text}"
                ));
            } else {
                *on_line.entry(*line).or_default() += 1;
            }
        }
        for (line, want) in &marked {
            let got = on_line.get(line).copied().unwrap_or(0);
            if got != *want {
                problems.push(format!(
                    "{name}:{line}: {got} errors, the mark announces {want}"
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} problems in tests/ui/fail:\n{}\n(cargo's stderr:\n{})",
        problems.len(),
        problems.join("\n"),
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(cases.len() >= 60, "{} cases: at least 60", cases.len());
}
