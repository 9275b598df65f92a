//! The `workflow` binary against a store written by real runs of the nesting example
//! (`target/debug/examples/nesting`), including while the example's process has the
//! file open, and the actions it asks of the example's console.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The nesting example's binary, built (or brought up to date) once per test run: the
/// tests of this package do not build the root package's examples themselves.
fn example() -> &'static Path {
    static EXAMPLE: OnceLock<PathBuf> = OnceLock::new();
    EXAMPLE.get_or_init(|| {
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "--quiet",
                "--example",
                "nesting",
                "--manifest-path",
            ])
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml"))
            .status()
            .unwrap();
        assert!(status.success(), "cannot build the nesting example");
        // target/debug/deps/cli-… → target/debug/examples/nesting
        let exe = std::env::current_exe().unwrap();
        let debug = exe.parent().and_then(Path::parent).unwrap();
        debug.join("examples").join("nesting")
    })
}

fn workflow(db: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_workflow"))
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// A store with the example's three runs: a succeeded main execution, a failed one, and
/// one that failed and was redriven to success.
fn store(dir: &Path) -> PathBuf {
    let db = dir.join("nesting.sqlite");
    let run = Command::new(example())
        .args([
            "--delay-ms",
            "20",
            "--poll-ms",
            "10",
            "--parallel",
            "5",
            "--db",
        ])
        .arg(&db)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    db
}

fn lines_json(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn list_show_and_tree_read_a_store_the_example_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let db = store(dir.path());

    let table = stdout(&workflow(&db, &["list", "--top-level"]));
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    assert!(header.starts_with("ID") && header.contains("STATUS") && header.contains("DURATION"));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 3, "{table}");
    // Newest first: the redriven run, the failure demo, the first run.
    let statuses: Vec<&str> = rows
        .iter()
        .map(|r| r.split_whitespace().nth(2).unwrap())
        .collect();
    assert_eq!(statuses, ["Succeeded", "Failed", "Succeeded"], "{table}");

    let all = lines_json(&stdout(&workflow(
        &db,
        &["list", "--json", "--limit", "1000"],
    )));
    // Three mains; 3 + 5 children each.
    assert_eq!(all.len(), 3 + 3 * 8, "{all:?}");
    let failed = lines_json(&stdout(&workflow(
        &db,
        &["list", "--json", "--status", "failed", "--top-level"],
    )));
    assert_eq!(failed.len(), 1);
    let id = failed[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(failed[0]["workflow"], "NestingPatternMainStateMachine");
    let none = stdout(&workflow(
        &db,
        &[
            "list",
            "--json",
            "--since",
            "2000-01-01T00:00:00Z",
            "--workflow",
            "NoSuch",
        ],
    ));
    assert!(none.is_empty());

    let shown = stdout(&workflow(&db, &["show", &id]));
    assert!(shown.contains(&format!("Execution  {id}")) && shown.contains("Status     Failed"));
    assert!(
        shown.contains("Input") && shown.contains("\"label\": \"retry\""),
        "{shown}"
    );
    assert!(shown.contains("Error") && shown.contains("JobFailed"));
    assert!(shown.contains("Children") && shown.contains("History"));
    assert!(shown.contains("ExecutionStarted") && shown.contains("ExecutionFailed"));

    let json: Value =
        serde_json::from_str(&stdout(&workflow(&db, &["show", &id, "--json"]))).unwrap();
    assert_eq!(json["status"], "Failed");
    assert_eq!(json["children"].as_array().unwrap().len(), 8);
    assert!(json["error"].to_string().contains("JobFailed"));
    assert!(json["history"].as_array().unwrap().len() > 10);

    let tree = stdout(&workflow(&db, &["tree", &id]));
    assert!(tree.starts_with(&format!("NestingPatternMainStateMachine {id} Failed")));
    assert_eq!(tree.lines().count(), 9, "{tree}");
    let tree: Value =
        serde_json::from_str(&stdout(&workflow(&db, &["tree", &id, "--json"]))).unwrap();
    assert_eq!(tree["children"].as_array().unwrap().len(), 8);
}

#[test]
fn bad_input_gets_a_clear_error_and_a_failing_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.sqlite");
    let out = workflow(&missing, &["list"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing.sqlite"), "{err}");
    assert!(!missing.exists(), "a read-only tool creates nothing");

    let db = store(dir.path());
    let out = workflow(&db, &["show", "no-such-execution"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no execution with id `no-such-execution`")
    );
    let out = workflow(&db, &["list", "--status", "Sleeping"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no status `Sleeping`"));
    let out = workflow(&db, &["list", "--since", "yesterday"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--since yesterday"));
    let out = workflow(&db, &["graph", "NestingPatternMainStateMachine"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("workflow::cli::main"));
    let out = workflow(&db, &["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn graph_draws_the_workflows_a_binary_links() {
    let run = |format: &str| {
        let out = Command::new(example())
            .args([
                "cli",
                "graph",
                "NestingPatternMainStateMachine",
                "--format",
                format,
            ])
            .output()
            .unwrap();
        stdout(&out)
    };
    assert!(run("mermaid").starts_with("flowchart TD"));
    assert!(run("dot").starts_with("digraph \"NestingPatternMainStateMachine\""));
    let svg = run("svg");
    assert!(svg.contains("<svg") && svg.contains("map run_job"));
    let asl: Value = serde_json::from_str(&run("asl")).unwrap();
    assert!(asl["States"].is_object());
    let names = Command::new(example())
        .args(["cli", "workflows"])
        .output()
        .unwrap();
    assert_eq!(
        stdout(&names),
        "NestingPatternAnotherStateMachine\nNestingPatternMainStateMachine\n"
    );
}

#[test]
fn the_tool_reads_beside_a_running_program_without_stopping_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("busy.sqlite");
    // A slow run: jobs of a second, polled every 20 ms, so the tool reads while the
    // example checkpoints.
    let mut running = Command::new(example())
        .args([
            "--delay-ms",
            "1000",
            "--poll-ms",
            "20",
            "--parallel",
            "8",
            "--db",
        ])
        .arg(&db)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen_running = false;
    let mut reads = 0;
    while running.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the example did not finish");
        if db.exists() {
            let out = workflow(&db, &["list", "--json", "--limit", "1000"]);
            if out.status.success() {
                reads += 1;
                let listed = lines_json(&String::from_utf8(out.stdout).unwrap());
                seen_running |= listed.iter().any(|e| e["status"] == "Running");
            } else {
                // Only before the example has created its schema.
                let err = String::from_utf8_lossy(&out.stderr);
                assert!(err.contains("schema version 0"), "{err}");
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = running.wait().unwrap();
    assert!(
        status.success(),
        "the example failed while the tool read its store"
    );
    assert!(
        seen_running && reads > 10,
        "{reads} reads, saw a running execution: {seen_running}"
    );
    // And what it wrote is whole.
    let all = lines_json(&stdout(&workflow(
        &db,
        &["list", "--json", "--limit", "1000"],
    )));
    assert!(all.iter().all(|e| e["status"] != "Running"), "{all:?}");
}

#[test]
fn redrive_and_cancel_go_through_the_console_of_the_running_program() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("served.sqlite");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let console = format!("http://127.0.0.1:{port}");
    // The example runs its batches, then serves its console (with actions) until killed.
    let mut program = Command::new(example())
        .args(["--delay-ms", "20", "--poll-ms", "10", "--parallel", "5"])
        .arg("--console")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--db")
        .arg(&db)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(program.try_wait().unwrap().is_none(), "the example stopped");
        assert!(Instant::now() < deadline, "the console never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
    let program = Kill(program);

    let failed = lines_json(&stdout(&workflow(
        &db,
        &["list", "--json", "--status", "Failed", "--top-level"],
    )));
    let id = failed[0]["id"].as_str().unwrap().to_owned();
    let out = stdout(&workflow(&db, &["redrive", &id, "--console", &console]));
    assert!(
        out.starts_with(&format!("Redrove {id} (redrive #1).")),
        "{out}"
    );
    assert!(
        out.contains(&format!("{id}/4.3")),
        "the failed child runs again: {out}"
    );

    // What cannot be redriven is refused, with the runtime's reason.
    let succeeded = lines_json(&stdout(&workflow(
        &db,
        &["list", "--json", "--status", "Succeeded", "--top-level"],
    )));
    let ok = succeeded[0]["id"].as_str().unwrap();
    let out = workflow(&db, &["redrive", ok, "--console", &console]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is Succeeded") && err.contains("only a Failed"),
        "{err}"
    );
    let out = stdout(&workflow(&db, &["cancel", ok, "--console", &console]));
    assert_eq!(out, format!("{ok} had already ended.\n"));

    // Without a program to ask, a clear error.
    drop(program);
    let out = workflow(&db, &["redrive", &id, "--console", &console]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the console"));
}
