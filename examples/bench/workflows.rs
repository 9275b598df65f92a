//! The benchmark's service and baselines. The workflows are the nesting example's own
//! (`examples/nesting/workflows.rs`, included as it is, as the ASL tests do), given
//! [`Jobs`], an in-process job service that answers at once, through the example's
//! `JobApi` seam instead of its HTTP client. `fan_out_*` are `main_flow`'s fan-out on its
//! own, with the two concurrency limits of workload 6.
//!
//! `plain_run_job` / `plain_main_flow` are the same logic as plain tokio `async fn`s, with
//! no checkpointing, against the same `JobService`: the lower bound of workload 2.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use workflow::prelude::*;

#[path = "../nesting/workflows.rs"]
#[allow(dead_code)]
mod nesting;

pub use nesting::{
    main_flow, run_job, ApiFuture, Batch, JobApi, JobError, JobId, JobReport, JobRequest,
    JobService, JobState, JobStatus, MainError, Summary,
};

/// When a job is finished.
#[derive(Clone, Copy, Debug)]
pub enum Readiness {
    /// At its n-th status call.
    AfterPolls(u32),
    /// At the first status call at or after this instant.
    At(Instant),
}

/// The job service, in-process and instant: `start` hands out a number, `status` says
/// `running` until the job is ready (see [`Readiness`]). Optionally it measures the time
/// between a job's consecutive calls (see [`Intervals`]).
pub struct Jobs {
    pub readiness: Readiness,
    next: AtomicU64,
    started: AtomicU64,
    calls: Mutex<HashMap<u64, u32>>,
    intervals: Option<Mutex<Intervals>>,
}

impl Jobs {
    pub fn new(readiness: Readiness) -> Self {
        Jobs {
            readiness,
            next: AtomicU64::new(1),
            started: AtomicU64::new(0),
            calls: Mutex::new(HashMap::new()),
            intervals: None,
        }
    }

    /// Also measures the interval between a job's calls (its start, then each status).
    pub fn measured(mut self) -> Self {
        self.intervals = Some(Mutex::new(Intervals::default()));
        self
    }

    /// Numbers jobs from `first` on (the raw baseline's trace takes a job number as wide
    /// as those of the runs it stands for).
    pub fn numbered_from(self, first: u64) -> Self {
        self.next.store(first, Ordering::Relaxed);
        self
    }

    /// How many jobs were started.
    pub fn started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }

    pub fn intervals(&self) -> Option<MutexGuard<'_, Intervals>> {
        self.intervals
            .as_ref()
            .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn start(&self, _req: &JobRequest) -> Result<JobId, JobError> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.started.fetch_add(1, Ordering::Relaxed);
        if let Some(mut iv) = self.intervals() {
            iv.last.insert(id, Instant::now());
        }
        Ok(JobId(format!("job-{id}")))
    }

    fn status(&self, job: &JobId) -> Result<JobStatus, JobError> {
        let Some(id) = job
            .0
            .strip_prefix("job-")
            .and_then(|n| n.parse::<u64>().ok())
        else {
            return Err(JobError::UnknownJob { id: job.clone() });
        };
        if let Some(mut iv) = self.intervals() {
            iv.call(id);
        }
        let finished = match self.readiness {
            Readiness::At(at) => Instant::now() >= at,
            Readiness::AfterPolls(n) => {
                let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
                let c = calls.entry(id).or_default();
                *c += 1;
                let done = *c >= n;
                if done {
                    calls.remove(&id);
                }
                done
            }
        };
        Ok(JobStatus {
            id: job.clone(),
            state: if finished {
                JobState::Succeeded
            } else {
                JobState::Running
            },
            result: finished.then(|| format!("result of {job}")),
        })
    }
}

/// The raw-timer baseline of workloads 5 and 8 (issue 21): the job's waits on
/// `tokio::time` alone, no workflow, no seam. After each sleep it calls [`Jobs`]
/// directly, which measures the interval as it does for ours and the plain `async fn`,
/// and says when the job is finished.
pub async fn raw_timer_loop(jobs: &Jobs, req: &JobRequest, every: Duration) {
    let job = jobs.start(req).expect("starts");
    loop {
        tokio::time::sleep(every).await;
        if jobs.status(&job).expect("its own job").is_finished() {
            return;
        }
    }
}

/// The example's seam: its workflows call [`Jobs`] through a `JobService`.
impl JobApi for Arc<Jobs> {
    fn start<'a>(&'a self, req: &'a JobRequest) -> ApiFuture<'a, JobId> {
        Box::pin(async move { Jobs::start(self, req) })
    }

    fn status<'a>(&'a self, id: &'a JobId) -> ApiFuture<'a, JobStatus> {
        Box::pin(async move { Jobs::status(self, id) })
    }
}

