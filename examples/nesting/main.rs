//! Nested workflows against a slow HTTP job service: the project's main example.
//!
//! ```text
//! cargo run --example nesting
//! cargo run --example nesting -- --help
//! cargo run --example nesting -- --parallel 20 --delay-ms 500 --fail-every 9
//! ```
//!
//! What it shows:
//!
//! 1. **A slow service.** An in-process job service (axum, on `127.0.0.1` with a random
//!    port): `POST /jobs` starts a job, `GET /jobs/{id}` tells whether it is `running`,
//!    `succeeded` or `failed`. Jobs take a few hundred milliseconds, and the service
//!    rejects, deterministically, every job whose `parameter2` is a multiple of
//!    `--fail-every`.
//! 2. **The call–wait–poll–check loop as one statement.** The child workflow `run_job`
//!    starts a job over HTTP, then `poll_until!`s its status. Every call and every wait is
//!    checkpointed and recorded in the execution's history.
//! 3. **Nesting.** The parent workflow `main_flow` runs `run_job` three times one after the
//!    other, then once per item of a list with at most 8 children at a time
//!    (`call_nested!`). Each child is an execution of its own with a deterministic id; the
//!    runtime shows them as a tree.
//! 4. **Typed failure propagation.** A failed job becomes the child's `JobError`, which
//!    reaches the parent as `NestedError<JobError>` and leaves it as `MainError`: the
//!    caller gets a value it can `match` on, and the failing child's running siblings are
//!    cancelled. This second run is on by default; `--demo-failure false` skips it.
//!
//!    A third run meets a service that refuses some jobs for a while; once it is fixed,
//!    the failed execution is **redriven** (`Runtime::redrive`): same id, same history,
//!    only the children that did not succeed run again.
//!
//! 5. **Approval.** A batch with more than `--approve-over` parallel jobs waits for a
//!    person's approval before it starts anything (`wait_for_callback!`): the job
//!    service gets a token with the request (`POST /approvals`), and the approver's
//!    answer, `POST /approvals/{id}/approve` (or `…/reject`), completes the token through
//!    `runtime.complete`. The execution waits durably meanwhile, polling nothing. An
//!    approver of the example's own answers after a moment; with `--manual-approval` the
//!    program prints the `curl` command and waits for you.
//!
//! 6. **Durability.** Executions and their histories are kept in a SQLite file,
//!    `target/nesting.sqlite` unless `--db PATH` or `WORKFLOW_DB` says otherwise. Every
//!    checkpoint is a transaction; at start the runtime resumes what an interrupted earlier
//!    run left unfinished (`Runtime::recover`) and prints what it did. (Jobs of an
//!    interrupted run lived on that run's in-process service, so their resumed children
//!    end with "the service does not know job …": a typed failure, not a lost execution.)
//!    Delete the file to start afresh.
//!
//! 7. **Seeing it.** The last lines printed are the commands that open the console, show an
//!    execution and draw the workflows (`workflow::cli`, `workflow::console`);
//!    `--console 127.0.0.1:7878` serves the console from this program, with its actions.
//!
//! Set `RUST_LOG` (for example `RUST_LOG=debug`) to see the runtime's and the HTTP
//! stack's logs.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use workflow::prelude::*;

mod workflows;

use workflow::telemetry::{Telemetry, TelemetryError};
use workflow::{Event, EventKind, ExecutionFilter, ExecutionId, ExecutionTree, Outcome, Status};
use workflows::*;

// =======================================================================================
// The job service itself: a small axum server, started in-process.
// =======================================================================================

mod job_server;

// The same workflows on Step Functions: `cargo run --example nesting -- sfn …`.
mod on_step_functions;

// =======================================================================================
// The program: start the service, run the workflows, show what happened.
// =======================================================================================

