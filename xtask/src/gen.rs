//! `gen-flows`: a seeded generator of random workflows and their plain-Rust twins.
//!
//! It writes `tests/generated/flows.rs`: a dependency (`Svc`), a few child workflows, and
//! [`Config::count`] workflows `gen_NNN` whose bodies come from a grammar of what
//! `#[workflow]` takes (branches, `match`, every loop form, labels, `break`/`continue`,
//! `break value`, labelled blocks, early `return`, `?`, tasks, waits, polls and children).
//! Each `gen_NNN` has a twin `gen_NNN_plain`: the same body as an ordinary `async fn`,
//! with `sleep!` as `tokio::time::sleep`, `poll_until!` as a hand-written loop and
//! `call_nested!` as a direct call of the child's twin. `tests/generated.rs` runs both on
//! the scenarios the generator picked and compares the outcomes.
//!
//! The output depends only on the [`Config`]: the first lines of the file name the
//! arguments it was written with, and the test writes it again from them and compares.
//! This file is also compiled into that test (`#[path]`), so it uses `std` only.

use std::collections::BTreeSet;
use std::fmt::Write as _;

/// The seed of the checked-in corpus.
pub const DEFAULT_SEED: u64 = 0x5EED_F10E_0001;
/// How many workflows the checked-in corpus has.
pub const DEFAULT_COUNT: usize = 220;
/// Where the corpus goes, relative to the workspace root.
pub const OUTPUT: &str = "tests/generated/flows.rs";
/// The ways out of a statement, block or body that the manifest records.
pub const EXIT_KINDS: &[&str] = &[
    "fall_through",
    "break",
    "break_label",
    "break_value",
    "continue",
    "continue_label",
    "block_break",
    "return",
    "try",
    "end_of_body",
];

/// The marker before the arguments in the file's header.
const ARGS_MARKER: &str = "// gen-flows arguments:";

/// What to generate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The PRNG's seed.
    pub seed: u64,
    /// The number of `gen_NNN` workflows.
    pub count: usize,
    /// Yield points inside labelled value blocks (`let v: u32 = 'b: { …; break 'b x; … }`).
    /// Off, those blocks hold plain code only (`--no-value-block-yields`).
    pub value_block_yields: bool,
    /// `for` loops over iterators whose item type the code does not spell out
    /// (`for x in vec![…]`, `for x in xs.clone()`, `for x in 0..v % 4`). Off
    /// (`--no-untyped-for-iters`), a `for` iterates over a typed local (`let ys: Vec<u32> =
    /// …; for x in ys`), a typed bound (`0..v`) or a suffixed literal (`0..3u32`).
    pub untyped_for_iters: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            seed: DEFAULT_SEED,
            count: DEFAULT_COUNT,
            value_block_yields: true,
            untyped_for_iters: true,
        }
    }
}

/// The command line of `gen-flows`, after the subcommand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    /// What to generate.
    pub config: Config,
    /// Compare with the file instead of writing it.
    pub check: bool,
}

impl Command {
    /// Parses `[--seed N] [--count N] [--no-value-block-yields] [--no-untyped-for-iters]
    /// [--check]`.
    pub fn parse<'a>(args: impl IntoIterator<Item = &'a str>) -> Result<Command, String> {
        let mut config = Config::default();
        let mut check = false;
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            match arg {
                "--seed" => config.seed = number(args.next(), "--seed")?,
                "--count" => config.count = number(args.next(), "--count")?,
                "--no-value-block-yields" => config.value_block_yields = false,
                "--no-untyped-for-iters" => config.untyped_for_iters = false,
                "--check" => check = true,
                other => {
                    return Err(format!(
                        "unknown argument `{other}`; gen-flows takes [--seed N] [--count N] \
                         [--no-value-block-yields] [--no-untyped-for-iters] [--check]"
                    ))
                }
            }
        }
        Ok(Command { config, check })
    }
}

fn number<T: std::str::FromStr>(value: Option<&str>, flag: &str) -> Result<T, String> {
    let value = value.ok_or_else(|| format!("{flag} needs a value"))?;
    let digits = value.replace('_', "");
    let parsed = match digits.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16)
            .ok()
            .and_then(|n| n.to_string().parse().ok()),
        None => digits.parse().ok(),
    };
    parsed.ok_or_else(|| format!("{flag} takes a number, not `{value}`"))
}

impl Config {
    /// The arguments that give this configuration, as the header records them.
    pub fn args(&self) -> String {
        let mut s = format!("--seed {} --count {}", self.seed, self.count);
        if !self.value_block_yields {
            s.push_str(" --no-value-block-yields");
        }
        if !self.untyped_for_iters {
            s.push_str(" --no-untyped-for-iters");
        }
        s
    }

    /// The configuration a generated file was written with, from its header.
    pub fn of_file(text: &str) -> Result<Config, String> {
        let line = text
            .lines()
            .take(10)
            .find_map(|l| l.strip_prefix(ARGS_MARKER))
            .ok_or_else(|| format!("no `{ARGS_MARKER}` line in the file's header"))?;
        Ok(Command::parse(line.split_whitespace())?.config)
    }
}

/// The whole of `tests/generated/flows.rs` for `config`.
pub fn generate(config: &Config) -> String {
    let mut rng = Rng(config.seed);
    let flows: Vec<Flow> = (0..config.count)
        .map(|i| Flow::generate(&mut rng, i, config))
        .collect();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "//! @generated by `cargo run -p xtask -- gen-flows {}`: do not edit.",
        config.args()
    );
    let _ = writeln!(out, "{ARGS_MARKER} {}", config.args());
    out.push_str(PRELUDE);
    out.push_str(CHILD_TWINS);
    out.push_str(WORKFLOWS_OPEN);
    out.push_str(&indent(CHILD_WORKFLOWS));
    for f in &flows {
        out.push('\n');
        out.push_str(&indent(&f.render(Mode::Workflow)));
    }
    out.push_str("}\n");
    for f in &flows {
        out.push('\n');
        out.push_str(&f.render(Mode::Plain));
    }
    out.push_str(&manifest(&flows));
    out.push_str(&scenarios(&flows));
    out.push_str(&dispatch(&flows));
    out.push_str(&register(&flows));
    out
}

/// `text` indented by one level (blank lines stay empty).
fn indent(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        if !line.is_empty() {
            out.push_str("    ");
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

// ---------------------------------------------------------------------------------------
// The fixed part of the file.

const PRELUDE: &str = r#"//!
//! Random workflows (`gen_NNN`), each with a plain-Rust twin (`gen_NNN_plain`), the
//! scenarios to run them on, and a manifest of the exits each body contains. Run by
//! `tests/generated.rs`; `generated_workflows!` and `scenarios()` let other tests (the ASL
//! differential) run them too.
//!
//! `Svc::status` counts its calls per key, so each run needs a fresh `Svc`.
#![deny(warnings)]
// The file is included by several tests, each using a part of it.
#![allow(dead_code)]
// Generated shapes are chosen for coverage, not style: `x + 0`, an `if` whose branches
// are alike or whose conditions repeat, an `if` alone in an `else`, a `match` of one arm,
// `vec![…]` iterated once.
// (No clippy lint fires in the code `#[workflow]` generates.)
#![allow(
    clippy::identity_op,
    clippy::if_same_then_else,
    clippy::ifs_same_cond,
    clippy::collapsible_if,
    clippy::collapsible_else_if,
    clippy::match_single_binding,
    clippy::useless_vec
)]

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use workflow::prelude::*;
use workflow::ExecutionId;

