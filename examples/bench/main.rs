//! The benchmark suite: the runtime against the baselines a user would pick instead, side
//! by side in one run, printed as a table (the one in `BENCHMARKS.md`).
//!
//! ```text
//! cargo run --release --example bench              # the full suite (about 15 minutes)
//! cargo run --release --example bench -- --quick   # small sizes (CI runs this, in debug)
//! cargo run --release --example bench -- --only 1,2,4 --runs 7
//! cargo run --release --example bench -- --help
//! ```
//!
//! `BENCH_QUICK=1` is the same as `--quick`. Every figure is the median of `--runs` runs
//! (5 by default; workload 5, two minutes a run, runs `--waiting-runs` times, 5 by default).
//!
//! The workloads (issue 7), all on the nesting example's workflows, given an in-process
//! job service that answers at once through the example's `JobApi` (`workflows.rs`):
//!
//! 1. **Throughput in memory**: `run_job` (start, 3 polls with zero waits, transform) and
//!    `main_flow` (3 sequential children, then `--parallel` children in parallel), 100 in
//!    flight; executions/s and checkpointed state transitions/s (checkpoints per execution
//!    are counted once, from the SQLite store's write counter).
//! 2. **Lower bound**: the same logic as plain tokio `async fn`s (`plain_run_job`), same
//!    service, same concurrency; the ratio is our time per execution over theirs.
//! 3. **Durable**: 1 on the SQLite store (default options: WAL, [`Durability::Process`]),
//!    with 1, 100 and 10,000 executions in flight, and [`Durability::PowerLoss`] at 10,000.
//!    `run_job` runs against its ceiling in the same run: the rows the store writes for it
//!    (recorded from one execution), written by `rusqlite` alone, batched as the writer
//!    batches, with as many executions in flight (`raw.rs`); the ratio is ours / raw.
//! 4. **Peer**: the emitted ASL of the same workflows on `aws-local-stepfunctions`
//!    (`tools/asl/bench.cjs`), its Lambda Tasks answered in-process in JavaScript with the
//!    answers the Rust step handler gave for one execution, waits overridden to 0, one
//!    reused `StateMachine` per workflow, at 1 and at 100 in flight (its faster figure
//!    counts). Skipped, with a message, without Node.
//! 5. **Many waiting executions**: `--waiting` executions (100,000) of `run_job` polling
//!    every second for `--waiting-secs` (60) against a service that answers "not ready"
//!    until then, in a child process of its own: its peak RSS (`VmHWM`) and how late the
//!    polls come (interval between a job's calls minus 1 s: p50/p99/max), over the whole
//!    run and in the steady state; against the plain `async fn`, one task per execution,
//!    and against the same sleeps on `tokio::time` alone (the ratio of the p99s).
//! 6. **Fan-out**: one parent mapping over `--fanout` (10,000) children, max_concurrency
//!    10,000 and 100, in memory and on SQLite: time to completion.
//! 7. **Recovery**: a SQLite file with `--recovery` (100,000) executions waiting on a poll
//!    timer; time from opening the runtime to `recover()` having re-armed every one.
//! 8. **Fine-grained polling**: `run_job` polling every 1 ms, `--fine-polls` attempts:
//!    the achieved interval between calls, p50/p99, against the plain `async fn` and a
//!    `tokio::time::sleep` loop alone (the ratio of the p99s of lateness, past the 1 ms).
//!
//! Benchmarks are not tests: nothing here asserts a time. CI runs `--quick` so that the
//! suite keeps compiling and running.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{json, Value};
use workflow::asl::{serve_json_lines, StepClock, StepHandler};
use workflow::prelude::*;
use workflow::store::{Durability, SqliteOptions, SqliteStore, Store};

mod cpu;
mod raw;
mod workflows;

use workflows::*;

#[derive(Parser, Debug, Clone)]
#[command(about = "Benchmarks of the workflow runtime against its baselines (issue 7)")]
struct Args {
    /// Small sizes, for CI (also `BENCH_QUICK=1`).
    #[arg(long)]
    quick: bool,
    /// Runs per figure; the table shows medians.
    #[arg(long)]
    runs: Option<usize>,
    /// Only these workloads, e.g. `1,2,4`.
    #[arg(long, value_delimiter = ',')]
    only: Vec<u32>,
    /// Executions of `run_job` per run (workloads 1, 2, 4; `main_flow` runs a tenth).
    #[arg(long)]
    n: Option<usize>,
    /// Parallel children of each `main_flow` execution (after its 3 sequential ones).
    #[arg(long, default_value_t = 3)]
    parallel: usize,
    /// Executions per run on SQLite at 10,000 in flight (workload 3).
    #[arg(long)]
    durable_n: Option<usize>,
    /// Only workload 3's configurations with this many executions in flight (1, 100 or
    /// 10000), e.g. to profile one.
    #[arg(long)]
    durable_inflight: Option<usize>,
    /// Only workload 3's configurations with this durability (`process` or
    /// `power-loss`), e.g. to profile one.
    #[arg(long)]
    durability: Option<String>,
    /// Waiting executions (workload 5).
    #[arg(long)]
    waiting: Option<usize>,
    /// How long they poll, in seconds (workload 5).
    #[arg(long)]
    waiting_secs: Option<u64>,
    /// Runs of workload 5, each a minute for ours and one for the baseline [default: as
    /// `--runs`]
    #[arg(long)]
    waiting_runs: Option<usize>,
    /// Children of the fan-out (workload 6).
    #[arg(long)]
    fanout: Option<usize>,
    /// Executions in the recovered file (workload 7).
    #[arg(long)]
    recovery: Option<usize>,
    /// Attempts of the 1 ms poll (workload 8).
    #[arg(long)]
    fine_polls: Option<u32>,
    /// Measure with telemetry on: the runtime's spans through `tracing-opentelemetry`
    /// into a batching span processor whose exporter drops them, and its metrics into a
    /// meter provider (the cost of an attached exporter, without the network).
    #[arg(long)]
    telemetry: bool,
    /// Internal: run workload 5 in this process and print its figures as JSON
    /// (executions, seconds, 0 ours / 1 the plain baseline / 2 raw timers).
    #[arg(long, hide = true, num_args = 3)]
    waiting_child: Vec<u64>,
}