/// The intervals between a job's consecutive calls, as two histograms: every interval,
/// and those that ended inside the window [`Intervals::steady`] opens (workload 5's
/// steady state: after every execution has started, before the jobs become ready and
/// every execution ends at once).
#[derive(Default)]
pub struct Intervals {
    last: HashMap<u64, Instant>,
    pub all: Histogram,
    pub steady: Histogram,
    window: Option<Instant>,
}

impl Intervals {
    fn call(&mut self, job: u64) {
        let now = Instant::now();
        if let Some(prev) = self.last.insert(job, now) {
            self.all.record(now - prev);
            if self.window.is_some_and(|until| now < until) {
                self.steady.record(now - prev);
            }
        }
    }

    /// Counts intervals into `steady` from now until `until`.
    pub fn steady(&mut self, until: Instant) {
        self.window = Some(until);
    }
}

/// Durations in 10 µs buckets up to 2 s (longer ones go to the last bucket): fixed
/// memory however many are recorded.
pub struct Histogram {
    buckets: Vec<u64>,
    max: Duration,
}

const BUCKET: Duration = Duration::from_micros(10);
const BUCKETS: usize = 200_000;

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: vec![0; BUCKETS],
            max: Duration::ZERO,
        }
    }
}

impl Histogram {
    fn record(&mut self, d: Duration) {
        self.max = self.max.max(d);
        let b = (d.as_nanos() / BUCKET.as_nanos()) as usize;
        self.buckets[b.min(BUCKETS - 1)] += 1;
    }

    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// The `q` quantile (0..=1), to the bucket's upper edge.
    pub fn quantile(&self, q: f64) -> Duration {
        let total = self.count();
        let rank = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return BUCKET * (i as u32 + 1);
            }
        }
        self.max
    }

    pub fn max(&self) -> Duration {
        self.max
    }
}

/// Workload 6: one parent mapping over its input, every child at once.
#[workflow(name = "FanOutAll")]
pub async fn fan_out_all(jobs: Vec<JobRequest>) -> Result<usize, MainError> {
    let done: Vec<JobReport> = call_nested!(for r in jobs => run_job(r), max_concurrency = 10000)?;
    Ok(done.len())
}

/// Workload 6: one parent mapping over its input, 100 children at a time.
#[workflow(name = "FanOut100")]
pub async fn fan_out_100(jobs: Vec<JobRequest>) -> Result<usize, MainError> {
    let done: Vec<JobReport> = call_nested!(for r in jobs => run_job(r), max_concurrency = 100)?;
    Ok(done.len())
}

// =======================================================================================
// The lower bound: the same logic as plain `async fn`s, nothing persisted.
// =======================================================================================

pub async fn plain_run_job(svc: &JobService, req: JobRequest) -> Result<JobReport, JobError> {
    let job = svc.start(&req).await?;
    let started = Instant::now();
    let (mut attempts, mut errors) = (0u32, 0u32);
    let status = loop {
        // Like the runtime: a zero wait yields instead of waiting for the timer's next tick.
        if svc.poll_every.is_zero() {
            tokio::task::yield_now().await;
        } else {
            tokio::time::sleep(svc.poll_every).await;
        }
        attempts += 1;
        let elapsed = started.elapsed();
        match svc.status(&job).await {
            Ok(s) if s.is_finished() => break s,
            Ok(_) => {}
            Err(e) => {
                errors += 1;
                if errors > 3 {
                    return Err(e);
                }
            }
        }
        if elapsed + svc.poll_every > svc.poll_timeout {
            return Err(JobError::Poll(PollError::TimedOut {
                attempts,
                elapsed,
                last_error: None,
            }));
        }
    };
    if status.state == JobState::Failed {
        let reason = status.result.unwrap_or_default();
        return Err(JobError::JobFailed { id: job, reason });
    }
    Ok(JobReport {
        job_id: job,
        polls: attempts,
        runtime_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        result: status.result.unwrap_or_default(),
    })
}

pub async fn plain_main_flow(svc: Arc<JobService>, batch: Batch) -> Result<Summary, JobError> {
    let mut sequential = Vec::new();
    for (i, steps) in batch.steps.iter().enumerate() {
        let req = JobRequest {
            parameter1: format!("{}-{}", batch.label, i + 1),
            parameter2: *steps,
        };
        sequential.push(plain_run_job(&svc, req).await?);
    }
    // Children in parallel, each on its own task (at most 8 at a time, like `main_flow`).
    let limit = Arc::new(tokio::sync::Semaphore::new(8));
    let mut tasks = Vec::new();
    for r in batch.parallel {
        let (svc, limit) = (Arc::clone(&svc), Arc::clone(&limit));
        tasks.push(tokio::spawn(async move {
            let _permit = limit.acquire_owned().await;
            plain_run_job(&svc, r).await
        }));
    }
    let mut parallel = Vec::new();
    for t in tasks {
        parallel.push(t.await.expect("child task panicked")?);
    }
    Ok(Summary {
        sequential,
        parallel,
    })
}