/// The dependency of every generated workflow; each method is a task.
#[derive(Default)]
pub struct Svc {
    /// Calls of `status` per key.
    polls: Mutex<HashMap<u32, u32>>,
}

impl Svc {
    /// Forgets the calls of `status`, for a new run on the same `Svc`.
    pub fn reset(&self) {
        self.polls.lock().unwrap().clear();
    }

    pub async fn add(&self, a: u32, b: u32) -> u32 {
        (a + b) % 1000
    }

    /// Fails on `n % 11 == 7`.
    pub async fn check(&self, n: u32) -> Result<u32, GenError> {
        if n % 11 == 7 {
            Err(GenError::Bad(n))
        } else {
            Ok((n * 7 + 3) % 1000)
        }
    }

    /// The children's task: fails on `n % 13 == 4`.
    pub async fn probe(&self, n: u32) -> Result<u32, ChildError> {
        if n % 13 == 4 {
            Err(ChildError::Bad(n))
        } else {
            Ok(n % 10)
        }
    }

    /// The number of calls so far for `key` (so a poll for `*s > 2` is ready at its third
    /// attempt), an error when `key % 17 == 3`, never ready (0) when `key % 13 == 5`.
    pub async fn status(&self, key: &u32) -> Result<u32, GenError> {
        if key % 17 == 3 {
            return Err(GenError::Bad(*key));
        }
        if key % 13 == 5 {
            return Ok(0);
        }
        let mut polls = self.polls.lock().unwrap();
        let calls = polls.entry(*key).or_insert(0);
        *calls += 1;
        Ok(*calls)
    }
}