/// The sizes of one run of the suite.
#[derive(Clone, Copy, Debug)]
struct Sizes {
    runs: usize,
    n: usize,
    parallel: usize,
    durable_n: usize,
    durable_inflight: Option<usize>,
    /// `Some(true)`: only `PowerLoss`; `Some(false)`: only `Process`.
    power_loss: Option<bool>,
    waiting: usize,
    waiting_secs: u64,
    waiting_runs: usize,
    fanout: usize,
    recovery: usize,
    fine_polls: u32,
}

impl Sizes {
    fn of(a: &Args) -> Sizes {
        let quick = a.quick || std::env::var_os("BENCH_QUICK").is_some_and(|v| v != "0");
        let pick = |full: usize, small: usize, given: Option<usize>| {
            given.unwrap_or(if quick { small } else { full })
        };
        let runs = pick(5, 1, a.runs).max(1);
        Sizes {
            runs,
            n: pick(10_000, 300, a.n),
            parallel: a.parallel,
            durable_n: pick(20_000, 500, a.durable_n),
            durable_inflight: a.durable_inflight,
            power_loss: a.durability.as_deref().map(|d| d == "power-loss"),
            waiting: pick(100_000, 500, a.waiting),
            waiting_secs: a.waiting_secs.unwrap_or(if quick { 3 } else { 60 }),
            waiting_runs: a.waiting_runs.unwrap_or(runs).max(1),
            fanout: pick(10_000, 300, a.fanout),
            recovery: pick(100_000, 500, a.recovery),
            fine_polls: a.fine_polls.unwrap_or(if quick { 50 } else { 2_000 }),
        }
    }
}

/// One line of the table.
struct Row {
    workload: &'static str,
    what: String,
    figure: String,
    baseline: String,
    ratio: String,
    target: String,
}

/// The name of the bench's tokio threads (workers and blocking threads).
const TOKIO_THREADS: &str = "bench-tokio";

fn main() {
    let args = Args::parse();
    if let [n, secs, plain] = args.waiting_child[..] {
        let mode = match plain {
            0 => Waiter::Ours,
            1 => Waiter::Plain,
            _ => Waiter::RawTimers,
        };
        waiting_child(n as usize, secs, mode);
        return;
    }
    let s = Sizes::of(&args);
    let on = |w: u32| args.only.is_empty() || args.only.contains(&w);
    let _telemetry = args.telemetry.then(telemetry);
    eprintln!("sizes: {s:?}");
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Its workers' and blocking threads' times are read by this name (`cpu.rs`).
        .thread_name(TOKIO_THREADS)
        .build()
        .expect("tokio runtime");
    let scratch = tempfile::Builder::new()
        .prefix("bench-")
        .tempdir_in(target_dir())
        .expect("a scratch directory under target/");
    let mut rows = Vec::new();

    let per_exec = tokio.block_on(transitions_per_execution(scratch.path(), s.parallel));
    eprintln!(
        "checkpoints per execution: run_job {}, main_flow with its children {}",
        per_exec.0, per_exec.1
    );
    let mut ours_mem = None;
    if on(1) || on(2) || on(4) {
        ours_mem = Some(tokio.block_on(throughput(&mut rows, s, per_exec, on(2))));
    }
    if on(3) {
        tokio.block_on(durable(&mut rows, s, per_exec, scratch.path()));
    }
    if on(4) {
        peer(&mut rows, s, ours_mem, scratch.path());
    }
    if on(5) {
        waiting(&mut rows, s);
    }
    if on(6) {
        tokio.block_on(fan_out(&mut rows, s, scratch.path()));
    }
    if on(7) {
        tokio.block_on(recovery(&mut rows, s, scratch.path()));
    }
    if on(8) {
        tokio.block_on(fine_polling(&mut rows, s, scratch.path()));
    }
    print_table(&rows, s);
}

/// Spans to an exporter that drops them (batched, as an OTLP exporter is) and metrics
/// to an in-memory reader: what telemetry costs the runtime, the network aside.
fn telemetry() -> workflow::telemetry::Telemetry {
    use opentelemetry_sdk::error::OTelSdkResult;
    use opentelemetry_sdk::trace::{SpanData, SpanExporter};

    #[derive(Debug)]
    struct Discard;
    impl SpanExporter for Discard {
        async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
            Ok(())
        }
    }
    let tracer = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(Discard)
        .build();
    let metrics = opentelemetry_sdk::metrics::InMemoryMetricExporter::default();
    let meter = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
        .with_reader(opentelemetry_sdk::metrics::PeriodicReader::builder(metrics).build())
        .build();
    workflow::telemetry::Telemetry::install(tracer, meter).expect("the only subscriber")
}

/// Adds a row, and shows it at once on stderr (a long run keeps what it measured).
fn push(rows: &mut Vec<Row>, row: Row) {
    eprintln!(
        "| {} | {} | {} | {} | {} | {} |",
        row.workload, row.what, row.figure, row.baseline, row.ratio, row.target
    );
    rows.push(row);
}

fn target_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    std::fs::create_dir_all(&dir).expect("target/ exists");
    dir
}

// =======================================================================================
// Helpers
// =======================================================================================

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

fn fmt_rate(x: f64) -> String {
    if x >= 10_000.0 {
        format!("{:.0}", x)
            .as_bytes()
            .rchunks(3)
            .rev()
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect::<Vec<_>>()
            .join(",")
    } else if x >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "NOT met"
    }
}

