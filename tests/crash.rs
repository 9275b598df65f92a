//! The crash test: a worker process runs nesting-pattern workflows (sequential children,
//! polls, a timer, a parallel fan-out) against a SQLite file and is killed with SIGKILL
//! at random moments, at least 50 times (`CRASH_KILLS=500` for more; `CRASH_SEED` picks
//! the moments), and restarted each time. Then it checks that:
//!
//! - every execution finished;
//! - every top-level result equals the result of a crash-free run of the same input;
//! - no child execution was created twice;
//! - the tasks that ran again are at most `kills × tasks in flight`,
//!
//! and prints those figures (to stderr, past the test harness's capture).
//!
//! The worker is this test binary itself, started with `--ignored --exact worker`: the
//! `worker` test below does the work when `CRASH_WORKER_DB` is set. It keeps
//! `IN_FLIGHT` top-level executions running and starts new ones (with ids `run-0000`,
//! `run-0001`, …; a start is idempotent) until the test creates the stop file; then it
//! finishes what is running and exits.
//!
//! The job service is in process and stateless, so that it survives the kills: a job id
//! carries its creation time, a job is ready a fixed time after it, and its result
//! depends only on its request. Every call to it is appended to a log file (one
//! `write(2)` each, which a SIGKILL does not cut), which is how re-run tasks are counted:
//! calls made minus calls whose result the store recorded.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use workflow::prelude::*;
use workflow::store::Store;
use workflow::{
    ExecutionFilter, ExecutionId, MemoryStore, Outcome, SqliteStore, StartError, Status, StoreError,
};

/// Top-level executions the worker keeps running at once.
const IN_FLIGHT: usize = 4;
/// The fan-out's `max_concurrency`.
const FAN_OUT_CONCURRENCY: usize = 3;
/// Jobs per fan-out.
const FAN_OUT: u32 = 6;
/// Jobs the service rejects: those whose `n` is a multiple of this.
const FAIL_EVERY: u32 = 37;

// ---------------------------------------------------------------------------------------
// The job service.

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct JobRequest {
    label: String,
    n: u32,
}

/// `{label}|{n}|{created, ms since the epoch}`: everything the service needs to answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct JobId(String);

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum JobState {
    Running,
    Succeeded(u64),
    Failed(String),
}

