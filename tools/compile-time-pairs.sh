#!/usr/bin/env bash
# Compile time of `#[workflow]`s against plain `async fn` twins of the same logic, measured
# as issue 22 does: N pairs of workflows (a job: a task, a `poll_until!`, a `for` loop with
# a task or a `sleep!` per round; a main: one `call_nested!` child and a map over a
# `Vec`), so 2N workflows, in one throwaway crate; the twins (tokio sleeps, a hand-written
# poll loop, children called directly) in another. Each crate has a function that runs
# all of them. Dependencies are built first (untimed); before each measurement a one-line
# edit (a constant the code uses) is made. Prints every figure, the medians and the
# ratios:
#
#   - debug build of the crate, non-incremental (`CARGO_INCREMENTAL=0 cargo build`);
#   - incremental `cargo check` (`CARGO_INCREMENTAL=1`) after the constant's value changed
#     in place (same length: nothing below it moves);
#   - the same after a line was added or removed above all the code, so that everything
#     moves (what most edits do): positions are part of what rustc's incremental cache
#     keeps, so both crates are checked again in part, the macro's output (whose
#     expansion records where it was called) entirely;
#   - rustc's peak memory (maximum resident set) during the debug build.
#
#   tools/compile-time-pairs.sh [PAIRS] [ROUNDS]     # default 50 pairs, 3 rounds
#
# CARGO_TARGET_DIR defaults to a directory of its own, kept between runs so that the
# dependencies build once. The crates use Cargo's default profiles (full debug info),
# as a new project would. With CT_KEEP=DIR, the two crates are left in DIR (to profile
# them, e.g. `RUSTC_BOOTSTRAP=1 cargo rustc -- -Z time-passes` there).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
pairs=${1:-50}
rounds=${2:-3}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target/compile-time}
work=$(mktemp -d)
if [ -n "${CT_KEEP:-}" ]; then
    work=$CT_KEEP
    mkdir -p "$work"
else
    trap 'rm -rf "$work"' EXIT
fi

# rustc's peak memory: the wrapper times the compilation of the measured crates only
# (named `ct_…`), appending the maximum resident set in KiB to $CT_MEMLOG.
cat >"$work/rustc-wrapper" <<'EOF'
#!/bin/sh
case " $* " in
*" --crate-name ct_"*)
    if [ -n "${CT_MEMLOG:-}" ]; then
        exec /usr/bin/time -f "%M" -a -o "$CT_MEMLOG" "$@"
    fi
    ;;
esac
exec "$@"
EOF
chmod +x "$work/rustc-wrapper"
export RUSTC_WRAPPER="$work/rustc-wrapper"

make_crate() { # name, then the source on stdin
    mkdir -p "$work/$1/src"
    cat >"$work/$1/Cargo.toml" <<EOF
[package]
name = "$1"
version = "0.0.0"
edition = "2021"
publish = false

[workspace]

[dependencies]
workflow = { path = "$root" }
serde = { version = "1", features = ["derive"] }
thiserror = "2"
tokio = { version = "1", features = ["time", "rt"] }
futures = "0.3"
EOF
    cp "$root/Cargo.lock" "$work/$1/Cargo.lock"
    cat >"$work/$1/src/lib.rs"
}