fn req(i: usize) -> JobRequest {
    JobRequest {
        parameter1: format!("job-{i}"),
        parameter2: 3,
    }
}

fn batch(i: usize, parallel: usize) -> Batch {
    Batch {
        label: format!("batch-{i}"),
        steps: [3, 3, 3],
        parallel: (0..parallel).map(req).collect(),
    }
}

/// The service of workloads 1–4 and 6: instant, ready at the third status call, no wait.
fn instant_jobs() -> Arc<JobService> {
    let jobs = Arc::new(Jobs::new(Readiness::AfterPolls(3)));
    service(&jobs, Duration::ZERO, Duration::from_secs(600))
}

/// The example's `JobService` answered by `jobs`, polling every `every` for `timeout`.
fn service(jobs: &Arc<Jobs>, every: Duration, timeout: Duration) -> Arc<JobService> {
    Arc::new(JobService::with_api(Arc::clone(jobs)).polling(every, timeout))
}

fn runtime(svc: &Arc<JobService>, store: Option<SqliteStore>) -> Runtime {
    match store {
        Some(store) => runtime_on(svc, store),
        None => builder(svc)
            .build()
            .expect("every workflow has its dependency"),
    }
}

fn runtime_on(svc: &Arc<JobService>, store: impl Store) -> Runtime {
    builder(svc)
        .store(store)
        .build()
        .expect("every workflow has its dependency")
}

fn builder(svc: &Arc<JobService>) -> workflow::Builder {
    Runtime::builder()
        .register(main_flow)
        .register(fan_out_all)
        .register(fan_out_100)
        .dependency_arc(Arc::clone(svc))
        // The fan-out's input (10,000 requests) and state (10,000 reports) are over the
        // 256 KiB Step Functions limit the runtime keeps by default.
        .payload_limit(64 << 20)
}

fn sqlite(dir: &Path, name: &str, durability: Durability) -> SqliteStore {
    let path = dir.join(format!("{name}.sqlite"));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    SqliteStore::open_with(&path, SqliteOptions::new().durability(durability))
        .expect("the SQLite store opens")
}

/// Runs `task(0..n)` with at most `inflight` at once, each on a task of its own; the
/// wall-clock time it took.
///
/// The loop that starts them runs on a runtime task too: on the thread of `block_on` it
/// would be woken across threads at every completion, a context switch per execution
/// in every figure, ours and the baselines' alike.
async fn bounded<F, Fut>(n: usize, inflight: usize, task: F) -> Duration
where
    F: Fn(usize) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        let limit = Arc::new(tokio::sync::Semaphore::new(inflight.max(1)));
        let mut set = tokio::task::JoinSet::new();
        let t0 = Instant::now();
        for i in 0..n {
            let permit = Arc::clone(&limit).acquire_owned().await.expect("open");
            let fut = task(i);
            set.spawn(async move {
                fut.await;
                drop(permit);
            });
            while let Some(r) = set.try_join_next() {
                r.expect("no task panics");
            }
        }
        while let Some(r) = set.join_next().await {
            r.expect("no task panics");
        }
        t0.elapsed()
    })
    .await
    .expect("the harness does not panic")
}

async fn run_nested(rt: &Runtime, n: usize, inflight: usize) -> Duration {
    let rt = rt.clone();
    bounded(n, inflight, move |i| {
        let rt = rt.clone();
        async move {
            let report = rt.start(run_job, req(i)).await.expect("starts");
            report.result().await.expect("succeeds");
        }
    })
    .await
}

async fn run_main(rt: &Runtime, n: usize, inflight: usize, parallel: usize) -> Duration {
    let rt = rt.clone();
    bounded(n, inflight, move |i| {
        let rt = rt.clone();
        async move {
            let exec = rt
                .start(main_flow, batch(i, parallel))
                .await
                .expect("starts");
            exec.result().await.expect("succeeds");
        }
    })
    .await
}

/// Checkpoints (state transitions, the terminal one included) per execution of
/// `run_job`, and per execution of `main_flow` counting its children's: the SQLite
/// store's write counter minus the creations.
async fn transitions_per_execution(dir: &Path, parallel: usize) -> (f64, f64) {
    let svc = instant_jobs();
    let store = sqlite(dir, "calibrate", Durability::Process);
    let rt = runtime(&svc, Some(store.clone()));
    run_nested(&rt, 1, 1).await;
    let nested = store.stats().writes - 1;
    run_main(&rt, 1, 1, parallel).await;
    let children = 3 + parallel as u64;
    let main = store.stats().writes - nested - 1 - (1 + children);
    rt.shutdown().await;
    (nested as f64, main as f64)
}

// =======================================================================================
// 1, 2: throughput in memory, against plain async fns
// =======================================================================================