/// Runs nested durable workflows against an in-process HTTP job service.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// How long a job runs, in milliseconds (each job takes 1× to 1.5× this).
    #[arg(long, default_value_t = 300, value_name = "MS")]
    delay_ms: u64,

    /// How often a job's status is polled, in milliseconds.
    #[arg(long, default_value_t = 100, value_name = "MS")]
    poll_ms: u64,

    /// How long a job is polled at most before giving up, in milliseconds.
    #[arg(long, default_value_t = 10_000, value_name = "MS")]
    timeout_ms: u64,

    /// How many jobs the batch runs in parallel (at most 8 at a time).
    #[arg(long, default_value_t = 10, value_name = "N")]
    parallel: u32,

    /// Make the service fail every job whose parameter2 is a multiple of N (0: none).
    ///
    /// The sequential jobs have parameter2 = 1, 2, 3 and the parallel ones 4, 5, …
    #[arg(long, default_value_t = 0, value_name = "N")]
    fail_every: u32,

    /// After the first run, run the batch again with a service that fails every job
    /// whose parameter2 is a multiple of 7, and show the error the parent returns.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    demo_failure: bool,

    /// How many events of the main execution's history to print (its last two too).
    #[arg(long, default_value_t = 10, value_name = "N")]
    history: usize,

    /// Batches with more parallel jobs than this wait for approval before they start.
    #[arg(long, default_value_t = 8, value_name = "N")]
    approve_over: usize,

    /// How long a batch waits for its approval, in milliseconds.
    #[arg(long, default_value_t = 60_000, value_name = "MS")]
    approval_timeout_ms: u64,

    /// Do not approve batches automatically: print the `curl` command that does, and wait.
    #[arg(long)]
    manual_approval: bool,

    /// The SQLite file that keeps the executions [env: WORKFLOW_DB; default:
    /// target/nesting.sqlite].
    #[arg(long, value_name = "PATH")]
    db: Option<PathBuf>,

    /// After the runs, serve the console (with its actions) on this address until Ctrl-C.
    #[arg(long, value_name = "ADDR")]
    console: Option<std::net::SocketAddr>,
}

/// Where the executions are kept when neither `--db` nor `WORKFLOW_DB` says.
const DEFAULT_DB: &str = "target/nesting.sqlite";

