//! Time by thread, from Linux's `/proc/self/task/*/schedstat`: how long each thread ran on
//! a CPU, and how long it was ready to run but waited for one; and what it wrote
//! (`io`: bytes passed to `write` and `pwrite`, which for a SQLite connection in WAL mode
//! is mostly the log). Workload 3 prints it for
//! ours and for the raw baseline, run by run: on a machine with fewer cores than busy
//! threads, the store's writer thread waits for a CPU while the runtime's workers run,
//! which an instruction count does not show. Elsewhere than Linux there is nothing to
//! read, and nothing is printed.

use std::collections::BTreeMap;
use std::time::Duration;

/// What one thread, or the threads of one name, got.
#[derive(Clone, Copy, Debug, Default)]
pub struct Times {
    /// On a CPU.
    pub running: Duration,
    /// Ready to run, waiting for a CPU.
    pub waiting: Duration,
    /// Bytes written.
    pub written: u64,
}

/// The process's live threads, by thread id: their name and their times so far.
pub type Reading = BTreeMap<u64, (String, Times)>;

pub fn read() -> Reading {
    let mut threads = Reading::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return threads;
    };
    for task in tasks.flatten() {
        let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        // A thread may end between the listing and the reads: then it is left out.
        let (Ok(name), Ok(stat), Ok(io)) = (
            std::fs::read_to_string(task.path().join("comm")),
            std::fs::read_to_string(task.path().join("schedstat")),
            std::fs::read_to_string(task.path().join("io")),
        ) else {
            continue;
        };
        let written = io
            .lines()
            .find_map(|l| l.strip_prefix("wchar:"))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        let mut fields = stat.split_whitespace().map(|f| f.parse::<u64>().ok());
        let (Some(Some(running)), Some(Some(waiting))) = (fields.next(), fields.next()) else {
            continue;
        };
        let times = Times {
            running: Duration::from_nanos(running),
            waiting: Duration::from_nanos(waiting),
            written,
        };
        threads.insert(tid, (name.trim_end().to_owned(), times));
    }
    threads
}

/// What the threads of each name got between two readings. A thread that started in
/// between counts from its start; one that ended in between is not counted, so the
/// second reading is taken while the threads of interest still run.
pub fn between(before: &Reading, after: &Reading) -> BTreeMap<String, Times> {
    let mut by_name = BTreeMap::<String, Times>::new();
    for (tid, (name, now)) in after {
        let then = before.get(tid).map(|(_, t)| *t).unwrap_or_default();
        let sum = by_name.entry(name.clone()).or_default();
        sum.running += now.running.saturating_sub(then.running);
        sum.waiting += now.waiting.saturating_sub(then.waiting);
        sum.written += now.written.saturating_sub(then.written);
    }
    by_name
}

/// `name`'s times in `times`, as "1.23 s on a CPU + 0.45 s waiting for one, 12 MB
/// written", or `None` if it did not run.
pub fn describe(times: &BTreeMap<String, Times>, name: &str) -> Option<String> {
    let t = times.get(name)?;
    Some(format!(
        "{:.2} s on a CPU + {:.2} s waiting for one, {:.0} MB written",
        t.running.as_secs_f64(),
        t.waiting.as_secs_f64(),
        t.written as f64 / 1e6
    ))
}