#[derive(WorkflowError, Clone, Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
enum JobError {
    #[error("service: {0}")]
    Service(String),
    #[error("job {label} failed: {reason}")]
    JobFailed { label: String, reason: String },
    #[error(transparent)]
    #[workflow_error(transparent)]
    Poll(#[from] PollError),
}

struct JobService {
    /// How long a job runs; zero for the crash-free reference run.
    delay: Duration,
    /// Every call, one line each; `None` for the reference run.
    log: Option<File>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl JobService {
    fn record(&self, line: &str) {
        if let Some(mut log) = self.log.as_ref() {
            // One write per line on an O_APPEND file: a kill cannot leave half a line.
            log.write_all(format!("{line}\n").as_bytes())
                .expect("the call log is writable");
        }
    }

    async fn start(&self, req: &JobRequest) -> Result<JobId, JobError> {
        self.record(&format!("start {}", req.label));
        Ok(JobId(format!("{}|{}|{}", req.label, req.n, now_ms())))
    }

    async fn status(&self, job: &JobId) -> Result<JobState, JobError> {
        let mut parts = job.0.split('|');
        let (Some(label), Some(n), Some(created)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(JobError::Service(format!("bad job id {}", job.0)));
        };
        self.record(&format!("status {label}"));
        let n: u32 = n.parse().map_err(|_| JobError::Service("bad n".into()))?;
        let created: u64 = created
            .parse()
            .map_err(|_| JobError::Service("bad time".into()))?;
        let runs_for = self.delay + self.delay * (n % 3) / 2;
        if now_ms().saturating_sub(created) < u64::try_from(runs_for.as_millis()).unwrap_or(0) {
            return Ok(JobState::Running);
        }
        if n % FAIL_EVERY == 0 {
            return Ok(JobState::Failed(format!(
                "{n} is a multiple of {FAIL_EVERY}"
            )));
        }
        Ok(JobState::Succeeded(u64::from(n) * (u64::from(n) + 1) / 2))
    }
}

// ---------------------------------------------------------------------------------------
// The workflows: the nesting pattern.

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct JobReport {
    label: String,
    sum: u64,
}

#[workflow(name = "CrashRunJob")]
async fn run_job(svc: &JobService, req: JobRequest) -> Result<JobReport, JobError> {
    let job: JobId = svc.start(&req).await?;
    let status: Polled<JobState> = poll_until!(
        svc.status(&job),
        |s| *s != JobState::Running,
        every = 40.millis(),
        timeout = 10.mins(),
        max_errors = 3,
    )?;
    match status.value {
        JobState::Succeeded(sum) => Ok(JobReport {
            label: req.label,
            sum,
        }),
        JobState::Failed(reason) => Err(JobError::JobFailed {
            label: req.label,
            reason,
        }),
        JobState::Running => Err(JobError::Service("still running".into())),
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Batch {
    label: String,
    first: u32,
    second: u32,
    rest: Vec<JobRequest>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Summary {
    sequential: Vec<JobReport>,
    parallel: Vec<JobReport>,
}

#[derive(WorkflowError, Clone, Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
enum MainError {
    #[error(transparent)]
    #[workflow_error(transparent)]
    Child(#[from] NestedError<JobError>),
}

#[workflow(name = "CrashMain")]
async fn main_flow(batch: Batch) -> Result<Summary, MainError> {
    let a: JobReport = call_nested!(run_job(JobRequest {
        label: format!("{}-a", batch.label),
        n: batch.first,
    }))?;
    let b: JobReport = call_nested!(run_job(JobRequest {
        label: format!("{}-b", batch.label),
        n: batch.second,
    }))?;
    sleep!(30.millis());
    let parallel: Vec<JobReport> =
        call_nested!(for r in batch.rest => run_job(r), max_concurrency = 3)?;
    Ok(Summary {
        sequential: vec![a, b],
        parallel,
    })
}

fn top_level_id(i: usize) -> ExecutionId {
    ExecutionId::from(format!("run-{i:04}"))
}

fn batch(i: usize) -> Batch {
    let label = format!("run-{i:04}");
    let base = u32::try_from(i).unwrap_or(u32::MAX / 16) * 10;
    Batch {
        first: base + 1,
        second: base + 2,
        rest: (0..FAN_OUT)
            .map(|k| JobRequest {
                label: format!("{label}-p{k}"),
                n: base + 3 + k,
            })
            .collect(),
        label,
    }
}

fn runtime(svc: JobService) -> workflow::Builder {
    Runtime::builder().register(main_flow).dependency(svc)
}

// ---------------------------------------------------------------------------------------
// The worker process.

#[test]
#[ignore = "the crash test's worker process; crash_test starts it"]
fn worker() {
    let Ok(db) = std::env::var("CRASH_WORKER_DB") else {
        return;
    };
    let log = std::env::var("CRASH_WORKER_LOG").expect("CRASH_WORKER_LOG is set");
    let stop = PathBuf::from(std::env::var("CRASH_WORKER_STOP").expect("CRASH_WORKER_STOP"));
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("the call log opens");
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(async move {
            let svc = JobService {
                delay: Duration::from_millis(150),
                log: Some(log),
            };
            let rt = runtime(svc).sqlite(&db).build().expect("the file opens");
            let report = rt.recover().await.expect("recovery reads the store");
            println!("RECOVERED {report}");
            loop {
                let running = rt
                    .list(ExecutionFilter::new().top_level().status(Status::Running))
                    .await
                    .expect("the store reads")
                    .executions
                    .len();
                let stopping = stop.exists();
                if stopping && running == 0 {
                    println!("DONE");
                    return;
                }
                if !stopping && running < IN_FLIGHT {
                    let next = rt
                        .list(ExecutionFilter::new().top_level())
                        .await
                        .expect("the store reads")
                        .executions
                        .len();
                    match rt
                        .start_with_id(main_flow, top_level_id(next), batch(next))
                        .await
                    {
                        Ok(_) | Err(StartError::Store(StoreError::AlreadyExists(_))) => {}
                        Err(e) => panic!("start failed: {e}"),
                    }
                    continue;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
}

// ---------------------------------------------------------------------------------------
// The test.

/// A small deterministic generator for the kill moments (xorshift64*).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

struct Files {
    db: PathBuf,
    log: PathBuf,
    stop: PathBuf,
    output: PathBuf,
}

fn spawn_worker(files: &Files) -> Child {
    let output = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&files.output)
        .expect("the worker's output file opens");
    Command::new(std::env::current_exe().expect("the test binary's path"))
        .args([
            "worker",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("CRASH_WORKER_DB", &files.db)
        .env("CRASH_WORKER_LOG", &files.log)
        .env("CRASH_WORKER_STOP", &files.stop)
        .stdin(Stdio::null())
        .stdout(output.try_clone().expect("a second handle"))
        .stderr(output)
        .spawn()
        .expect("the worker starts")
}

fn worker_output(files: &Files) -> String {
    let text = std::fs::read_to_string(&files.output).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn crash_test() {
    let kills_wanted = env_number("CRASH_KILLS", 50).max(1);
    let seed = env_number("CRASH_SEED", 0x5eed_c0de);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let files = Files {
        db: dir.path().join("crash.sqlite"),
        log: dir.path().join("calls.log"),
        stop: dir.path().join("stop"),
        output: dir.path().join("worker.out"),
    };
    let started = Instant::now();
    let mut rng = Rng(seed.max(1));

    // 1. Kill the worker at random moments, restarting it each time.
    let mut kills = 0u64;
    let mut restarts = 0u64;
    while kills < kills_wanted {
        let mut child = spawn_worker(&files);
        restarts += 1;
        std::thread::sleep(Duration::from_millis(20 + rng.below(280)));
        if let Some(status) = child.try_wait().expect("the worker can be waited for") {
            panic!(
                "the worker exited on its own ({status}) before the stop file:\n{}",
                worker_output(&files)
            );
        }
        child.kill().expect("SIGKILL is delivered");
        child.wait().expect("the killed worker is reaped");
        kills += 1;
    }
    let kill_phase = started.elapsed();

    // 2. Let a last worker finish everything.
    File::create(&files.stop).expect("the stop file is created");
    let mut child = spawn_worker(&files);
    restarts += 1;
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().expect("the worker can be waited for") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "the last worker did not finish in time:\n{}",
                worker_output(&files)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = worker_output(&files);
    assert!(
        status.success() && output.contains("DONE"),
        "the last worker failed ({status}):\n{output}"
    );

    // 3. Check the file.
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let figures = tokio.block_on(check(&files));
    let calls = std::fs::read_to_string(&files.log).expect("the call log reads");
    let task_runs = calls.lines().count() as u64;
    let rerun = task_runs.saturating_sub(figures.tasks_recorded);
    let in_flight = (IN_FLIGHT * FAN_OUT_CONCURRENCY) as u64;
    let bound = kills * in_flight;

    let report = format!(
        "crash test: {kills} kills (seed {seed:#x}), {restarts} worker starts, \
         kill phase {kill_phase:.1?}, total {:.1?}\n\
         \x20 executions: {} ({} top-level: {} succeeded, {} failed as in the crash-free run), \
         all finished, every top-level result equal to the crash-free run's\n\
         \x20 children: {} created, none twice\n\
         \x20 tasks: {task_runs} calls made, {} recorded, {rerun} re-run \
         ≤ {kills} kills × {in_flight} tasks in flight = {bound}",
        started.elapsed(),
        figures.executions,
        figures.top_level,
        figures.succeeded,
        figures.failed,
        figures.children,
        figures.tasks_recorded,
    );
    // Past the harness's capture: these figures are the point of the test.
    let _ = writeln!(std::io::stderr(), "{report}");
    assert!(rerun <= bound, "{report}");
    assert!(
        figures.top_level >= 2,
        "the kill phase left too little work to check: {report}"
    );
}

struct Figures {
    executions: usize,
    top_level: usize,
    succeeded: usize,
    failed: usize,
    children: usize,
    /// Task calls whose result is in the store: `TaskSucceeded`/`TaskFailed` events and
    /// poll attempts.
    tasks_recorded: u64,
}

async fn check(files: &Files) -> Figures {
    let store = SqliteStore::open(&files.db).expect("the file opens after the last worker");
    let all = store
        .list(&ExecutionFilter::new())
        .await
        .expect("a listing")
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .expect("every row decodes");
    let unfinished: Vec<_> = all.iter().filter(|e| !e.status.is_terminal()).collect();
    assert!(
        unfinished.is_empty(),
        "unfinished executions: {unfinished:?}"
    );

    // Every top-level result equals the crash-free run's.
    let top: Vec<_> = all.iter().filter(|e| e.parent.is_none()).collect();
    for (i, e) in top.iter().enumerate() {
        assert_eq!(e.id, top_level_id(i), "top-level ids are contiguous");
    }
    let expected = reference(top.len()).await;
    let mut succeeded = 0;
    let mut failed = 0;
    for (e, expected) in top.iter().zip(&expected) {
        let record = store.get(&e.id).await.expect("a read").expect("the record");
        let outcome = record.outcome.expect("an ended execution has an outcome");
        assert_eq!(&outcome, expected, "result of {}", e.id);
        match outcome {
            Outcome::Succeeded(_) => succeeded += 1,
            _ => failed += 1,
        }
    }

    // No child twice: one row per call site (the schema's uniqueness), one start each,
    // and each parent saw each child start once.
    let mut children = 0;
    let mut tasks_recorded = 0u64;
    for e in &all {
        let history = store.history(&e.id).await.expect("a history");
        let starts = history
            .iter()
            .filter(|ev| ev.kind.name() == "ExecutionStarted")
            .count();
        assert_eq!(starts, 1, "{} started {starts} times", e.id);
        tasks_recorded += history
            .iter()
            .filter(|ev| {
                matches!(
                    ev.kind.name(),
                    "TaskSucceeded" | "TaskFailed" | "PollAttempt"
                )
            })
            .count() as u64;
        let kids = store.children(&e.id).await.expect("children");
        let distinct: HashSet<_> = kids.iter().collect();
        assert_eq!(distinct.len(), kids.len(), "{} has a child twice", e.id);
        let mut started: HashMap<ExecutionId, usize> = HashMap::new();
        for ev in &history {
            if let workflow::EventKind::ChildStarted { child, .. } = &ev.kind {
                *started.entry(child.clone()).or_default() += 1;
            }
        }
        assert!(
            started.values().all(|&n| n == 1),
            "{}: a child started twice: {started:?}",
            e.id
        );
        assert_eq!(
            started.len(),
            kids.len(),
            "{}: ChildStarted per child",
            e.id
        );
        if e.parent.is_none() && e.status == Status::Succeeded {
            assert_eq!(kids.len(), 2 + FAN_OUT as usize, "{}", e.id);
        }
        children += kids.len();
    }
    Figures {
        executions: all.len(),
        top_level: top.len(),
        succeeded,
        failed,
        children,
        tasks_recorded,
    }
}

/// The crash-free run: the same inputs, in memory, with jobs that finish at once.
async fn reference(n: usize) -> Vec<Outcome> {
    let svc = JobService {
        delay: Duration::ZERO,
        log: None,
    };
    let rt = runtime(svc)
        .store(MemoryStore::new())
        .build()
        .expect("a runtime");
    // All at once: each run waits on real poll intervals.
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let exec = rt
            .start_with_id(main_flow, top_level_id(i), batch(i))
            .await
            .expect("the reference run starts");
        ids.push(exec.id().clone());
    }
    let mut outcomes = Vec::with_capacity(n);
    for id in &ids {
        outcomes.push(rt.wait(id).await.expect("an outcome"));
    }
    outcomes
}