#[derive(WorkflowError, Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
pub enum GenError {
    #[error("bad value {0}")]
    #[workflow_error(name = "Gen.Bad")]
    Bad(u32),
    #[error("returned early at {0}")]
    #[workflow_error(name = "Gen.Early")]
    Early(u32),
    #[error(transparent)]
    #[workflow_error(transparent)]
    Poll(#[from] PollError),
    #[error(transparent)]
    #[workflow_error(transparent)]
    Child(#[from] NestedError<ChildError>),
}

impl From<NestedError<NoError>> for GenError {
    fn from(e: NestedError<NoError>) -> Self {
        GenError::Child(e.convert())
    }
}

#[derive(WorkflowError, Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
pub enum ChildError {
    #[error("child got bad value {0}")]
    #[workflow_error(name = "Child.Bad")]
    Bad(u32),
}

impl From<NoError> for ChildError {
    fn from(e: NoError) -> Self {
        match e {}
    }
}

/// What `call_nested!` returns for a child that ended with `r`, in a plain twin (the
/// child's id is not known there; comparisons ignore it).
fn nested<T, E>(r: Result<T, E>) -> Result<T, NestedError<E>> {
    r.map_err(|error| NestedError::Failed {
        child: ExecutionId::from("plain"),
        error,
    })
}

/// `nested` for an infallible child.
fn nested_ok<T>(value: T) -> Result<T, NestedError<NoError>> {
    Ok(value)
}

/// `call_nested!(parallel(a, b))` in a plain twin: both run at once, and the first
/// failure in time ends the batch (at the same instant, the first in input order).
async fn par2<A, B, E: From<F>, F>(
    a: impl Future<Output = Result<A, NestedError<E>>>,
    b: impl Future<Output = Result<B, NestedError<F>>>,
) -> Result<(A, B), NestedError<E>> {
    tokio::pin!(a, b);
    let (mut va, mut vb) = (None, None);
    while va.is_none() || vb.is_none() {
        tokio::select! {
            biased;
            r = &mut a, if va.is_none() => va = Some(r?),
            r = &mut b, if vb.is_none() => vb = Some(r.map_err(NestedError::convert::<E>)?),
        }
    }
    Ok((va.expect("done"), vb.expect("done")))
}

/// `call_nested!(for x in xs => child(x), max_concurrency = max)` in a plain twin: at
/// most `max` children at once, started in input order as others end; the first failure
/// in time ends the batch; the results in input order.
async fn map_nested<E, F, Fut>(xs: Vec<u32>, max: usize, mut child: F) -> Result<Vec<u32>, NestedError<E>>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<u32, E>>,
{
    let mut out: Vec<Option<u32>> = vec![None; xs.len()];
    let mut running = Vec::new();
    let mut next = 0;
    loop {
        while running.len() < max && next < xs.len() {
            let i = next;
            let f = child(xs[i]);
            running.push(Box::pin(async move { (i, f.await) }));
            next += 1;
        }
        if running.is_empty() {
            break;
        }
        // The first to end in time; at the same instant, the first started.
        let (at, (i, r)) = std::future::poll_fn(|cx| {
            for (at, f) in running.iter_mut().enumerate() {
                if let std::task::Poll::Ready(done) = f.as_mut().poll(cx) {
                    return std::task::Poll::Ready((at, done));
                }
            }
            std::task::Poll::Pending
        })
        .await;
        drop(running.remove(at));
        out[i] = Some(nested(r)?);
    }
    Ok(out.into_iter().map(|v| v.expect("every child ended")).collect())
}

/// `poll_until!(svc.status(key), ready, every, timeout, max_attempts)` in a plain twin,
/// as `workflow_runtime::poll` decides: wait, call, check; a call error is one too many
/// (`max_errors` is 0); then the attempts; no attempt starts past the deadline.
async fn poll_plain(
    svc: &Svc,
    key: &u32,
    ready: impl Fn(&u32) -> bool,
    every: Duration,
    timeout: Option<Duration>,
    max_attempts: Option<u32>,
) -> Result<Polled<u32>, PollError> {
    let started = tokio::time::Instant::now();
    let mut attempts: u32 = 0;
    let mut errors: u32 = 0;
    let mut last_error: Option<String> = None;
    loop {
        tokio::time::sleep(every).await;
        let answer = svc.status(key).await;
        attempts += 1;
        // The runtime's clock counts microseconds.
        let elapsed = Duration::from_micros(started.elapsed().as_micros() as u64);
        match answer {
            Ok(value) if ready(&value) => {
                return Ok(Polled {
                    value,
                    attempts,
                    elapsed,
                })
            }
            Ok(_) => {}
            Err(e) => {
                errors += 1;
                last_error = Some(e.to_string());
            }
        }
        if errors > 0 {
            return Err(PollError::TooManyErrors {
                attempts,
                errors,
                elapsed,
                last_error: last_error.unwrap_or_default(),
            });
        }
        if max_attempts.is_some_and(|max| attempts >= max) {
            return Err(PollError::AttemptsExhausted {
                attempts,
                elapsed,
                last_error,
            });
        }
        if timeout.is_some_and(|t| elapsed + every > t) {
            return Err(PollError::TimedOut {
                attempts,
                elapsed,
                last_error,
            });
        }
    }
}

/// A twin's result as the runtime records an outcome: the output, or the error, as JSON.
pub trait PlainOutcome {
    fn outcome(self) -> Result<Value, Value>;
}

impl PlainOutcome for u32 {
    fn outcome(self) -> Result<Value, Value> {
        Ok(json!(self))
    }
}

impl PlainOutcome for Result<u32, GenError> {
    fn outcome(self) -> Result<Value, Value> {
        match self {
            Ok(v) => Ok(json!(v)),
            Err(e) => Err(serde_json::to_value(e).expect("errors serialize")),
        }
    }
}
"#;

/// The children the generated workflows call.
const CHILD_WORKFLOWS: &str = r#"
/// A child with a task, a wait and an early `return Err`.
#[workflow]
pub async fn gen_child(svc: &Svc, n: u32) -> Result<u32, ChildError> {
    let v: u32 = svc.add(n, 3).await;
    sleep!(1.millis());
    if v % 11 == 7 {
        return Err(ChildError::Bad(v));
    }
    Ok(v * 2 % 1000)
}

/// An infallible child.
#[workflow]
pub async fn gen_double(svc: &Svc, n: u32) -> u32 {
    svc.add(n, n).await
}

/// A child with a loop of fallible tasks.
#[workflow]
pub async fn gen_child_loop(svc: &Svc, n: u32) -> Result<u32, ChildError> {
    let mut total: u32 = n;
    for i in 0..3u32 {
        total = svc.add(total, i).await;
        let probed: u32 = svc.probe(total).await?;
        total = (total + probed) % 1000;
    }
    Ok(total)
}
"#;

const CHILD_TWINS: &str = r#"
pub async fn gen_child_plain(svc: &Svc, n: u32) -> Result<u32, ChildError> {
    let v: u32 = svc.add(n, 3).await;
    tokio::time::sleep(1.millis()).await;
    if v % 11 == 7 {
        return Err(ChildError::Bad(v));
    }
    Ok(v * 2 % 1000)
}

pub async fn gen_double_plain(svc: &Svc, n: u32) -> u32 {
    svc.add(n, n).await
}

pub async fn gen_child_loop_plain(svc: &Svc, n: u32) -> Result<u32, ChildError> {
    let mut total: u32 = n;
    for i in 0..3u32 {
        total = svc.add(total, i).await;
        let probed: u32 = svc.probe(total).await?;
        total = (total + probed) % 1000;
    }
    Ok(total)
}
"#;

/// The module of the workflows. Its `allow` is a workaround: `#[workflow]` binds persisted
/// locals in resumed states that no longer read them, and rustc reports them unused
/// (a parameter read after an `if` whose yield is followed by `return`; a `for` item read
/// only in the condition of an `if` that yields). Lint attributes on the `fn` only reach
/// the generated struct, not the step function, so the allow has to be the module's.
/// The twins, outside it, keep the lint.
const WORKFLOWS_OPEN: &str = r#"
pub use workflows::*;

/// The workflows; their plain twins come after the module.
mod workflows {
    use super::*;
"#;

// ---------------------------------------------------------------------------------------
// The PRNG.

/// SplitMix64: small, fast, and the same on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`; the modulo bias does not matter here).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    /// An index into `weights`, chosen in proportion to them.
    fn weighted(&mut self, weights: &[usize]) -> usize {
        let total: usize = weights.iter().sum();
        let mut r = self.below(total);
        for (i, w) in weights.iter().enumerate() {
            if r < *w {
                return i;
            }
            r -= w;
        }
        unreachable!("r < total")
    }
}

/// Values of inputs and constants: small ones, both sides of the failure residues
/// (`% 11 == 7`, `% 13 == 4`, `% 13 == 5`, `% 17 == 3`), and large ones.
const POOL: &[u32] = &[
    0, 1, 2, 3, 4, 5, 6, 7, 9, 12, 18, 20, 25, 29, 40, 53, 77, 100, 250, 499, 500, 777, 998,
];

// ---------------------------------------------------------------------------------------
// One workflow.

/// A line of a body. `Split` lines differ between the workflow and its twin; `Open`,
/// `Mid` and `Close` carry the indentation of compound statements.
enum Line {
    Both(String),
    Split { workflow: String, plain: String },
    Open(String),
    Mid(String),
    Close(String),
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Workflow,
    Plain,
}

struct Var {
    name: String,
    used: bool,
    /// `xs: Vec<u32>` rather than a `u32`.
    vec: bool,
}

/// Something `break` (and for loops `continue`) can leave.
struct Target {
    label: String,
    label_used: bool,
    is_loop: bool,
    /// `break` must carry a value (a `loop` or a block whose value is bound).
    value: bool,
}

struct Gen<'r> {
    rng: &'r mut Rng,
    fallible: bool,
    value_block_yields: bool,
    untyped_for_iters: bool,
    next_id: u32,
    budget: i32,
    scopes: Vec<Vec<Var>>,
    targets: Vec<Target>,
    kinds: BTreeSet<&'static str>,
    acc_assigned: bool,
    svc_used: bool,
    yields: u32,
    /// Inside a labelled value block generated without yields.
    no_yields: u32,
}

/// The deepest nesting of compound statements.
const MAX_DEPTH: usize = 3;

struct Flow {
    name: String,
    params: Vec<(&'static str, &'static str)>,
    fallible: bool,
    body: Vec<Line>,
    kinds: BTreeSet<&'static str>,
    scenarios: Vec<String>,
}

impl Flow {
    fn generate(rng: &mut Rng, index: usize, config: &Config) -> Flow {
        let fallible = rng.chance(75);
        let mut params = vec![("a", "u32")];
        if rng.chance(55) {
            params.push(("b", "u32"));
        }
        if rng.chance(35) {
            params.push(("xs", "Vec<u32>"));
        }
        let mut g = Gen {
            rng,
            fallible,
            value_block_yields: config.value_block_yields,
            untyped_for_iters: config.untyped_for_iters,
            next_id: 0,
            budget: 0,
            scopes: vec![Vec::new()],
            targets: Vec::new(),
            kinds: BTreeSet::new(),
            acc_assigned: false,
            svc_used: false,
            yields: 0,
            no_yields: 0,
        };
        g.budget = g.rng.range(5, 20) as i32;
        for (p, ty) in &params {
            g.scopes[0].push(Var {
                name: (*p).to_owned(),
                used: false,
                vec: *ty != "u32",
            });
        }
        let init = g.expr();
        g.scopes[0].push(Var {
            name: "acc".to_owned(),
            used: true,
            vec: false,
        });
        let mut body = Vec::new();
        while g.budget > 0 {
            body.extend(g.stmt(0));
        }
        if !g.svc_used {
            body.insert(0, Line::Both("acc = svc.add(acc, 1).await;".to_owned()));
            g.acc_assigned = true;
            g.svc_used = true;
        }
        // The tail: an expression, or an `if` whose arms may yield.
        let tail = if g.rng.chance(25) {
            let c = g.cond();
            let mut lines = vec![Line::Open(format!("if {c} {{"))];
            lines.extend(g.value_arm(1, fallible));
            lines.push(Line::Mid("} else {".to_owned()));
            lines.extend(g.value_arm(1, fallible));
            lines.push(Line::Close("}".to_owned()));
            lines
        } else {
            let e = g.acc_expr();
            vec![Line::Both(if fallible { format!("Ok({e})") } else { e })]
        };
        body.extend(g.close_scope());
        let mutable = if g.acc_assigned { "mut " } else { "" };
        body.insert(0, Line::Both(format!("let {mutable}acc: u32 = {init};")));
        body.extend(tail);
        g.kinds.insert("end_of_body");
        let kinds = std::mem::take(&mut g.kinds);
        let scenarios = (0..g.rng.range(2, 4))
            .map(|_| scenario(g.rng, &params))
            .collect();
        Flow {
            name: format!("gen_{index:03}"),
            params,
            fallible,
            body,
            kinds,
            scenarios,
        }
    }