/// Our in-memory executions/s of (`run_job`, `main_flow`), for workload 4's ratio.
async fn throughput(rows: &mut Vec<Row>, s: Sizes, per: (f64, f64), plain: bool) -> (f64, f64) {
    let inflight = 100;
    let n_main = (s.n / 10).max(1);
    let (mut ours_n, mut ours_m, mut plain_n, mut plain_m) = (vec![], vec![], vec![], vec![]);
    for run in 0..s.runs {
        let svc = instant_jobs();
        let rt = runtime(&svc, None);
        ours_n.push(run_nested(&rt, s.n, inflight).await.as_secs_f64());
        rt.shutdown().await;
        let rt = runtime(&svc, None);
        ours_m.push(
            run_main(&rt, n_main, inflight, s.parallel)
                .await
                .as_secs_f64(),
        );
        rt.shutdown().await;
        if plain {
            let svc = instant_jobs();
            let run_svc = Arc::clone(&svc);
            let t = bounded(s.n, inflight, move |i| {
                let svc = Arc::clone(&run_svc);
                async move {
                    plain_run_job(&svc, req(i)).await.expect("succeeds");
                }
            })
            .await;
            plain_n.push(t.as_secs_f64());
            let t = bounded(n_main, inflight, move |i| {
                let svc = Arc::clone(&svc);
                async move {
                    plain_main_flow(svc, batch(i, s.parallel))
                        .await
                        .expect("succeeds");
                }
            })
            .await;
            plain_m.push(t.as_secs_f64());
        }
        eprintln!("workloads 1/2: run {} of {} done", run + 1, s.runs);
    }
    let mut rates = (0.0, 0.0);
    for (name, n, ours, plain, per, slot) in [
        ("run_job", s.n, ours_n, plain_n, per.0, &mut rates.0),
        ("main_flow", n_main, ours_m, plain_m, per.1, &mut rates.1),
    ] {
        let t = median(ours);
        let rate = n as f64 / t;
        *slot = rate;
        push(
            rows,
            Row {
                workload: "1 memory",
                what: format!("{name}, {n} executions, 100 in flight"),
                figure: format!(
                    "{} exec/s, {} transitions/s",
                    fmt_rate(rate),
                    fmt_rate(rate * per)
                ),
                baseline: String::new(),
                ratio: String::new(),
                target: String::new(),
            },
        );
        if !plain.is_empty() {
            let tp = median(plain);
            let ratio = t / tp;
            push(
                rows,
                Row {
                    workload: "2 lower bound",
                    what: format!("{name} as a plain async fn"),
                    figure: format!(
                        "ours {:.2} µs/exec",
                        t / n as f64 * 1e6 * rows_factor(name, s.parallel)
                    ),
                    baseline: format!(
                        "{:.2} µs/exec",
                        tp / n as f64 * 1e6 * rows_factor(name, s.parallel)
                    ),
                    ratio: format!("{ratio:.1}×"),
                    target: format!("≤ 3×: {}", verdict(ratio <= 3.0)),
                },
            );
        }
    }
    rates
}

/// Per execution means per `run_job` execution: a `main_flow` counts its children.
fn rows_factor(name: &str, parallel: usize) -> f64 {
    if name == "main_flow" {
        1.0 / (4 + parallel) as f64
    } else {
        1.0
    }
}

// =======================================================================================
// 3: durable throughput
// =======================================================================================

async fn durable(rows: &mut Vec<Row>, s: Sizes, per: (f64, f64), dir: &Path) {
    // The raw baseline's rows: those of one `run_job` on the store, recorded.
    let trace = {
        // Job numbers of five digits, as in the runs at 10,000 in flight (the state and
        // events carry the job's id); at 1 and 100 in flight ours have fewer digits.
        let jobs = Arc::new(Jobs::new(Readiness::AfterPolls(3)).numbered_from(10_000));
        let svc = service(&jobs, Duration::ZERO, Duration::from_secs(600));
        let recorder = raw::Recorder::new(sqlite(dir, "trace", Durability::Process));
        let rt = runtime_on(&svc, recorder.clone());
        run_nested(&rt, 1, 1).await;
        rt.shutdown().await;
        Arc::new(recorder.trace())
    };
    assert_eq!(
        trace.checkpoints() as f64,
        per.0,
        "the trace has run_job's checkpoints"
    );
    eprintln!(
        "workload 3: the raw baseline writes {} bytes of values per run_job execution",
        trace.bytes()
    );
    use Durability::{PowerLoss, Process};
    let configs: [(&str, usize, usize, Durability); 6] = [
        ("run_job", 1, (s.durable_n / 25).max(1), Process),
        ("run_job", 100, (s.durable_n / 5).max(1), Process),
        ("run_job", 10_000, s.durable_n, Process),
        ("run_job", 10_000, s.durable_n, PowerLoss),
        ("main_flow", 1, (s.durable_n / 250).max(1), Process),
        ("main_flow", 100, (s.durable_n / 50).max(1), Process),
    ];
    for (name, inflight, n, durability) in configs {
        if s.durable_inflight.is_some_and(|only| only != inflight)
            || s.power_loss.is_some_and(|p| p != (durability == PowerLoss))
        {
            continue;
        }
        let (mut times, mut raw_times) = (Vec::new(), Vec::new());
        let (mut batch, mut raw_batch) = (Vec::new(), Vec::new());
        let mut busy = Vec::new();
        // What the CPU time of each side allows, run by run (see `Bounds`).
        let mut bounds = Vec::new();
        for run in 0..s.runs {
            let svc = instant_jobs();
            let store = sqlite(dir, "durable", durability);
            let rt = runtime(&svc, Some(store.clone()));
            let before = cpu::read();
            let t = if name == "run_job" {
                run_nested(&rt, n, inflight).await
            } else {
                run_main(&rt, n, inflight, s.parallel).await
            };
            // While the store's threads still run: an ended thread has no times left.
            let ours_threads = cpu::between(&before, &cpu::read());
            rt.shutdown().await;
            times.push(t.as_secs_f64());
            let stats = store.stats();
            batch.push(stats.writes as f64 / stats.transactions.max(1) as f64);
            busy.push(stats.writing.as_secs_f64() / t.as_secs_f64());
            let ours_file = store.path().to_owned();
            drop(store);
            if name != "run_job" {
                continue;
            }
            // Interleaved with ours, run by run: the machine's speed drifts between
            // processes and over minutes, and a ratio needs both sides in the same state.
            let (trace, path) = (Arc::clone(&trace), dir.join("raw.sqlite"));
            let before = cpu::read();
            let r = tokio::task::spawn_blocking(move || {
                raw::replay(&path, &trace, n, inflight, durability, run as u64 + 1)
            })
            .await
            .expect("the raw baseline runs");
            let raw_threads = cpu::between(&before, &cpu::read());
            if run == 0 {
                eprintln!(
                    "workload 3: ours wrote {}; raw wrote {}",
                    raw::footprint(&ours_file),
                    raw::footprint(&dir.join("raw.sqlite"))
                );
            }
            if let Some(b) = Bounds::of(&ours_threads, r.elapsed) {
                bounds.push(b);
            }
            raw_times.push(r.elapsed.as_secs_f64());
            raw_batch.push(r.writes as f64 / r.transactions.max(1) as f64);
            eprintln!(
                "workload 3: run {}: ours {:.3} s, raw {:.3} s ({:.2}); writes per commit: ours {:.0}, raw {:.0}",
                run + 1,
                t.as_secs_f64(),
                r.elapsed.as_secs_f64(),
                r.elapsed.as_secs_f64() / t.as_secs_f64(),
                batch[run],
                raw_batch[run],
            );
            // The runtime's workers and the replay's thread are tokio's, of one name;
            // while one side runs, the other's threads are idle.
            if let (Some(writer), Some(workers), Some(replay)) = (
                cpu::describe(&ours_threads, "sqlite-writer"),
                cpu::describe(&ours_threads, TOKIO_THREADS),
                cpu::describe(&raw_threads, TOKIO_THREADS),
            ) {
                eprintln!(
                    "workload 3: run {}: ours: the writer thread {writer} (in a transaction \
                     {:.0} % of the run), the runtime's workers {workers}; raw: its thread \
                     {replay}",
                    run + 1,
                    busy[run] * 100.0,
                );
            }
        }
        let rate = n as f64 / median(times);
        let tps = rate * if name == "run_job" { per.0 } else { per.1 };
        let sync = match durability {
            PowerLoss => "PowerLoss",
            _ => "Process",
        };
        let mut target = Vec::new();
        let (mut baseline, mut ratio) = (String::new(), String::new());
        if name == "run_job" {
            let raw_tps = n as f64 * per.0 / median(raw_times);
            let r = tps / raw_tps;
            baseline = format!(
                "rusqlite alone, the same rows ({}): {} transitions/s, {:.0} writes per commit",
                if durability == PowerLoss {
                    "synchronous=FULL"
                } else {
                    "synchronous=NORMAL"
                },
                fmt_rate(raw_tps),
                median(raw_batch),
            );
            ratio = format!("{r:.2}");
            if !bounds.is_empty() {
                let by_cpu = median(bounds.iter().map(|b| b.cpu).collect());
                let by_writer = median(bounds.iter().map(|b| b.writer).collect());
                ratio.push_str(&format!(
                    " (at most {by_cpu:.2} with this run's CPU time on {} cores, \
                     {by_writer:.2} with the writer's alone)",
                    cores()
                ));
            }
            if inflight == 10_000 && durability == Process {
                target.push(format!("≥ 0.7 of raw: {}", verdict(r >= 0.7)));
            }
        }
        if name == "run_job" && inflight == 10_000 && durability == Process {
            target.push(format!(
                "≥ 50,000 transitions/s: {}",
                verdict(tps >= 50_000.0)
            ));
        }
        push(
            rows,
            Row {
                workload: "3 SQLite",
                what: format!("{name}, {n} executions, {inflight} in flight, {sync}"),
                figure: format!(
                    "{} exec/s, {} transitions/s, {:.0} writes per commit, the writer in a \
                     transaction {:.0} % of the time",
                    fmt_rate(rate),
                    fmt_rate(tps),
                    median(batch),
                    median(busy) * 100.0
                ),
                baseline,
                ratio,
                target: target.join("; "),
            },
        );
        eprintln!("workload 3: {name} at {inflight} in flight ({sync}) done");
    }
}