# What both crates share: the service (each method a task) and the errors.
common() {
    cat <<'EOF'
#![allow(dead_code, unused_imports, clippy::all)]
use std::time::Duration;

use serde::{Deserialize, Serialize};
use workflow::prelude::*;

/// The one-line edit before each measurement changes this.
pub const EDIT: u32 = 1000;

#[derive(Default)]
pub struct Svc;

impl Svc {
    pub async fn start(&self, n: u32) -> Result<u32, JobError> {
        Ok(n + EDIT)
    }
    pub async fn status(&self, id: &u32) -> Result<u32, JobError> {
        Ok(*id)
    }
    pub async fn step(&self, n: u32) -> u32 {
        n + 1
    }
}

#[derive(WorkflowError, Debug, Clone, Serialize, Deserialize, thiserror::Error)]
pub enum JobError {
    #[error("bad value {0}")]
    Bad(u32),
    #[error(transparent)]
    #[workflow_error(transparent)]
    Poll(#[from] PollError),
}

#[derive(WorkflowError, Debug, Clone, Serialize, Deserialize, thiserror::Error)]
pub enum MainError {
    #[error(transparent)]
    #[workflow_error(transparent)]
    Job(#[from] JobError),
    #[error(transparent)]
    #[workflow_error(transparent)]
    Child(#[from] NestedError<JobError>),
}
EOF
}

{
    common
    for i in $(seq -w 0 $((pairs - 1))); do
        cat <<EOF

#[workflow]
pub async fn job_$i(svc: &Svc, n: u32) -> Result<u32, JobError> {
    let id: u32 = svc.start(n + $i).await?;
    let done: Polled<u32> =
        poll_until!(svc.status(&id), |s| *s > 0, every = 1.millis(), timeout = 1.secs())?;
    let mut total: u32 = done.value;
    for k in 0..3u32 {
        if k % 2 == 0 {
            total = svc.step(total + k).await;
        } else {
            sleep!(1.millis());
        }
    }
    Ok(total)
}

#[workflow]
pub async fn main_$i(n: u32, xs: Vec<u32>) -> Result<u32, MainError> {
    let first: u32 = call_nested!(job_$i(n))?;
    let many: Vec<u32> = call_nested!(for x in xs => job_$i(x), max_concurrency = 4)?;
    Ok(first + many.iter().sum::<u32>())
}
EOF
    done
    echo
    echo "/// Runs every main workflow (and so every job) once."
    echo "pub async fn run_all() -> Vec<Result<u32, RunError<MainError>>> {"
    echo "    let rt = Runtime::builder()"
    echo "        .dependency(Svc)"
    for i in $(seq -w 0 $((pairs - 1))); do
        echo "        .register(main_$i)"
    done
    echo "        .build()"
    echo "        .expect(\"the workflows link\");"
    echo "    let mut results = Vec::new();"
    for i in $(seq -w 0 $((pairs - 1))); do
        echo "    let e = rt.start(main_$i, (1, vec![2, 3])).await.expect(\"started\");"
        echo "    results.push(e.result().await);"
    done
    echo "    results"
    echo "}"
} | make_crate ct_workflows

{
    common
    cat <<'EOF'

/// `poll_until!(svc.status(id), ready, every, timeout)` by hand.
async fn poll_status(
    svc: &Svc,
    id: &u32,
    ready: impl Fn(&u32) -> bool,
    every: Duration,
    timeout: Duration,
) -> Result<u32, JobError> {
    let started = tokio::time::Instant::now();
    let mut attempts: u32 = 0;
    loop {
        tokio::time::sleep(every).await;
        attempts += 1;
        let value = svc.status(id).await?;
        if ready(&value) {
            return Ok(value);
        }
        let elapsed = started.elapsed();
        if elapsed + every > timeout {
            return Err(PollError::TimedOut {
                attempts,
                elapsed,
                last_error: None,
            }
            .into());
        }
    }
}
EOF
    for i in $(seq -w 0 $((pairs - 1))); do
        cat <<EOF

pub async fn job_${i}_plain(svc: &Svc, n: u32) -> Result<u32, JobError> {
    let id: u32 = svc.start(n + $i).await?;
    let done: u32 = poll_status(
        svc,
        &id,
        |s| *s > 0,
        Duration::from_millis(1),
        Duration::from_secs(1),
    )
    .await?;
    let mut total: u32 = done;
    for k in 0..3u32 {
        if k % 2 == 0 {
            total = svc.step(total + k).await;
        } else {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    Ok(total)
}

pub async fn main_${i}_plain(svc: &Svc, n: u32, xs: Vec<u32>) -> Result<u32, MainError> {
    let first: u32 = job_${i}_plain(svc, n).await?;
    let many: Vec<u32> = futures::stream::iter(xs.into_iter().map(|x| job_${i}_plain(svc, x)))
        .buffered(4)
        .try_collect()
        .await?;
    Ok(first + many.iter().sum::<u32>())
}
EOF
    done
    echo
    echo "/// Runs every main twin (and so every job twin) once."
    echo "pub async fn run_all() -> Vec<Result<u32, MainError>> {"
    echo "    let svc = Svc;"
    echo "    let mut results = Vec::new();"
    for i in $(seq -w 0 $((pairs - 1))); do
        echo "    results.push(main_${i}_plain(&svc, 1, vec![2, 3]).await);"
    done
    echo "    results"
    echo "}"
} | sed 's/^#!\[allow(dead_code, unused_imports, clippy::all)\]$/#![allow(dead_code, unused_imports, clippy::all)]\nuse futures::{StreamExt as _, TryStreamExt as _};/' \
    | make_crate ct_twins

crates="ct_workflows ct_twins"
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
edit() { # crate, value: the one-line edit (values of four digits: nothing below it moves)
    sed -i "s/^pub const EDIT: u32 = .*;/pub const EDIT: u32 = $2;/" "$work/$1/src/lib.rs"
}
move() { # crate: adds or removes a line above all the code, which moves everything below it
    local f="$work/$1/src/lib.rs"
    if grep -q '^// moved$' "$f"; then
        sed -i '/^\/\/ moved$/d' "$f"
    else
        sed -i 's|^/// The one-line edit|// moved\n&|' "$f"
    fi
}
timed() { # crate, command…: prints the seconds
    local c=$1
    shift
    local start end
    start=$(date +%s.%N)
    (cd "$work/$c" && "$@")
    end=$(date +%s.%N)
    awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }'
}

: >"$work/times"
for c in $crates; do # dependencies, untimed; then the first incremental state
    (cd "$work/$c" && CARGO_INCREMENTAL=0 cargo build -q && CARGO_INCREMENTAL=1 cargo check -q)
done
for r in $(seq "$rounds"); do
    for c in $crates; do
        edit "$c" "$((1000 + r))"
        t=$(CARGO_INCREMENTAL=0 CT_MEMLOG="$work/mem-$c-$r" timed "$c" cargo build -q)
        m=$(tail -n 1 "$work/mem-$c-$r")
        echo "round $r $c: build ${t}s, rustc peak ${m} KiB"
        echo "$c build $t" >>"$work/times"
        echo "$c mem $m" >>"$work/times"
        edit "$c" "$((2000 + r))"
        t=$(CARGO_INCREMENTAL=1 timed "$c" cargo check -q)
        echo "round $r $c: incremental check ${t}s"
        echo "$c check $t" >>"$work/times"
        move "$c"
        t=$(CARGO_INCREMENTAL=1 timed "$c" cargo check -q)
        echo "round $r $c: incremental check after moving the code ${t}s"
        echo "$c moved $t" >>"$work/times"
    done
done

med() { awk -v c="$1" -v k="$2" '$1 == c && $2 == k { print $3 }' "$work/times" | median; }
echo
echo "$pairs pairs ($((2 * pairs)) workflows), medians of $rounds:"
echo
echo "| | $((2 * pairs)) workflows | plain twins | ratio |"
echo "|---|---|---|---|"
for k in build check moved mem; do
    w=$(med ct_workflows $k)
    p=$(med ct_twins $k)
    ratio=$(awk -v a="$w" -v b="$p" 'BEGIN { printf "%.1f", a / b }')
    case $k in
    build) echo "| debug build of the crate, non-incremental | ${w} s | ${p} s | ${ratio}× |" ;;
    check) echo "| incremental \`cargo check\` | ${w} s | ${p} s | ${ratio}× |" ;;
    moved) echo "| same, after an edit that moves the code below it | ${w} s | ${p} s | ${ratio}× |" ;;
    mem) echo "| rustc peak memory (debug build) | $(awk -v a="$w" 'BEGIN { printf "%.0f", a / 1024 }') MiB | $(awk -v a="$p" 'BEGIN { printf "%.0f", a / 1024 }') MiB | ${ratio}× |" ;;
    esac
done