    fn render(&self, mode: Mode) -> String {
        let mut out = String::new();
        let params: Vec<String> = self
            .params
            .iter()
            .map(|(p, ty)| format!(", {p}: {ty}"))
            .collect();
        let ret = if self.fallible {
            "Result<u32, GenError>"
        } else {
            "u32"
        };
        let name = match mode {
            Mode::Workflow => {
                out.push_str("#[workflow]\n");
                self.name.clone()
            }
            Mode::Plain => format!("{}_plain", self.name),
        };
        let _ = writeln!(
            out,
            "pub async fn {name}(svc: &Svc{}) -> {ret} {{",
            params.concat()
        );
        let mut depth = 1;
        let pad = |d: usize| "    ".repeat(d);
        for line in &self.body {
            match line {
                Line::Both(s) => {
                    let _ = writeln!(out, "{}{s}", pad(depth));
                }
                Line::Split { workflow, plain } => {
                    let s = if mode == Mode::Workflow {
                        workflow
                    } else {
                        plain
                    };
                    for l in s.lines() {
                        let _ = writeln!(out, "{}{l}", pad(depth));
                    }
                }
                Line::Open(s) => {
                    let _ = writeln!(out, "{}{s}", pad(depth));
                    depth += 1;
                }
                Line::Mid(s) => {
                    let _ = writeln!(out, "{}{s}", pad(depth - 1));
                }
                Line::Close(s) => {
                    depth -= 1;
                    let _ = writeln!(out, "{}{s}", pad(depth));
                }
            }
        }
        out.push_str("}\n");
        out
    }
}

fn scenario(rng: &mut Rng, params: &[(&str, &str)]) -> String {
    let values: Vec<String> = params
        .iter()
        .map(|(_, ty)| {
            if *ty == "u32" {
                rng.pick(POOL).to_string()
            } else {
                let xs: Vec<String> = (0..rng.range(0, 4))
                    .map(|_| rng.pick(POOL).to_string())
                    .collect();
                format!("[{}]", xs.join(", "))
            }
        })
        .collect();
    if values.len() == 1 {
        values[0].clone()
    } else {
        format!("[{}]", values.join(", "))
    }
}

impl Gen<'_> {
    fn id(&mut self) -> u32 {
        self.next_id += 1;
        self.next_id
    }

    fn push_var(&mut self, name: String) {
        self.scopes.last_mut().expect("a scope").push(Var {
            name,
            used: false,
            vec: false,
        });
    }

    /// A `u32` in scope, marked used.
    fn var(&mut self) -> String {
        let all: Vec<(usize, usize)> = self
            .scopes
            .iter()
            .enumerate()
            .flat_map(|(s, vars)| {
                vars.iter()
                    .enumerate()
                    .filter(|(_, v)| !v.vec)
                    .map(move |(i, _)| (s, i))
            })
            .collect();
        let (s, i) = self.rng.pick(&all);
        let v = &mut self.scopes[s][i];
        v.used = true;
        v.name.clone()
    }

    fn xs(&mut self) -> Option<String> {
        let v = self.scopes[0].iter_mut().find(|v| v.vec)?;
        v.used = true;
        Some(v.name.clone())
    }

    fn lit(&mut self) -> u32 {
        self.rng.pick(POOL)
    }

    /// A `u32` expression below 1000 (every value in scope is), without outer parentheses.
    fn expr(&mut self) -> String {
        match self.rng.below(7) {
            0 | 1 => self.var(),
            2 => format!("({} + {}) % 1000", self.var(), self.lit()),
            3 => format!(
                "({} * {} + {}) % 1000",
                self.var(),
                self.rng.range(2, 9),
                self.lit()
            ),
            4 => format!("{} % {}", self.var(), self.rng.range(2, 50)),
            5 => format!("({} + {}) % 1000", self.var(), self.var()),
            _ => self.lit().to_string(),
        }
    }

    /// An expression that reads `acc` (every exit reads it, so no assignment is dead).
    fn acc_expr(&mut self) -> String {
        match self.rng.below(3) {
            0 => "acc".to_owned(),
            1 => format!("(acc + {}) % 1000", self.lit()),
            _ => format!("(acc + {}) % 1000", self.var()),
        }
    }

    fn cond(&mut self) -> String {
        match self.rng.below(5) {
            0 => {
                let k = self.rng.range(2, 5);
                format!("{} % {k} == {}", self.var(), self.rng.below(k))
            }
            1 => format!("{} > {}", self.var(), self.lit()),
            // `< 0` would be a useless comparison.
            2 => format!("{} < {}", self.var(), self.lit().max(1)),
            3 => {
                let k = self.rng.range(2, 4);
                format!(
                    "({} + {}) % {k} == {}",
                    self.var(),
                    self.var(),
                    self.rng.below(k)
                )
            }
            _ => {
                let k = self.rng.range(2, 3);
                format!("{} % {k} != {}", self.var(), self.rng.below(k))
            }
        }
    }

    fn open_scope(&mut self) {
        self.scopes.push(Vec::new());
    }