/// The best ratio to raw that one run's CPU time allows, whatever the scheduling.
///
/// Ours cannot end before all of its threads' time on a CPU has been spent on the
/// machine's cores, nor before its writer thread's has: so `raw's time / (ours' CPU time /
/// cores)` and `raw's time / ours' writer's CPU time` bound the ratio from above. The
/// first is what cutting waits and idle cores could reach on this machine; the second,
/// what a machine with a core to spare for the writer could.
struct Bounds {
    cpu: f64,
    writer: f64,
}

impl Bounds {
    fn of(ours: &BTreeMap<String, cpu::Times>, raw_elapsed: Duration) -> Option<Bounds> {
        let all: Duration = ours.values().map(|t| t.running).sum();
        let writer = ours.get("sqlite-writer")?.running;
        if all.is_zero() || writer.is_zero() {
            return None;
        }
        let raw = raw_elapsed.as_secs_f64();
        Some(Bounds {
            cpu: raw * cores() as f64 / all.as_secs_f64(),
            writer: raw / writer.as_secs_f64(),
        })
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

// =======================================================================================
// 4: the peer, aws-local-stepfunctions
// =======================================================================================

fn node_tools() -> Result<PathBuf, String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/asl");
    let node = Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        return Err("Node.js is not installed".into());
    }
    if !dir.join("node_modules/aws-local-stepfunctions").exists() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .map_err(|e| format!("npm does not run: {e}"))?;
        if !status.success() {
            return Err("`npm ci` in tools/asl failed".into());
        }
    }
    Ok(dir)
}