/// The `parameter2` the failure demo's service rejects multiples of.
const DEMO_FAIL_EVERY: u32 = 7;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `cargo run --example nesting -- asl out/`: write the workflows' ASL and stop.
    if std::env::args().nth(1).as_deref() == Some("asl") {
        let dir = PathBuf::from(std::env::args().nth(2).unwrap_or_else(|| "asl".into()));
        std::fs::create_dir_all(&dir)?;
        for m in [
            workflow::asl::asl::<main_flow>(),
            workflow::asl::asl::<run_job>(),
        ] {
            let path = dir.join(format!("{}.asl.json", m.workflow()));
            std::fs::write(&path, m.to_pretty() + "\n")?;
            println!(
                "{}  (substitutions: {})",
                path.display(),
                m.placeholders().join(", ")
            );
        }
        return Ok(());
    }
    // `cargo run --example nesting -- cli list …`: the `workflow` command-line tool, with
    // this program's workflows linked in (so `cli graph` draws them).
    if std::env::args().nth(1).as_deref() == Some("cli") {
        let args = std::env::args_os().skip(1);
        let catalog = workflow::Catalog::new().register(main_flow);
        return Ok(workflow::cli::run(catalog, args, &mut std::io::stdout()).await?);
    }
    // `cargo run --example nesting -- sfn --endpoint-url URL`: on Step Functions.
    if std::env::args().nth(1).as_deref() == Some("sfn") {
        let _telemetry = init_logs()?;
        let args = on_step_functions::Args::parse_from(std::env::args_os().skip(1));
        return on_step_functions::run(args).await;
    }
    let _telemetry = init_logs()?;
    let args = Args::parse();

    let server = job_server::start(job_server::Config {
        delay: Duration::from_millis(args.delay_ms),
        fail_every: args.fail_every,
        refuse_every: 0,
    })
    .await?;
    println!("Job service listening on {}", server.base_url);

    let jobs = JobService::new(server.base_url.clone())
        .polling(
            Duration::from_millis(args.poll_ms),
            Duration::from_millis(args.timeout_ms),
        )
        .approvals(
            args.approve_over,
            Duration::from_millis(args.approval_timeout_ms),
        );
    let db = args
        .db
        .clone()
        .or_else(|| std::env::var_os("WORKFLOW_DB").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DB));
    let runtime = Runtime::builder()
        .register(main_flow) // and run_job, which it calls
        .dependency(jobs)
        .sqlite(&db) // opened, and locked against a second runtime, by build()
        .build()?;
    // The service's approvers answer through this runtime, which holds the waiting
    // executions.
    server.answer_approvals_with(&runtime);
    tokio::spawn(approver(server.base_url.clone(), args.manual_approval));
    // Resume what an interrupted earlier run left unfinished.
    let recovered = runtime.recover().await?;
    println!("Executions are kept in {}; {recovered}.", db.display());
    println!("Registered workflows: {}", runtime.workflows().join(", "));

    // --- 1. A batch: three jobs in sequence, then a fan-out. --------------------------
    heading(&format!(
        "1. Three jobs in sequence, then {} in parallel (at most 8 at a time){}",
        args.parallel,
        if args.parallel as usize > args.approve_over {
            ", once approved"
        } else {
            ""
        }
    ));
    let started = Instant::now();
    let execution = runtime
        .start(main_flow, Batch::numbered("batch", args.parallel))
        .await?;
    let id = execution.id().clone();
    println!("Started {} execution {id}", main_flow::NAME);
    let result = execution.result().await;
    println!("It ended after {:.2?}.", started.elapsed());
    match result {
        Ok(summary) => print_summary(&summary),
        Err(e) => print_run_error(&e)?,
    }

    let tree = runtime.tree(&id).await?;
    println!("\nExecution tree (parent → children):\n{tree}");
    print_history(
        &runtime.history(&id).await?,
        args.history,
        2,
        "the main execution",
    );
    if let Some(child) = tree.children.first() {
        let events = runtime.history(&child.id).await?;
        print_history(&events, events.len(), 0, "its first child");
    }

    // --- 2. Failure propagation. -------------------------------------------------------
    if args.demo_failure {
        heading(&format!(
            "2. The same batch, with a service that rejects multiples of {DEMO_FAIL_EVERY}"
        ));
        server.set_fail_every(DEMO_FAIL_EVERY);
        let execution = runtime
            .start(main_flow, Batch::numbered("retry", args.parallel))
            .await?;
        let id = execution.id().clone();
        println!("Started {} execution {id}", main_flow::NAME);
        match execution.result().await {
            Ok(summary) => {
                println!(
                    "No job was rejected (is --parallel below {}?):",
                    DEMO_FAIL_EVERY - 3
                );
                print_summary(&summary);
            }
            Err(e) => print_run_error(&e)?,
        }
        let tree = runtime.tree(&id).await?;
        println!("\nExecution tree:\n{tree}");
        print_outcomes(&tree);
        print_history(
            &runtime.history(&id).await?,
            0,
            args.history,
            "the failed execution",
        );
    }

    if args.demo_failure {
        // --- 3. Redrive. ---------------------------------------------------------------------
        heading(&format!(
            "3. A service that refuses to start multiples of {DEMO_FAIL_EVERY} for now; fixed, then a redrive"
        ));
        server.set_fail_every(0);
        server.set_refuse_every(DEMO_FAIL_EVERY);
        let execution = runtime
            .start(main_flow, Batch::numbered("redrive", args.parallel))
            .await?;
        let id = execution.id().clone();
        match execution.result().await {
            Ok(_) => println!(
                "No job was refused (is --parallel below {})?",
                DEMO_FAIL_EVERY - 3
            ),
            Err(e) => {
                print_run_error(&e)?;
                server.set_refuse_every(0);
                let redrive = runtime.redrive(&id).await?;
                println!(
                    "\nThe service is fixed. Redrove {id} (redrive #{}); running again: {}",
                    redrive.count,
                    redrive
                        .children
                        .iter()
                        .map(short)
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                match runtime.wait(&id).await? {
                    Outcome::Succeeded(output) => print_summary(&output.decode()?),
                    other => println!("It ended again without a summary: {other:?}"),
                }
                println!(
                    "\nSame id and history; the children that had succeeded did not run again:\n{}",
                    runtime.tree(&id).await?
                );
            }
        }
    }
    // The file keeps every run's executions: list them by workflow and status.
    let listing = runtime
        .list(ExecutionFilter::new().workflow(main_flow::NAME))
        .await?;
    for row in &listing.corrupt {
        eprintln!("skipped: {row}");
    }
    let mains = listing.executions;
    let succeeded = mains
        .iter()
        .filter(|e| e.status == Status::Succeeded)
        .count();
    println!(
        "{} holds {} {} executions ({succeeded} succeeded) from this and earlier runs.",
        db.display(),
        mains.len(),
        main_flow::NAME
    );
    if let Some(addr) = args.console {
        let console = workflow::console::Console::new(&runtime);
        let listener = console.bind(addr).await?;
        println!(
            "\nThe console is on http://{}/ (start, cancel, redrive); Ctrl-C stops it.",
            listener.local_addr()?
        );
        axum::serve(listener, console.router())
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        return Ok(());
    }
    println!(
        "\nSee them in the console or on the command line (read-only, beside a running program):"
    );
    println!(
        "  cargo run -p workflow-cli -- --db {} console",
        db.display()
    );
    println!(
        "  cargo run -p workflow-cli -- --db {} show {id}",
        db.display()
    );
    println!(
        "  cargo run -p workflow-cli -- --db {} list --status Failed",
        db.display()
    );
    println!(
        "  cargo run --example nesting -- cli graph {} --format svg > main.svg",
        main_flow::NAME
    );
    println!(
        "  cargo run --example nesting -- --console 127.0.0.1:7878   # the console with actions"
    );
    Ok(())
}