    /// Closes the innermost scope: every variable it declared and nothing read is folded
    /// into `acc`, so none is unused.
    fn close_scope(&mut self) -> Vec<Line> {
        let vars = self.scopes.pop().expect("a scope");
        let mut out = Vec::new();
        for v in vars.iter().filter(|v| !v.used) {
            self.acc_assigned = true;
            out.push(Line::Both(if v.vec {
                format!("acc = (acc + {}.len() as u32) % 1000;", v.name)
            } else {
                format!("acc = (acc + {}) % 1000;", v.name)
            }));
        }
        out
    }

    fn yields_allowed(&self) -> bool {
        self.no_yields == 0
    }

    /// `n` statements in the current scope.
    fn seq(&mut self, depth: usize, n: usize) -> Vec<Line> {
        let mut out = Vec::new();
        for _ in 0..n {
            if self.budget <= 0 {
                break;
            }
            out.extend(self.stmt(depth));
        }
        out
    }

    /// A scope of `lo..=hi` statements (at least one, budget or not).
    fn block(&mut self, depth: usize, lo: usize, hi: usize) -> Vec<Line> {
        self.open_scope();
        let n = self.rng.range(lo, hi);
        let mut out = self.seq(depth, n);
        if out.is_empty() {
            out.push(self.simple());
        }
        out.extend(self.close_scope());
        out
    }

    fn stmt(&mut self, depth: usize) -> Vec<Line> {
        self.budget -= 1;
        let y = if self.yields_allowed() { 1 } else { 0 };
        let c = if depth < MAX_DEPTH { 1 } else { 0 };
        let j = if self.targets.is_empty() { 0 } else { 1 };
        let weights = [
            6,      // simple
            14 * y, // task, check, sleep
            4 * y,  // poll
            5 * y,  // child
            7 * c,  // if
            3 * c,  // match
            4 * c,  // loop
            3 * c,  // while
            4 * c,  // for
            2 * c,  // labelled block
            2 * c,  // labelled value block
            2 * c,  // value `if`
            2 * c,  // value `match`
            8 * j,  // guarded jump
            2,      // guarded return
        ];
        match self.rng.weighted(&weights) {
            0 => vec![self.simple()],
            1 => self.task(),
            2 => self.poll(),
            3 => self.child(),
            4 => self.if_stmt(depth),
            5 => self.match_stmt(depth),
            6 => self.loop_stmt(depth),
            7 => self.while_stmt(depth),
            8 => self.for_stmt(depth),
            9 => self.unit_block(depth),
            10 => self.value_block(depth),
            11 => self.value_if(depth),
            12 => self.value_match(depth),
            13 => self.guarded_jump(None),
            _ => self.guarded_return(),
        }
    }

    fn simple(&mut self) -> Line {
        if self.rng.chance(50) {
            let id = self.id();
            let e = self.expr();
            self.push_var(format!("v{id}"));
            Line::Both(format!("let v{id}: u32 = {e};"))
        } else {
            self.acc_assigned = true;
            let e = self.expr();
            Line::Both(format!("acc = (acc + {e}) % 1000;"))
        }
    }

    fn task(&mut self) -> Vec<Line> {
        self.yields += 1;
        let id = self.id();
        match self.rng.below(7) {
            6 => {
                self.svc_used = true;
                self.acc_assigned = true;
                let (x, y) = (self.expr(), self.expr());
                vec![
                    Line::Both(format!("acc += svc.add({x}, {y}).await;")),
                    Line::Both("acc %= 1000;".to_owned()),
                ]
            }
            0 | 1 => {
                self.svc_used = true;
                let (x, y) = (self.expr(), self.expr());
                self.push_var(format!("v{id}"));
                vec![Line::Both(format!(
                    "let v{id}: u32 = svc.add({x}, {y}).await;"
                ))]
            }
            2 => {
                self.svc_used = true;
                self.acc_assigned = true;
                let x = self.expr();
                vec![Line::Both(format!("acc = svc.add(acc, {x}).await;"))]
            }
            3 => {
                self.svc_used = true;
                let x = self.expr();
                self.push_var(format!("v{id}"));
                if self.fallible && self.rng.chance(70) {
                    self.kinds.insert("try");
                    vec![Line::Both(format!(
                        "let v{id}: u32 = svc.check({x}).await?;"
                    ))]
                } else {
                    vec![
                        Line::Both(format!(
                            "let r{id}: Result<u32, GenError> = svc.check({x}).await;"
                        )),
                        Line::Both(format!("let v{id}: u32 = r{id}.unwrap_or(999);")),
                    ]
                }
            }
            _ => vec![Line::Split {
                workflow: "sleep!(1.millis());".to_owned(),
                plain: "tokio::time::sleep(1.millis()).await;".to_owned(),
            }],
        }
    }

    fn poll(&mut self) -> Vec<Line> {
        self.yields += 1;
        self.svc_used = true;
        let id = self.id();
        let key = self.var();
        let ready = self.rng.pick(&["*s > 2", "*s >= 2", "*s % 4 == 3"]);
        let (timeout, max_attempts) = self.rng.pick(&[
            (Some(10), None),
            (Some(20), None),
            (None, Some(3)),
            (Some(20), Some(4)),
        ]);
        let mut options = String::new();
        if let Some(t) = timeout {
            let _ = write!(options, ", timeout = {t}.millis()");
        }
        if let Some(m) = max_attempts {
            let _ = write!(options, ", max_attempts = {m}");
        }
        let timeout = timeout.map_or("None".to_owned(), |t| format!("Some({t}.millis())"));
        let max_attempts = max_attempts.map_or("None".to_owned(), |m| format!("Some({m})"));
        let call = |ty: &str, q: &str| Line::Split {
            workflow: format!(
                "let p{id}: {ty} = poll_until!(svc.status(&{key}), |s| {ready}, \
                 every = 1.millis(){options}){q};"
            ),
            plain: format!(
                "let p{id}: {ty} = poll_plain(svc, &{key}, |s| {ready}, 1.millis(), \
                 {timeout}, {max_attempts}).await{q};"
            ),
        };
        if self.fallible && self.rng.chance(75) {
            self.kinds.insert("try");
            self.acc_assigned = true;
            vec![
                call("Polled<u32>", "?"),
                Line::Both(format!(
                    "acc = (acc + p{id}.value + p{id}.attempts) % 1000;"
                )),
            ]
        } else {
            self.push_var(format!("v{id}"));
            vec![
                call("Result<Polled<u32>, PollError>", ""),
                Line::Both(format!("let v{id}: u32 = match p{id} {{")),
                Line::Both("    Ok(p) => (p.value + p.attempts) % 1000,".to_owned()),
                Line::Both(
                    "    Err(PollError::TimedOut { attempts, .. }) => 500 + attempts,".to_owned(),
                ),
                Line::Both(
                    "    Err(PollError::AttemptsExhausted { attempts, .. }) => 700 + attempts,"
                        .to_owned(),
                ),
                Line::Both("    Err(_) => 900,".to_owned()),
                Line::Both("};".to_owned()),
            ]
        }
    }