fn peer(rows: &mut Vec<Row>, s: Sizes, ours: Option<(f64, f64)>, dir: &Path) {
    let tools = match node_tools() {
        Ok(tools) => tools,
        Err(why) => {
            eprintln!("\n!!!!!!!! SKIPPED workload 4: {why}; the peer did not run !!!!!!!!\n");
            push(
                rows,
                Row {
                    workload: "4 peer",
                    what: "aws-local-stepfunctions".into(),
                    figure: format!("skipped: {why}"),
                    baseline: String::new(),
                    ratio: String::new(),
                    target: String::new(),
                },
            );
            return;
        }
    };
    // Signed, as deployed; and a child takes its parent's id for it (the recording's
    // `{parent}/{batch}.{index}` execution ids) only with a signed ticket.
    let handler = StepHandler::builder()
        .register(run_job)
        .register(main_flow)
        .dependency_arc(instant_jobs())
        .clock(StepClock::Virtual)
        .signing_key("the benchmark's step handler signing key")
        .build()
        .expect("every dependency and child is registered");
    let machines: serde_json::Map<String, Value> = handler
        .state_machines()
        .iter()
        .map(|m| (m.workflow().to_owned(), m.definition().clone()))
        .collect();
    let (nested, main) = (run_job::NAME, main_flow::NAME);
    let n_main = (s.n / 10).max(1);
    let nested_input = serde_json::to_value(req(0)).expect("serializes");
    let main_input = serde_json::to_value(batch(0, s.parallel)).expect("serializes");
    let plan = json!({
        "machines": machines,
        "record": [
            {"workflow": nested, "input": nested_input, "id": "record-nested"},
            {"workflow": main, "input": main_input, "id": "record-main"},
        ],
        // Each at 1 and at 100 in flight; the faster counts.
        "runs": [
            {"label": "run_job", "workflow": nested, "input": nested_input, "n": s.n, "inflight": 1, "repeat": s.runs},
            {"label": "run_job", "workflow": nested, "input": nested_input, "n": s.n, "inflight": 100, "repeat": s.runs},
            {"label": "main_flow", "workflow": main, "input": main_input, "n": n_main, "inflight": 1, "repeat": s.runs},
            {"label": "main_flow", "workflow": main, "input": main_input, "n": n_main, "inflight": 100, "repeat": s.runs},
        ],
    });
    let plan_file = dir.join("peer-plan.json");
    let results_file = dir.join("peer-results.json");
    std::fs::write(&plan_file, plan.to_string()).expect("plan written");
    let mut node = Command::new("node")
        .arg(tools.join("bench.cjs"))
        .arg(&plan_file)
        .arg(&results_file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node runs");
    let requests = BufReader::new(node.stdout.take().expect("piped"));
    let answers = node.stdin.take().expect("piped");
    serve_json_lines(&handler, requests, answers).expect("the step handler serves");
    assert!(
        node.wait().expect("node ends").success(),
        "bench.cjs failed (see its stderr)"
    );
    let results: Vec<Value> =
        serde_json::from_slice(&std::fs::read(&results_file).expect("results written"))
            .expect("results are JSON");
    let rate_of = |r: &Value, n: usize| {
        let secs: Vec<f64> = r["seconds"]
            .as_array()
            .expect("seconds")
            .iter()
            .filter_map(Value::as_f64)
            .collect();
        n as f64 / median(secs)
    };
    for (runs, n, ours) in [
        (&results[0..2], s.n, ours.map(|o| o.0)),
        (&results[2..4], n_main, ours.map(|o| o.1)),
    ] {
        let (one, hundred) = (rate_of(&runs[0], n), rate_of(&runs[1], n));
        let (rate, inflight) = if one >= hundred {
            (one, 1)
        } else {
            (hundred, 100)
        };
        eprintln!("peer: {one:.0} exec/s at 1 in flight, {hundred:.0} at 100");
        let label = runs[0]["label"].as_str().unwrap_or_default();
        let (ratio, target) = match ours {
            Some(o) => (
                format!("{:.1}×", o / rate),
                if label == "run_job" {
                    format!("ours ≥ 20×: {}", verdict(o / rate >= 20.0))
                } else {
                    String::new()
                },
            ),
            None => (String::new(), String::new()),
        };
        push(rows, Row {
            workload: "4 peer",
            what: format!("{label} as ASL on aws-local-stepfunctions, {n} executions, {inflight} in flight (its faster of 1 and 100)"),
            figure: ours.map(|o| format!("ours {} exec/s", fmt_rate(o))).unwrap_or_default(),
            baseline: format!("{} exec/s", fmt_rate(rate)),
            ratio,
            target,
        });
    }
    eprintln!("workload 4 done");
}

// =======================================================================================
// 5: many waiting executions (in a child process, for its own peak RSS)
// =======================================================================================

fn waiting(rows: &mut Vec<Row>, s: Sizes) {
    // Each run in a child process of its own, so that its peak RSS is its own; ours and
    // the plain baseline alternate.
    let run = |mode: Waiter| {
        let out = Command::new(std::env::current_exe().expect("own path"))
            .arg("--waiting-child")
            .arg(s.waiting.to_string())
            .arg(s.waiting_secs.to_string())
            .arg((mode as u8).to_string())
            .stderr(Stdio::inherit())
            .output()
            .expect("the child process runs");
        assert!(out.status.success(), "workload 5's process failed");
        serde_json::from_slice::<Value>(&out.stdout).expect("JSON figures")
    };
    let (mut ours, mut plain, mut raw) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..s.waiting_runs {
        ours.push(run(Waiter::Ours));
        plain.push(run(Waiter::Plain));
        raw.push(run(Waiter::RawTimers));
    }
    // The median of one figure over the runs; lateness in ms.
    let m = |runs: &[Value], k: &str| {
        median(
            runs.iter()
                .map(|v| v[k].as_f64().unwrap_or(f64::NAN))
                .collect(),
        )
    };
    let late = |runs: &[Value], prefix: &str| {
        let ms = |q: &str| m(runs, &format!("{prefix}_{q}_us")) / 1e3;
        format!(
            "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            ms("p50"),
            ms("p99"),
            ms("max")
        )
    };
    let rss_mib = m(&ours, "vm_hwm_kib") / 1024.0;
    let (p99, steady99) = (m(&ours, "late_p99_us"), m(&ours, "steady_p99_us"));
    let steady_ratio = steady99 / m(&raw, "steady_p99_us");
    let whole_ratio = p99 / m(&raw, "late_p99_us");
    push(
        rows,
        Row {
            workload: "5 waiting",
            what: format!(
                "{} executions polling every 1 s for {} s, in memory (started in {:.1} s)",
                s.waiting,
                s.waiting_secs,
                m(&ours, "start_secs")
            ),
            figure: format!(
                "peak RSS {rss_mib:.0} MiB; lateness over the whole run {}; in the steady \
                 state (all started, none ready yet) {}",
                late(&ours, "late"),
                late(&ours, "steady"),
            ),
            baseline: format!(
                "plain async fn, one task each: peak RSS {:.0} MiB; lateness over the \
                 whole run {}; in the steady state {}. Raw tokio::time (the same sleeps, \
                 one task each, no workflow): peak RSS {:.0} MiB; lateness over the whole run \
                 {}; in the steady state {}",
                m(&plain, "vm_hwm_kib") / 1024.0,
                late(&plain, "late"),
                late(&plain, "steady"),
                m(&raw, "vm_hwm_kib") / 1024.0,
                late(&raw, "late"),
                late(&raw, "steady"),
            ),
            ratio: format!(
                "lateness p99 ours / raw: {steady_ratio:.2} in the steady state, \
                 {whole_ratio:.2} over the whole run"
            ),
            target: format!(
                "≤ 1 GiB: {}; p99 ≤ 20 ms: {} over the whole run, {} in the steady state; \
                 p99 ours / raw ≤ 1.2 in the steady state: {}",
                verdict(rss_mib <= 1024.0),
                verdict(p99 <= 20_000.0),
                verdict(steady99 <= 20_000.0),
                verdict(steady_ratio <= 1.2),
            ),
        },
    );
}

/// What waits in a run of workload 5.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Waiter {
    Ours = 0,
    /// The plain `async fn`, one task each.
    Plain = 1,
    /// The same sleeps on `tokio::time` alone, one task each.
    RawTimers = 2,
}

