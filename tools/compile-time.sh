#!/usr/bin/env bash
# Build time of the generated workflows (tests/generated/flows.rs) against their plain
# twins: two throwaway crates, one with the `#[workflow]`s only and one with the
# `_plain` twins and their dispatcher only (each with the shared dependency, errors and
# helpers), built in
# turn (interleaved), the source touched before each build. Prints every time and the
# medians, per profile.
#
#   tools/compile-time.sh [ROUNDS]        # default 3 rounds per profile and crate
#
# CARGO_TARGET_DIR defaults to a directory of its own, kept between runs so the
# dependencies build once; PROFILES="debug release" by default. Incremental compilation
# is off: with it, a touched but unchanged debug crate reuses almost everything, and
# the figure would be the macro's expansion alone.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
rounds=${1:-3}
profiles=${PROFILES:-debug release}
flows="$root/tests/generated/flows.rs"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target/compile-time}
export CARGO_INCREMENTAL=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The file's parts: the shared prelude, the `workflows` module, the twins.
uses=$(grep -n '^pub use workflows::\*;$' "$flows" | cut -d: -f1)
module_end=$(awk -v s="$uses" 'NR > s && $0 == "}" { print NR; exit }' "$flows")
tables=$(grep -n "^/// The exits each workflow's code contains" "$flows" | cut -d: -f1)
dispatch=$(grep -n "^/// Runs the plain twin of workflow" "$flows" | cut -d: -f1)
register=$(grep -n "^/// Registers every generated workflow" "$flows" | cut -d: -f1)

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
serde_json = "1"
thiserror = "2"
tokio = { version = "1", features = ["time"] }
EOF
    cp "$root/Cargo.lock" "$work/$1/Cargo.lock"
    cat >"$work/$1/src/lib.rs"
}

sed -n "1,${module_end}p" "$flows" | make_crate generated_workflows
# An `async fn` is compiled to machine code only where its future is polled: the
# `#[workflow]` step functions poll theirs, and for the twins `run_plain` (which awaits
# every twin) is boxed as a `dyn Future`, so both crates generate code for every body.
{
    sed -n "1,$((uses - 1))p" "$flows"
    sed -n "$((module_end + 1)),$((tables - 1))p" "$flows"
    sed -n "${dispatch},$((register - 1))p" "$flows"
    cat <<'EOF'
pub fn run_plain_boxed<'a>(
    svc: &'a Svc,
    name: &'a str,
    input: Value,
) -> std::pin::Pin<Box<dyn Future<Output = Result<Value, Value>> + 'a>> {
    Box::pin(run_plain(svc, name, input))
}
EOF
} | make_crate generated_twins

median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

for profile in $profiles; do
    flag=""
    [ "$profile" = release ] && flag="--release"
    for c in generated_workflows generated_twins; do # dependencies, untimed
        (cd "$work/$c" && cargo build -q $flag)
    done
    : >"$work/times-$profile"
    for r in $(seq "$rounds"); do
        for c in generated_workflows generated_twins; do
            touch "$work/$c/src/lib.rs"
            start=$(date +%s.%N)
            (cd "$work/$c" && cargo build -q $flag)
            end=$(date +%s.%N)
            t=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')
            echo "$profile $c round $r: ${t}s"
            echo "$c $t" >>"$work/times-$profile"
        done
    done
    for c in generated_workflows generated_twins; do
        m=$(awk -v c="$c" '$1 == c { print $2 }' "$work/times-$profile" | median)
        echo "median $profile $c: ${m}s over $rounds builds"
    done
done