    fn child(&mut self) -> Vec<Line> {
        self.yields += 1;
        let id = self.id();
        if !self.fallible {
            let x = self.expr();
            self.push_var(format!("v{id}"));
            return vec![
                Line::Split {
                    workflow: format!(
                        "let r{id}: Result<u32, NestedError<NoError>> = \
                         call_nested!(gen_double({x}));"
                    ),
                    plain: format!(
                        "let r{id}: Result<u32, NestedError<NoError>> = \
                         nested_ok(gen_double_plain(svc, {x}).await);"
                    ),
                },
                Line::Both(format!("let v{id}: u32 = r{id}.unwrap_or(0);")),
            ];
        }
        let fallible_children = ["gen_child", "gen_child_loop"];
        match self.rng.below(5) {
            0 | 1 => {
                self.kinds.insert("try");
                let w = self
                    .rng
                    .pick(&["gen_child", "gen_child_loop", "gen_double"]);
                let x = self.expr();
                let wrap = if w == "gen_double" {
                    "nested_ok"
                } else {
                    "nested"
                };
                self.push_var(format!("v{id}"));
                vec![Line::Split {
                    workflow: format!("let v{id}: u32 = call_nested!({w}({x}))?;"),
                    plain: format!("let v{id}: u32 = {wrap}({w}_plain(svc, {x}).await)?;"),
                }]
            }
            2 => {
                self.kinds.insert("try");
                let a = self.rng.pick(&fallible_children);
                let b = self
                    .rng
                    .pick(&["gen_child", "gen_child_loop", "gen_double"]);
                let wrap = if b == "gen_double" {
                    "nested_ok"
                } else {
                    "nested"
                };
                let (x, y) = (self.expr(), self.expr());
                self.push_var(format!("v{id}"));
                self.push_var(format!("w{id}"));
                vec![Line::Split {
                    workflow: format!(
                        "let (v{id}, w{id}): (u32, u32) = \
                         call_nested!(parallel({a}({x}), {b}({y})))?;"
                    ),
                    plain: format!(
                        "let (v{id}, w{id}): (u32, u32) = par2(\n    \
                         async {{ nested({a}_plain(svc, {x}).await) }},\n    \
                         async {{ {wrap}({b}_plain(svc, {y}).await) }},\n).await?;"
                    ),
                }]
            }
            3 => {
                self.kinds.insert("try");
                self.acc_assigned = true;
                let w = self.rng.pick(&fallible_children);
                let xs = if self.rng.chance(60) { self.xs() } else { None };
                let items = match xs {
                    Some(xs) => format!("{xs}.clone()"),
                    _ => {
                        let n = self.rng.range(1, 3);
                        let items: Vec<String> = (0..n).map(|_| self.expr()).collect();
                        format!("vec![{}]", items.join(", "))
                    }
                };
                let max = self.rng.range(1, 3);
                vec![
                    Line::Split {
                        workflow: format!(
                            "let vs{id}: Vec<u32> = call_nested!(for x in {items} => \
                             {w}(x), max_concurrency = {max})?;"
                        ),
                        plain: format!(
                            "let vs{id}: Vec<u32> = map_nested({items}, {max}, |x| \
                             {w}_plain(svc, x)).await?;"
                        ),
                    },
                    Line::Both(format!("acc = (acc + vs{id}.iter().sum::<u32>()) % 1000;")),
                ]
            }
            _ => {
                // The child's error caught by the parent.
                let w = self.rng.pick(&fallible_children);
                let x = self.expr();
                self.push_var(format!("v{id}"));
                vec![
                    Line::Split {
                        workflow: format!(
                            "let r{id}: Result<u32, NestedError<ChildError>> = \
                             call_nested!({w}({x}));"
                        ),
                        plain: format!(
                            "let r{id}: Result<u32, NestedError<ChildError>> = \
                             nested({w}_plain(svc, {x}).await);"
                        ),
                    },
                    Line::Both(format!("let v{id}: u32 = match r{id} {{")),
                    Line::Both("    Ok(v) => v,".to_owned()),
                    Line::Both(
                        "    Err(NestedError::Failed { error: ChildError::Bad(n), .. }) => n + 1,"
                            .to_owned(),
                    ),
                    Line::Both("    Err(_) => 0,".to_owned()),
                    Line::Both("};".to_owned()),
                ]
            }
        }
    }

    /// Marks `fall_through` if the statement generated since `before` yields: its
    /// branches (never ending in a jump: jumps are guarded) fall through to what follows.
    fn fell_through(&mut self, before: u32) {
        if self.yields > before {
            self.kinds.insert("fall_through");
        }
    }

    fn if_stmt(&mut self, depth: usize) -> Vec<Line> {
        let before = self.yields;
        let c = self.cond();
        let mut out = vec![Line::Open(format!("if {c} {{"))];
        out.extend(self.block(depth + 1, 1, 3));
        if self.rng.chance(35) {
            let c = self.cond();
            out.push(Line::Mid(format!("}} else if {c} {{")));
            out.extend(self.block(depth + 1, 1, 3));
        }
        if self.rng.chance(50) {
            out.push(Line::Mid("} else {".to_owned()));
            out.extend(self.block(depth + 1, 1, 3));
        }
        out.push(Line::Close("}".to_owned()));
        self.fell_through(before);
        out
    }

    /// A scope of statements ending in an expression that reads `acc` (in `Ok(…)` if
    /// `ok`): an arm of a value `if` or `match`, or of the body's tail.
    fn value_arm(&mut self, depth: usize, ok: bool) -> Vec<Line> {
        self.open_scope();
        let n = self.rng.range(0, 2);
        let mut out = self.seq(depth, n);
        let tail = self.acc_expr();
        out.extend(self.close_scope());
        out.push(Line::Both(if ok { format!("Ok({tail})") } else { tail }));
        out
    }

    /// `let v: u32 = if c { …; x } else { …; y };`
    fn value_if(&mut self, depth: usize) -> Vec<Line> {
        let before = self.yields;
        let id = self.id();
        let c = self.cond();
        let mut out = vec![Line::Open(format!("let v{id}: u32 = if {c} {{"))];
        out.extend(self.value_arm(depth + 1, false));
        out.push(Line::Mid("} else {".to_owned()));
        out.extend(self.value_arm(depth + 1, false));
        out.push(Line::Close("};".to_owned()));
        self.push_var(format!("v{id}"));
        self.fell_through(before);
        out
    }

    /// `let v: u32 = match x % 4 { 0 => { …; a } … _ => { …; b } };`
    fn value_match(&mut self, depth: usize) -> Vec<Line> {
        let before = self.yields;
        let id = self.id();
        let v = self.var();
        let mut out = vec![Line::Open(format!("let v{id}: u32 = match {v} % 4 {{"))];
        for arm in ["0", "1..=2"] {
            if self.rng.chance(60) {
                out.push(Line::Open(format!("{arm} => {{")));
                out.extend(self.value_arm(depth + 1, false));
                out.push(Line::Close("}".to_owned()));
            }
        }
        out.push(Line::Open("_ => {".to_owned()));
        out.extend(self.value_arm(depth + 1, false));
        out.push(Line::Close("}".to_owned()));
        out.push(Line::Close("};".to_owned()));
        self.push_var(format!("v{id}"));
        self.fell_through(before);
        out
    }