fn waiting_child(n: usize, secs: u64, mode: Waiter) {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let figures = tokio.block_on(async {
        let every = Duration::from_secs(1);
        let t0 = Instant::now();
        let end = t0 + Duration::from_secs(secs);
        let jobs = Arc::new(Jobs::new(Readiness::At(end)).measured());
        let svc = service(&jobs, every, Duration::from_secs(secs + 30));
        let start_secs;
        if mode == Waiter::RawTimers {
            let tasks: Vec<_> = (0..n)
                .map(|i| {
                    let jobs = Arc::clone(&jobs);
                    tokio::spawn(async move { raw_timer_loop(&jobs, &req(i), every).await })
                })
                .collect();
            start_secs = t0.elapsed().as_secs_f64();
            jobs.intervals().expect("measured").steady(end);
            for t in tasks {
                t.await.expect("joins");
            }
        } else if mode == Waiter::Plain {
            let svc = Arc::new(svc);
            let tasks: Vec<_> = (0..n)
                .map(|i| {
                    let svc = Arc::clone(&svc);
                    tokio::spawn(async move { plain_run_job(&svc, req(i)).await })
                })
                .collect();
            start_secs = t0.elapsed().as_secs_f64();
            jobs.intervals().expect("measured").steady(end);
            for t in tasks {
                t.await.expect("joins").expect("succeeds");
            }
        } else {
            let rt = runtime(&svc, None);
            let mut execs = Vec::with_capacity(n);
            for i in 0..n {
                execs.push(rt.start(run_job, req(i)).await.expect("starts"));
            }
            start_secs = t0.elapsed().as_secs_f64();
            eprintln!("workload 5: {n} executions started in {start_secs:.1} s");
            jobs.intervals().expect("measured").steady(end);
            for e in execs {
                e.result().await.expect("succeeds");
            }
        }
        let iv = jobs.intervals().expect("measured");
        let late = |d: Duration| d.saturating_sub(every).as_secs_f64() * 1e6;
        json!({
            "vm_hwm_kib": vm_hwm_kib(),
            "late_p50_us": late(iv.all.quantile(0.5)),
            "late_p99_us": late(iv.all.quantile(0.99)),
            "late_max_us": late(iv.all.max()),
            "intervals": iv.all.count(),
            "steady_p50_us": late(iv.steady.quantile(0.5)),
            "steady_p99_us": late(iv.steady.quantile(0.99)),
            "steady_max_us": late(iv.steady.max()),
            "start_secs": start_secs,
        })
    });
    println!("{figures}");
}

/// Peak resident set size of this process, from `/proc/self/status`.
fn vm_hwm_kib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(f64::NAN)
}

// =======================================================================================
// 6: fan-out
// =======================================================================================

async fn fan_out(rows: &mut Vec<Row>, s: Sizes, dir: &Path) {
    for durable in [false, true] {
        for all in [true, false] {
            let mut times = Vec::new();
            for _ in 0..s.runs {
                let svc = instant_jobs();
                let store = durable.then(|| sqlite(dir, "fanout", Durability::Process));
                let rt = runtime(&svc, store);
                let jobs: Vec<JobRequest> = (0..s.fanout).map(req).collect();
                let t0 = Instant::now();
                let done = if all {
                    rt.start(fan_out_all, jobs)
                        .await
                        .expect("starts")
                        .result()
                        .await
                } else {
                    rt.start(fan_out_100, jobs)
                        .await
                        .expect("starts")
                        .result()
                        .await
                };
                times.push(t0.elapsed().as_secs_f64());
                assert_eq!(done.expect("succeeds"), s.fanout);
                rt.shutdown().await;
            }
            let t = median(times);
            let (store, limit) = (
                if durable { "SQLite" } else { "memory" },
                if all { "10,000" } else { "100" },
            );
            let budget = if durable { 10.0 } else { 2.0 };
            push(
                rows,
                Row {
                    workload: "6 fan-out",
                    what: format!("{} children, max_concurrency {limit}, {store}", s.fanout),
                    figure: format!("{t:.3} s"),
                    baseline: String::new(),
                    ratio: String::new(),
                    target: format!("≤ {budget} s: {}", verdict(t <= budget)),
                },
            );
            eprintln!("workload 6: {store}, {limit} done");
        }
    }
}