/// Logs to stderr, as `RUST_LOG` says (warnings by default); with
/// `OTEL_EXPORTER_OTLP_ENDPOINT` set, also exports the runtime's spans and metrics to
/// that OTLP collector (until the returned guard is dropped, which flushes them).
fn init_logs() -> Result<Option<Telemetry>, TelemetryError> {
    if std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_some() {
        return Telemetry::otlp().map(Some);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    Ok(None)
}

fn heading(title: &str) {
    println!("\n{title}\n{}", "=".repeat(title.chars().count()));
}

/// One line per child: which job it ran, how many status calls it took, how long.
fn print_summary(summary: &Summary) {
    println!(
        "\n  {:<12} {:<8} {:>5} {:>8}  result",
        "child", "job", "polls", "runtime"
    );
    let rows = summary
        .sequential
        .iter()
        .enumerate()
        .map(|(i, r)| (format!("sequential {}", i + 1), r))
        .chain(
            summary
                .parallel
                .iter()
                .enumerate()
                .map(|(i, r)| (format!("parallel {}", i + 1), r)),
        );
    for (name, report) in rows {
        println!(
            "  {name:<12} {:<8} {:>5} {:>5} ms  {}",
            report.job_id.to_string(),
            report.polls,
            report.runtime_ms,
            report.result
        );
    }
    let total: u32 = summary
        .sequential
        .iter()
        .chain(&summary.parallel)
        .map(|r| r.polls)
        .sum();
    println!(
        "  {} jobs, {total} status calls in all.",
        summary.sequential.len() + summary.parallel.len()
    );
}

/// Approves every batch that asks, over the job service's HTTP API, as a person would
/// after reading the request; with `manual`, prints how to and leaves it to you.
async fn approver(base_url: String, manual: bool) {
    let http = reqwest::Client::new();
    let mut seen = std::collections::HashSet::new();
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let Ok(answer) = http.get(format!("{base_url}/approvals")).send().await else {
            continue;
        };
        let pending: Vec<job_server::PendingApproval> = answer.json().await.unwrap_or_default();
        for request in pending {
            if !seen.insert(request.id) {
                continue;
            }
            let url = format!("{base_url}/approvals/{}/approve", request.id);
            if manual {
                println!(
                    "Batch `{}` ({} parallel jobs) waits for your approval:\n  curl -X POST {url}\n  \
                     (or …/reject, with an optional body {{\"by\": \"you\", \"comment\": \"…\"}})",
                    request.label, request.jobs
                );
                continue;
            }
            // A moment to read it.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let by = serde_json::json!({"by": "the example's approver", "comment": "looks fine"});
            match http.post(&url).json(&by).send().await {
                Ok(r) if r.status().is_success() => println!(
                    "Batch `{}` ({} parallel jobs) asked for approval; approved (POST {url})",
                    request.label, request.jobs
                ),
                Ok(r) => println!(
                    "The approval of `{}` was refused: {}",
                    request.label,
                    r.status()
                ),
                Err(e) => println!(
                    "The approval of `{}` did not go through: {e}",
                    request.label
                ),
            }
        }
    }
}