    fn match_stmt(&mut self, depth: usize) -> Vec<Line> {
        let before = self.yields;
        let id = self.id();
        let v = self.var();
        let mut out = vec![Line::Open(format!("match {v} % 6 {{"))];
        let guard = format!("m{id} if m{id} % 2 == 1");
        for arm in ["0", "1 | 2", "3..=4", guard.as_str()] {
            if self.rng.chance(55) {
                out.push(Line::Open(format!("{arm} => {{")));
                out.extend(self.block(depth + 1, 1, 2));
                out.push(Line::Close("}".to_owned()));
            }
        }
        out.push(Line::Open("_ => {".to_owned()));
        out.extend(self.block(depth + 1, 1, 2));
        out.push(Line::Close("}".to_owned()));
        out.push(Line::Close("}".to_owned()));
        self.fell_through(before);
        out
    }

    fn push_target(&mut self, prefix: char, id: u32, is_loop: bool, value: bool) {
        self.targets.push(Target {
            label: format!("'{prefix}{id}"),
            label_used: false,
            is_loop,
            value,
        });
    }

    /// The label of a construct whose target was just popped, if a jump used it.
    fn label_of(t: &Target) -> String {
        if t.label_used {
            format!("{}: ", t.label)
        } else {
            String::new()
        }
    }

    fn loop_stmt(&mut self, depth: usize) -> Vec<Line> {
        let id = self.id();
        let bound = self.rng.range(1, 3);
        let value = self.rng.chance(35);
        let mut out = vec![Line::Both(format!("let mut i{id}: u32 = 0;"))];
        self.scopes.last_mut().expect("a scope").push(Var {
            name: format!("i{id}"),
            used: true,
            vec: false,
        });
        self.push_target('l', id, true, value);
        self.open_scope();
        let mut body = vec![
            Line::Both(format!("i{id} += 1;")),
            Line::Open(format!("if i{id} > {bound} {{")),
        ];
        if value {
            self.kinds.insert("break_value");
            let e = self.acc_expr();
            body.push(Line::Both(format!("break {e};")));
        } else {
            self.kinds.insert("break");
            body.push(Line::Both("break;".to_owned()));
        }
        body.push(Line::Close("}".to_owned()));
        let n = self.rng.range(1, 4);
        body.extend(self.seq(depth + 1, n));
        body.extend(self.close_scope());
        let t = self.targets.pop().expect("the loop's target");
        let label = Self::label_of(&t);
        if value {
            out.push(Line::Open(format!("let v{id}: u32 = {label}loop {{")));
            out.extend(body);
            out.push(Line::Close("};".to_owned()));
            self.push_var(format!("v{id}"));
        } else {
            out.push(Line::Open(format!("{label}loop {{")));
            out.extend(body);
            out.push(Line::Close("}".to_owned()));
        }
        out
    }

    fn while_stmt(&mut self, depth: usize) -> Vec<Line> {
        let id = self.id();
        let bound = self.rng.range(1, 3);
        let mut out = vec![Line::Both(format!("let mut i{id}: u32 = 0;"))];
        self.scopes.last_mut().expect("a scope").push(Var {
            name: format!("i{id}"),
            used: true,
            vec: false,
        });
        self.push_target('l', id, true, false);
        self.open_scope();
        let mut body = vec![Line::Both(format!("i{id} += 1;"))];
        let n = self.rng.range(1, 4);
        body.extend(self.seq(depth + 1, n));
        body.extend(self.close_scope());
        let t = self.targets.pop().expect("the loop's target");
        let label = Self::label_of(&t);
        out.push(Line::Open(format!("{label}while i{id} < {bound} {{")));
        out.extend(body);
        out.push(Line::Close("}".to_owned()));
        out
    }

    fn for_stmt(&mut self, depth: usize) -> Vec<Line> {
        let id = self.id();
        let mut out = Vec::new();
        let untyped = self.untyped_for_iters;
        let items = match self.rng.below(4) {
            0 => format!("0..{}u32", self.rng.range(1, 3)),
            1 if untyped => format!("0..{} % 4", self.var()),
            1 => {
                let v = self.var();
                out.push(Line::Both(format!("let n{id}: u32 = {v} % 4;")));
                format!("0..n{id}")
            }
            k => {
                let xs = if k == 2 { self.xs() } else { None };
                let items = match xs {
                    Some(xs) => format!("{xs}.clone()"),
                    None => {
                        let n = self.rng.range(1, 3);
                        let mut items: Vec<String> = (0..n).map(|_| self.expr()).collect();
                        // The macro reads a loop's item type from the code; literals
                        // alone do not show it (see `for` loops in the crate docs).
                        if untyped && items.iter().all(|i| i.bytes().all(|b| b.is_ascii_digit())) {
                            items[0].push_str("u32");
                        }
                        format!("vec![{}]", items.join(", "))
                    }
                };
                if untyped {
                    items
                } else {
                    out.push(Line::Both(format!("let ys{id}: Vec<u32> = {items};")));
                    format!("ys{id}")
                }
            }
        };
        self.push_target('l', id, true, false);
        self.open_scope();
        self.push_var(format!("x{id}"));
        let n = self.rng.range(1, 4);
        let body = self.seq(depth + 1, n);
        let mut body = if body.is_empty() {
            vec![self.simple()]
        } else {
            body
        };
        body.extend(self.close_scope());
        let t = self.targets.pop().expect("the loop's target");
        let label = Self::label_of(&t);
        out.push(Line::Open(format!("{label}for x{id} in {items} {{")));
        out.extend(body);
        out.push(Line::Close("}".to_owned()));
        out
    }

    /// `'b: { …; if c { break 'b; } …; }`, yields on both sides of the break.
    fn unit_block(&mut self, depth: usize) -> Vec<Line> {
        let id = self.id();
        self.push_target('b', id, false, false);
        self.open_scope();
        let n = self.rng.range(0, 2);
        let mut body = self.seq(depth + 1, n);
        let at = self.targets.len() - 1;
        body.extend(self.guarded_jump(Some(at)));
        let n = self.rng.range(0, 2);
        body.extend(self.seq(depth + 1, n));
        body.extend(self.close_scope());
        let t = self.targets.pop().expect("the block's target");
        let mut out = vec![Line::Open(format!("{}: {{", t.label))];
        out.extend(body);
        out.push(Line::Close("}".to_owned()));
        out
    }