// =======================================================================================
// 7: recovery
// =======================================================================================

async fn recovery(rows: &mut Vec<Row>, s: Sizes, dir: &Path) {
    let path = dir.join("recovery.sqlite");
    let parked = || {
        let jobs = Arc::new(Jobs::new(Readiness::AfterPolls(3)));
        let svc = service(&jobs, Duration::from_secs(3600), Duration::from_secs(7200));
        (jobs, svc)
    };
    {
        let _ = std::fs::remove_file(&path);
        let (jobs, svc) = parked();
        let rt = runtime(
            &svc,
            Some(SqliteStore::open(&path).expect("the store opens")),
        );
        let t0 = Instant::now();
        let start_rt = rt.clone();
        bounded(s.recovery, 1_000, move |i| {
            let rt = start_rt.clone();
            async move {
                // Started, not awaited: it ends up waiting an hour for its first poll.
                let _ = rt.start(run_job, req(i)).await.expect("starts");
            }
        })
        .await;
        while jobs.started() < s.recovery as u64 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Let the last checkpoints (the poll's first wait) reach the file.
        tokio::time::sleep(Duration::from_millis(500)).await;
        rt.shutdown().await;
        eprintln!(
            "workload 7: {} waiting executions written in {:.1} s",
            s.recovery,
            t0.elapsed().as_secs_f64()
        );
    }
    let (mut times, mut armed) = (Vec::new(), 0);
    for _ in 0..s.runs {
        let (_, svc) = parked();
        let t0 = Instant::now();
        let rt = Runtime::builder()
            .register(main_flow)
            .dependency_arc(Arc::clone(&svc))
            .sqlite(&path)
            .build()
            .expect("the store opens");
        let report = rt.recover().await.expect("recovers");
        times.push(t0.elapsed().as_secs_f64());
        armed = report.timers_armed + report.in_flight + report.timers_due;
        rt.shutdown().await;
    }
    let t = median(times);
    push(
        rows,
        Row {
            workload: "7 recovery",
            what: format!("{} waiting executions in a SQLite file", s.recovery),
            figure: format!("{t:.3} s to {armed} re-armed"),
            baseline: String::new(),
            ratio: String::new(),
            target: format!("≤ 3 s: {}", verdict(t <= 3.0)),
        },
    );
}

// =======================================================================================
// 8: fine-grained polling
// =======================================================================================

async fn fine_polling(rows: &mut Vec<Row>, s: Sizes, dir: &Path) {
    let every = Duration::from_millis(1);
    let measured = || {
        let jobs = Arc::new(Jobs::new(Readiness::AfterPolls(s.fine_polls)).measured());
        let svc = service(&jobs, every, Duration::from_secs(600));
        (jobs, svc)
    };
    const WHICH: [&str; 4] = ["memory", "SQLite", "plain", "raw"];
    let (mut p50, mut p99) = (vec![Vec::new(); 4], vec![Vec::new(); 4]);
    // Interleaved run by run, so that a ratio compares the machine in one state.
    for _ in 0..s.runs {
        for (w, which) in WHICH.iter().enumerate() {
            let (jobs, svc) = measured();
            match *which {
                "plain" => {
                    plain_run_job(&svc, req(0)).await.expect("succeeds");
                }
                "raw" => {
                    let jobs = Arc::clone(&jobs);
                    tokio::spawn(async move { raw_timer_loop(&jobs, &req(0), every).await })
                        .await
                        .expect("joins");
                }
                _ => {
                    let store =
                        (*which == "SQLite").then(|| sqlite(dir, "fine", Durability::Process));
                    let rt = runtime(&svc, store);
                    run_nested(&rt, 1, 1).await;
                    rt.shutdown().await;
                }
            }
            let iv = jobs.intervals().expect("measured");
            p50[w].push(iv.all.quantile(0.5).as_secs_f64());
            p99[w].push(iv.all.quantile(0.99).as_secs_f64());
        }
    }
    let figures: Vec<(Duration, Duration)> = (0..4)
        .map(|w| {
            (
                Duration::from_secs_f64(median(p50[w].clone())),
                Duration::from_secs_f64(median(p99[w].clone())),
            )
        })
        .collect();
    let (plain, raw) = (figures[2], figures[3]);
    // Lateness: the interval past the 1 ms asked for.
    let late = |d: Duration| d.saturating_sub(every).as_secs_f64();
    for (which, (p50, p99)) in WHICH.iter().zip(&figures).take(2) {
        let ratio = late(*p99) / late(raw.1);
        push(
            rows,
            Row {
                workload: "8 1 ms polls",
                what: format!("{} attempts every 1 ms, {which}", s.fine_polls),
                figure: format!("p50 {}, p99 {}", ms(*p50), ms(*p99)),
                baseline: format!(
                    "plain async fn: p50 {}, p99 {}; raw tokio::time sleep loop: p50 {}, p99 {}",
                    ms(plain.0),
                    ms(plain.1),
                    ms(raw.0),
                    ms(raw.1)
                ),
                ratio: format!("lateness p99 ours / raw: {ratio:.2}"),
                target: format!(
                    "p99 ≤ 3 ms: {}; lateness p99 ours / raw ≤ 1.2: {}",
                    verdict(*p99 <= Duration::from_millis(3)),
                    verdict(ratio <= 1.2)
                ),
            },
        );
    }
}

// =======================================================================================
// The table
// =======================================================================================

fn print_table(rows: &[Row], s: Sizes) {
    println!(
        "\nMedians of {} runs (workload 5: {} run(s)).\n",
        s.runs, s.waiting_runs
    );
    println!("| workload | what | ours | baseline | ratio | target |");
    println!("|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            r.workload, r.what, r.figure, r.baseline, r.ratio, r.target
        );
    }
}