/// Shows a typed workflow error; a fault or a cancellation ends the program with an error.
fn print_run_error(e: &RunError<MainError>) -> Result<(), Box<dyn std::error::Error>> {
    let RunError::Failed(error) = e else {
        return Err(format!("the main execution did not run to its end: {e}").into());
    };
    println!("It failed with a MainError:\n  {error}");
    // The error is a value: match on it to find out what happened.
    let nested = match error {
        MainError::Child(nested) => nested,
        MainError::Approval(CallbackError::TimedOut { timeout }) => {
            println!("  → nobody approved the batch within {timeout:?}");
            return Ok(());
        }
        MainError::Approval(other) => {
            println!("  → the approval did not come: {other}");
            return Ok(());
        }
        MainError::NotApproved { by, .. } => {
            println!("  → matched MainError::NotApproved: {by} said no");
            return Ok(());
        }
    };
    match nested {
        NestedError::Failed {
            child,
            error: JobError::JobFailed { id, reason },
        } => {
            println!(
                "  → matched JobError::JobFailed: child {} ran {id}, which failed: {reason}",
                short(child)
            );
        }
        NestedError::Failed { child, error } => {
            println!(
                "  → child {} failed before its job ended: {error}",
                short(child)
            );
        }
        other => println!("  → {other}"),
    }
    println!("As a value:\n  {error:?}");
    Ok(())
}

/// An excerpt of an execution's history: its first `head` and last `tail` events, with
/// times relative to the first one.
fn print_history(events: &[Event], head: usize, tail: usize, whose: &str) {
    let Some(first) = events.first() else {
        return;
    };
    let total = events.len();
    let (head, tail) = if head + tail >= total {
        (total, 0)
    } else {
        (head, tail)
    };
    println!("History of {whose} ({} of {total} events):", head + tail);
    let line = |event: &Event| {
        let at = event.at.since(first.at);
        let state = event.state.as_deref().unwrap_or("");
        println!(
            "  {:>7.1} ms  {:<18} {state:<20} {}",
            at.as_secs_f64() * 1000.0,
            event.kind.name(),
            detail(&event.kind)
        );
    };
    events[..head].iter().for_each(line);
    if head + tail < total {
        println!("  … {} more", total - head - tail);
    }
    events[total - tail..].iter().for_each(line);
    println!();
}

/// The interesting part of an event, in a few words.
fn detail(kind: &EventKind) -> String {
    match kind {
        EventKind::ChildStarted { child, .. }
        | EventKind::ChildSucceeded { child }
        | EventKind::ChildCancelled { child }
        | EventKind::ChildTimedOut { child } => short(child),
        EventKind::ChildFailed { child, error } => format!("{} {error}", short(child)),
        EventKind::PollAttempt { attempt, outcome } => format!("#{attempt}: {outcome:?}"),
        EventKind::TaskSucceeded { output: Some(v) } => v.to_string(),
        EventKind::TaskFailed { error, name } | EventKind::ExecutionFailed { error, name } => {
            format!("{} {error}", name.as_deref().unwrap_or(""))
        }
        EventKind::RetryScheduled {
            attempt,
            error,
            delay,
        } => format!("#{attempt} after {error}, in {delay:?}"),
        EventKind::ExecutionFaulted { message, name } => format!("{name} {message}"),
        EventKind::CallbackStarted {
            callback, timeout, ..
        } => format!("{callback}, timeout {timeout:?}"),
        EventKind::CallbackCompleted { callback, output } => format!("{callback}: {output}"),
        EventKind::CallbackFailed {
            callback,
            error,
            cause,
        } => format!("{callback}: {error} {cause}"),
        EventKind::CallbackTimedOut { callback, .. } => callback.clone(),
        _ => String::new(),
    }
}

/// A child id without its parent's id: `…/1.0`.
fn short(id: &ExecutionId) -> String {
    match id.as_str().rsplit_once('/') {
        Some((_, tail)) => format!("…/{tail}"),
        None => id.to_string(),
    }
}

/// How the children of the failed execution ended.
fn print_outcomes(tree: &ExecutionTree) {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for child in &tree.children {
        let status = format!("{:?}", child.status);
        match counts.iter_mut().find(|(s, _)| *s == status) {
            Some((_, n)) => *n += 1,
            None => counts.push((status, 1)),
        }
    }
    let counts: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
    println!(
        "Children started: {} ({}); the first failure cancelled the running siblings \
         and no new child started after it.\n",
        tree.children.len(),
        counts.join(", ")
    );
}