    /// `let v: u32 = 'b: { …; if c { break 'b x; } …; y };`. Without
    /// [`Config::value_block_yields`] its statements are plain code.
    fn value_block(&mut self, depth: usize) -> Vec<Line> {
        let id = self.id();
        if !self.value_block_yields {
            self.no_yields += 1;
        }
        self.push_target('b', id, false, true);
        self.open_scope();
        let n = self.rng.range(0, 2);
        let mut body = self.seq(depth + 1, n);
        let at = self.targets.len() - 1;
        body.extend(self.guarded_jump(Some(at)));
        let n = self.rng.range(0, 2);
        body.extend(self.seq(depth + 1, n));
        let tail = self.acc_expr();
        body.extend(self.close_scope());
        body.push(Line::Both(tail));
        let t = self.targets.pop().expect("the block's target");
        if !self.value_block_yields {
            self.no_yields -= 1;
        }
        self.push_var(format!("v{id}"));
        let mut out = vec![Line::Open(format!("let v{id}: u32 = {}: {{", t.label))];
        out.extend(body);
        out.push(Line::Close("};".to_owned()));
        out
    }

    /// A statement or none before a jump inside an `if`.
    fn guard_body(&mut self) -> Vec<Line> {
        if self.rng.chance(50) {
            return Vec::new();
        }
        if self.yields_allowed() && self.rng.chance(60) {
            self.task()
        } else {
            vec![self.simple()]
        }
    }

    /// `if c { [stmt;] break/continue …; }` to `forced` (an index into `targets`) or a
    /// random target.
    fn guarded_jump(&mut self, forced: Option<usize>) -> Vec<Line> {
        let t = forced.unwrap_or_else(|| self.rng.below(self.targets.len()));
        let innermost = t == self.targets.len() - 1;
        let is_loop = self.targets[t].is_loop;
        let cont = is_loop && self.rng.chance(40);
        // An unlabelled jump leaves the innermost loop, and may not cross a labelled block.
        let labelled = !(innermost && is_loop) || self.rng.chance(50);
        let c = self.cond();
        let mut out = vec![Line::Open(format!("if {c} {{"))];
        self.open_scope();
        out.extend(self.guard_body());
        let value = if !cont && self.targets[t].value {
            Some(self.acc_expr())
        } else {
            None
        };
        out.extend(self.close_scope());
        let target = &mut self.targets[t];
        let label = if labelled {
            target.label_used = true;
            format!(" {}", target.label)
        } else {
            String::new()
        };
        let jump = if cont { "continue" } else { "break" };
        let kind = match (is_loop, cont, labelled, value.is_some()) {
            (false, ..) => "block_break",
            (true, true, false, _) => "continue",
            (true, true, true, _) => "continue_label",
            (true, false, _, true) => "break_value",
            (true, false, false, false) => "break",
            (true, false, true, false) => "break_label",
        };
        self.kinds.insert(kind);
        if is_loop && !cont && labelled && value.is_some() {
            self.kinds.insert("break_label");
        }
        let value = value.map(|v| format!(" {v}")).unwrap_or_default();
        out.push(Line::Both(format!("{jump}{label}{value};")));
        out.push(Line::Close("}".to_owned()));
        out
    }

    fn guarded_return(&mut self) -> Vec<Line> {
        self.kinds.insert("return");
        let c = self.cond();
        let mut out = vec![Line::Open(format!("if {c} {{"))];
        self.open_scope();
        out.extend(self.guard_body());
        let e = self.acc_expr();
        out.extend(self.close_scope());
        out.push(Line::Both(if !self.fallible {
            format!("return {e};")
        } else if self.rng.chance(50) {
            format!("return Ok({e});")
        } else {
            format!("return Err(GenError::Early({e}));")
        }));
        out.push(Line::Close("}".to_owned()));
        out
    }
}

// ---------------------------------------------------------------------------------------
// The tables after the workflows.

fn manifest(flows: &[Flow]) -> String {
    let mut out = String::from(
        "\n/// The exits each workflow's code contains (the kinds of xtask's `gen::EXIT_KINDS`).\n\
         pub const MANIFEST: &[(&str, &[&str])] = &[\n",
    );
    for f in flows {
        let kinds: Vec<String> = f.kinds.iter().map(|k| format!("\"{k}\"")).collect();
        let _ = writeln!(out, "    (\"{}\", &[{}]),", f.name, kinds.join(", "));
    }
    out.push_str("];\n");
    out
}

fn scenarios(flows: &[Flow]) -> String {
    let mut out = String::from(
        "\n/// (workflow name, JSON input) of every run: 2 to 4 per workflow.\n\
         pub fn scenarios() -> Vec<(&'static str, Value)> {\n    vec![\n",
    );
    for f in flows {
        for s in &f.scenarios {
            let _ = writeln!(out, "        (\"{}\", json!({s})),", f.name);
        }
    }
    out.push_str("    ]\n}\n");
    out
}

fn dispatch(flows: &[Flow]) -> String {
    let mut out = String::from(
        "\n/// Runs the plain twin of workflow `name` on `input`: its output, or its error, as\n\
         /// JSON.\n\
         pub async fn run_plain(svc: &Svc, name: &str, input: Value) -> Result<Value, Value> {\n    \
         match name {\n",
    );
    for f in flows {
        let names: Vec<&str> = f.params.iter().map(|(p, _)| *p).collect();
        let tys: Vec<&str> = f.params.iter().map(|(_, t)| *t).collect();
        let (pat, ty) = if names.len() == 1 {
            (names[0].to_owned(), tys[0].to_owned())
        } else {
            (
                format!("({})", names.join(", ")),
                format!("({})", tys.join(", ")),
            )
        };
        let _ = writeln!(out, "        \"{}\" => {{", f.name);
        let _ = writeln!(
            out,
            "            let {pat}: {ty} = serde_json::from_value(input).expect(\"an input of {}\");",
            f.name
        );
        let _ = writeln!(
            out,
            "            {}_plain(svc, {}).await.outcome()",
            f.name,
            names.join(", ")
        );
        out.push_str("        }\n");
    }
    out.push_str("        other => panic!(\"`{other}` is not a generated workflow\"),\n");
    out.push_str("    }\n}\n");
    out
}

fn register(flows: &[Flow]) -> String {
    let mut out = String::from(
        "\n/// Registers every generated workflow (the children come along) and a `Svc` with a\n\
         /// builder that has `.register(w)` and `.dependency(v)`:\n\
         /// `generated_workflows!(flows, Runtime::builder())`, `flows` being this module.\n\
         #[allow(unused_macros)]\n\
         macro_rules! generated_workflows {\n    \
         ($m:ident, $builder:expr) => {\n        $builder\n",
    );
    for f in flows {
        let _ = writeln!(out, "            .register($m::{})", f.name);
    }
    out.push_str("            .dependency($m::Svc::default())\n    };\n}\n");
    out.push_str("#[allow(unused_imports)]\npub(crate) use generated_workflows;\n");
    out
}
