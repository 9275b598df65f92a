//! Robustness: on any input, [`expand`] returns generated code or spanned errors, and never
//! panics.
//!
//! A seeded generator writes workflow functions from a grammar of what `#[workflow]` takes
//! (signatures, plain statements, every yield point form, branches, loops, jumps, returns,
//! nested blocks, shadowing), with deliberate mistakes in some cases and random token edits
//! (delete, duplicate, swap, replace, insert, re-delimit or unwrap a group) in others. Each
//! input goes through [`expand`], and:
//! - a panic is a failure;
//! - every error of a rejection must be spanned on the input, not on `Span::call_site()`;
//! - an accepted input's expansion must parse as a file.
//!
//! Every distinct failure of a run is reported, shrunk (token trees dropped while it still
//! fails the same way) and printed with the input it was found on. The run is
//! deterministic: `WORKFLOW_FUZZ_CASES=100000` runs more cases, `WORKFLOW_FUZZ_SEED=<u64>`
//! others, `WORKFLOW_FUZZ_STRICT=1` fails on the known bugs too. The closing counts show
//! with `cargo test -p workflow-macros fuzz -- --nocapture`.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe, PanicHookInfo};
use std::str::FromStr;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use proc_macro2::{Delimiter, Group, Span, TokenStream, TokenTree};
use proptest::prelude::any;
use proptest::test_runner::{Config, RngSeed, TestRunner};

use crate::expand::expand;

const DEFAULT_CASES: u64 = 10_000;
const DEFAULT_SEED: u64 = 0x5EED_F10E;
/// Fixed, so a seed names the same cases on any machine; the CI machines have 2 cores.
const WORKERS: u64 = 2;

#[test]
fn expand_never_panics_and_spans_every_rejection() {
    let cases = env_u64("WORKFLOW_FUZZ_CASES").unwrap_or(DEFAULT_CASES);
    let seed = env_u64("WORKFLOW_FUZZ_SEED").unwrap_or(DEFAULT_SEED);
    let strict = std::env::var_os("WORKFLOW_FUZZ_STRICT").is_some();
    assert_span_convention();

    let quiet = QuietPanics::install();
    let started = Instant::now();
    let stats = thread::scope(|s| {
        let workers: Vec<_> = (0..WORKERS)
            .map(|w| {
                let n = cases / WORKERS + u64::from(w < cases % WORKERS);
                thread::Builder::new()
                    .name(format!("fuzz-{w}"))
                    // syn recurses deeply in a debug build.
                    .stack_size(16 << 20)
                    .spawn_scoped(s, move || fuzz(seed.wrapping_add(w), n))
                    .expect("spawn a fuzz worker")
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("a fuzz worker panicked"))
            .fold(Stats::default(), Stats::merge)
    });
    let elapsed = started.elapsed();
    println!("{}", stats.summary(seed, elapsed));

    let mut reports = Vec::new();
    let mut known_hits = vec![0; KNOWN.len()];
    for found in &stats.failures {
        let known = KNOWN
            .iter()
            .position(|k| (k.matches)(&found.input, &found.failure));
        match known {
            Some(k) if !strict => known_hits[k] += found.count,
            _ => reports.push(found.report()),
        }
    }
    for (k, hits) in KNOWN.iter().zip(known_hits).filter(|(_, n)| *n > 0) {
        println!(
            "known macro bug, not failing ({hits} cases): {}\n  e.g. args `{}`, item `{}`",
            k.what, k.example.0, k.example.1
        );
    }
    for k in KNOWN {
        let reproduces = matches!(
            run_source(k.example.0, k.example.1),
            Outcome::Failed(f) if (k.matches)(&Input::new(k.example), &f)
        );
        if !reproduces {
            println!(
                "known macro bug no longer reproduces, remove it from KNOWN: {}",
                k.what
            );
        }
    }
    drop(quiet);
    assert!(
        reports.is_empty(),
        "{} distinct failure(s):\n\n{}",
        reports.len(),
        reports.join("\n")
    );
    assert!(
        stats.accepted * 5 >= stats.generated,
        "only {} of {} cases were accepted: the grammar no longer reaches the lowering",
        stats.accepted,
        stats.generated
    );
}

/// `n` cases from a proptest runner seeded with `seed`.
fn fuzz(seed: u64, n: u64) -> Stats {
    let stats = RefCell::new(Stats::default());
    let mut runner = TestRunner::new(Config {
        cases: u32::try_from(n).expect("WORKFLOW_FUZZ_CASES fits in a u32 per worker"),
        rng_seed: RngSeed::Fixed(seed),
        // A seed reproduces a run; no regression files are written into the repo.
        failure_persistence: None,
        // Failures are collected, every distinct one in one run, and shrunk on their
        // tokens by `minimize`: shrinking a seed only gives an unrelated input.
        max_shrink_iters: 0,
        ..Config::default()
    });
    let result = runner.run(&any::<u64>(), |case_seed| {
        // No span of the previous case is alive: free proc-macro2's source map.
        proc_macro2::extra::invalidate_current_thread_spans();
        let input = Input::generate(case_seed);
        let outcome = run_source(&input.args, &input.item);
        stats.borrow_mut().record(case_seed, input, outcome);
        Ok(())
    });
    if let Err(e) = result {
        panic!("the fuzz driver failed: {e}");
    }
    stats.into_inner()
}

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    let n = value.parse();
    Some(n.unwrap_or_else(|_| panic!("{name} must be an integer, got {value:?}")))
}

// ---------------------------------------------------------------------------------------
// Known bugs.

/// A failure of the macro this test found, reported and not yet fixed.
struct Known {
    what: &'static str,
    /// A small input that shows it: (attribute arguments, item).
    example: (&'static str, &'static str),
    matches: fn(&Input, &Failure) -> bool,
}

/// Printed but not failing the test (unless `WORKFLOW_FUZZ_STRICT` is set). Delete an entry
/// with its fix; the test says when one no longer reproduces.
const KNOWN: &[Known] = &[
    Known {
        what: "truncated attribute arguments (`name`, `name =`, `crate =`): syn's \
               end-of-input error is at Span::call_site(), which is the whole attribute in \
               a real compile",
        example: ("name =", "async fn f() {}"),
        matches: |input, f| {
            matches!(f, Failure::Unspanned(..))
                && matches!(
                    run_source(&input.args, "async fn f() {}"),
                    Outcome::Failed(g) if g.same_kind(f)
                )
        },
    },
    Known {
        what: "an item cut short (`async fn f() -> u32`, `fn f<T`): syn's error at its \
               end is at Span::call_site(); rustc never passes an incomplete item to an \
               attribute",
        example: ("", "async fn f() -> u32"),
        matches: |input, f| {
            // syn's own error on the item, which is at its end as it is unspanned.
            let Failure::Unspanned(message, _) = f else {
                return false;
            };
            syn::parse_str::<syn::ItemFn>(&input.item).is_err_and(|e| e.to_string() == *message)
        },
    },
];

// ---------------------------------------------------------------------------------------
// One case: run it, classify the outcome.

/// An input: the attribute's arguments and the item, as source text.
#[derive(Clone)]
struct Input {
    args: String,
    item: String,
    mutated: bool,
    /// Written without deliberate mistakes (and not token-edited): meant to be accepted.
    meant_ok: bool,
    shape: Shape,
}

/// What a generated body contains, for the closing counts.
#[derive(Clone, Copy, Default)]
struct Shape {
    yield_in_branch: bool,
    yield_in_loop: bool,
    break_value: bool,
    labelled_jump: bool,
    early_return: bool,
}

impl Shape {
    const NAMES: [&'static str; 5] = [
        "a yield point in a branch or block",
        "a yield point in a loop",
        "`break value` out of a `loop`",
        "a labelled `break`/`continue`",
        "an early `return`",
    ];

    fn flags(self) -> [bool; 5] {
        [
            self.yield_in_branch,
            self.yield_in_loop,
            self.break_value,
            self.labelled_jump,
            self.early_return,
        ]
    }
}

impl Input {
    fn new((args, item): (&str, &str)) -> Self {
        Input {
            args: args.to_owned(),
            item: item.to_owned(),
            mutated: false,
            meant_ok: false,
            shape: Shape::default(),
        }
    }
}

enum Outcome {
    Accepted,
    /// The first error's message.
    Rejected(String),
    Failed(Failure),
    /// Not a token stream (only a shrinking step can produce one).
    Untokenizable,
}

#[derive(Clone, PartialEq, Eq)]
enum Failure {
    /// The panic's message and location.
    Panic(String),
    /// An error not spanned on the input: its message and where it points.
    Unspanned(String, String),
    /// An accepted input whose expansion is not a file: syn's error.
    BadOutput(String),
}

impl Failure {
    /// Whether two failures are one bug: names in messages change as tokens are dropped.
    fn same_kind(&self, other: &Failure) -> bool {
        match (self, other) {
            (Failure::Panic(a), Failure::Panic(b)) => head(a) == head(b),
            (Failure::Unspanned(a, _), Failure::Unspanned(b, _)) => head(a) == head(b),
            (Failure::BadOutput(_), Failure::BadOutput(_)) => true,
            _ => false,
        }
    }

    fn describe(&self) -> String {
        match self {
            Failure::Panic(m) => format!("panicked: {m}"),
            Failure::Unspanned(m, at) => format!("error not spanned on the input, at {at}: {m}"),
            Failure::BadOutput(m) => format!("the expansion is not a Rust file: {m}"),
        }
    }
}

/// Inputs start with a newline: proc-macro2 puts `Span::call_site()` at line 1, column 0
/// (its empty dummy file), so `line > 0` would not tell it from a span on the input, and
/// `line >= 2` does.
fn parse_source(src: &str) -> Option<TokenStream> {
    TokenStream::from_str(&format!("\n{src}")).ok()
}

fn spanned_on_input(span: Span) -> bool {
    span.start().line >= 2
}

fn assert_span_convention() {
    assert_eq!(Span::call_site().start().line, 1);
    let tokens = parse_source("fn f() {}").expect("tokenizes");
    let first = tokens.into_iter().next().expect("a token");
    assert_eq!(first.span().start().line, 2);
}

fn run_source(args: &str, item: &str) -> Outcome {
    match (parse_source(args), parse_source(item)) {
        (Some(args), Some(item)) => run(args, item),
        _ => Outcome::Untokenizable,
    }
}

fn run(args: TokenStream, item: TokenStream) -> Outcome {
    LAST_PANIC.with(|p| p.borrow_mut().take());
    CATCHING.with(|c| c.set(true));
    let result = panic::catch_unwind(AssertUnwindSafe(|| expand(args, item)));
    CATCHING.with(|c| c.set(false));
    match result {
        Err(payload) => {
            let message = LAST_PANIC
                .with(|p| p.borrow_mut().take())
                .unwrap_or_else(|| payload_message(&*payload));
            Outcome::Failed(Failure::Panic(message))
        }
        Ok(Ok(tokens)) => match syn::parse2::<syn::File>(tokens) {
            Ok(_) => Outcome::Accepted,
            Err(e) => Outcome::Failed(Failure::BadOutput(e.to_string())),
        },
        Ok(Err(error)) => {
            let first = error.to_string();
            for e in error {
                let span = e.span();
                if !spanned_on_input(span) {
                    let at = format!("{:?} (line {})", span, span.start().line);
                    return Outcome::Failed(Failure::Unspanned(e.to_string(), at));
                }
            }
            Outcome::Rejected(first)
        }
    }
}

fn payload_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(a non-string panic payload)".to_owned())
}

// ---------------------------------------------------------------------------------------
// Panics inside `expand` are caught: keep them off the test's output.

thread_local! {
    /// Set while this thread runs `expand` under `catch_unwind`.
    static CATCHING: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

type Hook = Box<dyn Fn(&PanicHookInfo<'_>) + Sync + Send + 'static>;

/// Records the panics of `expand` instead of printing them, and forwards every other one
/// (of other tests, or of this one failing); the previous hook is restored on drop.
struct QuietPanics {
    previous: Arc<Hook>,
}

impl QuietPanics {
    fn install() -> Self {
        let previous: Arc<Hook> = Arc::new(panic::take_hook());
        let forward = Arc::clone(&previous);
        panic::set_hook(Box::new(move |info| {
            if CATCHING.with(Cell::get) {
                let location = info
                    .location()
                    .map_or_else(|| "?".to_owned(), ToString::to_string);
                let message = format!("{} at {location}", payload_message(info.payload()));
                LAST_PANIC.with(|p| *p.borrow_mut() = Some(message));
            } else {
                forward(info);
            }
        }));
        QuietPanics { previous }
    }
}

impl Drop for QuietPanics {
    fn drop(&mut self) {
        // The hook cannot be changed while unwinding; ours forwards that panic anyway.
        if !thread::panicking() {
            let previous = Arc::clone(&self.previous);
            panic::set_hook(Box::new(move |info| previous(info)));
        }
    }
}

// ---------------------------------------------------------------------------------------
// Counts for the closing note, and the failures found.

#[derive(Default)]
struct Stats {
    generated: usize,
    mutated: usize,
    accepted: usize,
    rejected: usize,
    /// Cases not token-edited with each of `Shape::NAMES`: (generated, accepted).
    shapes: [(usize, usize); 5],
    /// Cases meant to be accepted: (generated, accepted).
    meant_ok: (usize, usize),
    /// The first case meant to be accepted and rejected: the grammar and the macro
    /// disagree on what is supported.
    refused: Option<(String, Input)>,
    /// First error of each rejection, by its message without names.
    reasons: BTreeMap<String, usize>,
    failures: Vec<Found>,
}

/// The first input that failed in a distinct way, and how many did.
struct Found {
    failure: Failure,
    seed: u64,
    input: Input,
    count: usize,
}

impl Stats {
    fn record(&mut self, seed: u64, input: Input, outcome: Outcome) {
        self.generated += 1;
        self.mutated += usize::from(input.mutated);
        if !input.mutated {
            let accepted = matches!(outcome, Outcome::Accepted);
            for (n, flag) in self.shapes.iter_mut().zip(input.shape.flags()) {
                n.0 += usize::from(flag);
                n.1 += usize::from(flag && accepted);
            }
        }
        if input.meant_ok {
            self.meant_ok.0 += 1;
            self.meant_ok.1 += usize::from(matches!(outcome, Outcome::Accepted));
        }
        match outcome {
            Outcome::Accepted => self.accepted += 1,
            Outcome::Rejected(message) => {
                self.rejected += 1;
                *self.reasons.entry(head(&message)).or_default() += 1;
                if input.meant_ok && self.refused.is_none() {
                    self.refused = Some((message, input));
                }
            }
            Outcome::Failed(failure) => self.found(Found {
                failure,
                seed,
                input,
                count: 1,
            }),
            Outcome::Untokenizable => unreachable!(
                "the generator wrote an input that does not tokenize:\n{}\n{}",
                input.args, input.item
            ),
        }
    }

    fn found(&mut self, new: Found) {
        match self
            .failures
            .iter_mut()
            .find(|f| f.failure.same_kind(&new.failure))
        {
            Some(f) => f.count += new.count,
            None => self.failures.push(new),
        }
    }

    fn merge(mut self, other: Stats) -> Stats {
        self.generated += other.generated;
        self.mutated += other.mutated;
        self.accepted += other.accepted;
        self.rejected += other.rejected;
        self.meant_ok = (
            self.meant_ok.0 + other.meant_ok.0,
            self.meant_ok.1 + other.meant_ok.1,
        );
        self.refused = self.refused.or(other.refused);
        for (n, m) in self.shapes.iter_mut().zip(other.shapes) {
            *n = (n.0 + m.0, n.1 + m.1);
        }
        for (reason, n) in other.reasons {
            *self.reasons.entry(reason).or_default() += n;
        }
        for f in other.failures {
            self.found(f);
        }
        self
    }

    fn summary(&self, seed: u64, elapsed: Duration) -> String {
        let mut reasons: Vec<(&String, &usize)> = self.reasons.iter().collect();
        reasons.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let top: String = reasons
            .iter()
            .take(12)
            .map(|(r, n)| format!("\n  {n:>6}  {r}"))
            .collect();
        let shapes: String = Shape::NAMES
            .iter()
            .zip(self.shapes)
            .map(|(name, (n, ok))| format!("\n  {ok:>6} of {n:>5}  {name}"))
            .collect();
        let refused = match &self.refused {
            Some((message, input)) => format!(
                "; the first one rejected: {message}\nargs: {}\nitem:\n{}",
                input.args, input.item
            ),
            None => String::new(),
        };
        let failed: usize = self.failures.iter().map(|f| f.count).sum();
        let (meant, meant_accepted) = self.meant_ok;
        format!(
            "fuzz: {} cases (seed {seed:#x}, {} token-edited) in {elapsed:.1?}: {} accepted \
             ({:.0}%), {} rejected, {failed} failed ({} distinct)\n\
             accepted of the cases (not token-edited) with:{shapes}\n\
             most frequent first errors of the rejected:{top}\n\
             {meant_accepted} of the {meant} cases written to be accepted were accepted{refused}",
            self.generated,
            self.mutated,
            self.accepted,
            100.0 * self.accepted as f64 / self.generated.max(1) as f64,
            self.rejected,
            self.failures.len(),
        )
    }
}

impl Found {
    fn report(&self) -> String {
        let Found {
            failure,
            seed,
            input,
            count,
        } = self;
        let shrunk = match minimize(input, failure) {
            Some(m) => format!(
                "shrunk (same failure):\n  args: {}\n  item: {}\n",
                m.args, m.item
            ),
            None => String::new(),
        };
        format!(
            "{} ({count} cases; first: case seed {seed}{})\nargs: {}\nitem:\n{}\n{shrunk}",
            failure.describe(),
            if input.mutated { ", token-edited" } else { "" },
            input.args,
            input.item,
        )
    }
}

/// A message without the names in it, so messages about different locals count as one.
fn head(message: &str) -> String {
    let mut out = String::new();
    let mut quoted = false;
    for c in message.chars() {
        match c {
            '`' if quoted => out.push_str("…`"),
            '`' => out.push('`'),
            _ if quoted => continue,
            c => out.push(c),
        }
        quoted ^= c == '`';
    }
    out.chars().take(90).collect()
}

// ---------------------------------------------------------------------------------------
// Random numbers: SplitMix64, seeded by proptest.

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// One of the space-separated words of `words`.
    fn word(&mut self, words: &'static str) -> &'static str {
        let i = self.below(words.split_whitespace().count());
        words
            .split_whitespace()
            .nth(i)
            .expect("`i` is below the count")
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

// ---------------------------------------------------------------------------------------
// The grammar.

impl Input {
    fn generate(seed: u64) -> Input {
        let mut rng = Rng(seed);
        // Most cases are meant to be accepted; the others make each mistake the grammar
        // knows with a small probability at every choice.
        let mistakes = if rng.chance(50) { 0 } else { rng.range(3, 15) };
        // Yield points inside branches, loops and blocks too, or only as statements of
        // the body.
        let nested_yields = rng.chance(60);
        let mut gen = Gen {
            rng: &mut rng,
            mistakes,
            nested_yields,
            fallible: false,
            ok: Ty::Unit,
            deps: Vec::new(),
            scopes: vec![Vec::new()],
            loops: Vec::new(),
            depth: 0,
            fresh: 0,
            shape: Shape::default(),
        };
        let args = gen.args();
        let item = gen.function();
        let shape = gen.shape;
        let mut input = Input {
            shape,
            meant_ok: mistakes == 0,
            ..Input::new((&args, &item))
        };
        if rng.chance(33) {
            input.mutate(&mut rng);
        }
        input.meant_ok &= !input.mutated;
        input
    }
}

/// A type of the generated code, as far as the generator tracks it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Ty {
    U32,
    Bool,
    Str,
    Vec,
    Opt,
    Job,
    Report,
    Polled,
    Unit,
}

const VALUE_TYS: [Ty; 7] = [
    Ty::U32,
    Ty::Bool,
    Ty::Str,
    Ty::Vec,
    Ty::Opt,
    Ty::Job,
    Ty::Report,
];

impl Ty {
    fn rust(self) -> &'static str {
        match self {
            Ty::U32 => "u32",
            Ty::Bool => "bool",
            Ty::Str => "String",
            Ty::Vec => "Vec<u32>",
            Ty::Opt => "Option<u32>",
            Ty::Job => "JobId",
            Ty::Report => "Report",
            Ty::Polled => "Polled<JobStatus>",
            Ty::Unit => "()",
        }
    }
}

struct Var {
    name: String,
    ty: Ty,
    /// A parameter or a `let` with a type: it may be persisted across a yield point.
    typed: bool,
    /// Unannotated locals are not used after a yield point (unless by mistake).
    usable: bool,
}

struct Loop {
    label: Option<String>,
    /// `let x: T = loop { … break value; }`: the type of the value.
    value: Option<Ty>,
}

/// How a generated block ends.
#[derive(Clone, Copy)]
enum BlockTail {
    /// With a value of this type.
    Value(Ty),
    /// With the function's return value.
    Return,
    /// A loop body: maybe with a `break`/`continue`.
    Jump,
}

struct Gen<'r> {
    rng: &'r mut Rng,
    /// Percent chance of each deliberate mistake.
    mistakes: usize,
    nested_yields: bool,
    fallible: bool,
    ok: Ty,
    deps: Vec<String>,
    /// Locals by block, innermost last.
    scopes: Vec<Vec<Var>>,
    loops: Vec<Loop>,
    depth: usize,
    fresh: usize,
    shape: Shape,
}

const MAX_DEPTH: usize = 3;
const NAMES: &str = "a b n job id name items total count status report x acc flag opt out \
                     left right res step";
const DEPS: &[(&str, &str)] = &[
    ("svc", "JobService"),
    ("jobs", "Jobs"),
    ("clock", "Clock"),
    ("db", "Db"),
];
const METHODS: &str = "start status fetch submit notify lookup finish count";
const WORKFLOWS: &str = "run_job child count_up report::build crate::wf::step";
const DURATIONS: &str = "1.secs() 10.secs() 5.mins() 2.hours() Duration::from_secs(30) BACKOFF";

impl Gen<'_> {
    fn oops(&mut self) -> bool {
        self.mistakes > 0 && self.rng.chance(self.mistakes)
    }

    fn fresh(&mut self, base: &str) -> String {
        self.fresh += 1;
        format!("{base}{}", self.fresh)
    }

    /// A name for a new local: often one already in scope (shadowing it).
    fn local_name(&mut self) -> String {
        if self.rng.chance(25) {
            let names: Vec<String> = self.visible().map(|v| v.name.clone()).collect();
            if !names.is_empty() {
                return self.rng.pick(&names).clone();
            }
        }
        let base = self.rng.word(NAMES);
        if self.rng.chance(50) {
            base.to_owned()
        } else {
            self.fresh(base)
        }
    }

    fn bind(&mut self, name: &str, ty: Ty, typed: bool) {
        let scope = self.scopes.last_mut().expect("a scope is open");
        scope.push(Var {
            name: name.to_owned(),
            ty,
            typed,
            usable: true,
        });
    }

    /// The locals names resolve to, innermost first.
    fn visible(&self) -> impl Iterator<Item = &Var> {
        let mut seen = Vec::new();
        self.scopes
            .iter()
            .rev()
            .flat_map(|s| s.iter().rev())
            .filter(move |v| {
                let first = !seen.contains(&v.name);
                seen.push(v.name.clone());
                first
            })
    }

    /// A visible local of type `ty`; `persisted`: only a typed one.
    fn var(&mut self, ty: Ty, persisted: bool) -> Option<String> {
        let found: Vec<String> = self
            .visible()
            .filter(|v| v.ty == ty && v.usable && (v.typed || !persisted))
            .map(|v| v.name.clone())
            .collect();
        (!found.is_empty()).then(|| self.rng.pick(&found).clone())
    }

    /// Unannotated locals are not used after a yield point.
    fn after_yield(&mut self) {
        self.shape.yield_in_branch |= self.depth > 0;
        self.shape.yield_in_loop |= !self.loops.is_empty();
        if self.oops() {
            return;
        }
        for v in self.scopes.iter_mut().flatten().filter(|v| !v.typed) {
            v.usable = false;
        }
    }

    fn with_scope<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> T {
        self.scopes.push(Vec::new());
        self.depth += 1;
        let out = f(self);
        self.depth -= 1;
        self.scopes.pop();
        out
    }

    // -- Attribute and signature ------------------------------------------------------

    fn args(&mut self) -> String {
        if self.oops() {
            return match self.rng.below(16) {
                0 => "name = \"has spaces\"".to_owned(),
                1 => "name = \"\"".to_owned(),
                2 => "name = 5".to_owned(),
                3 => "name".to_owned(),
                4 => "name = \"A\", name = \"B\"".to_owned(),
                5 => "retries = 3".to_owned(),
                6 => "crate = \"1abc\"".to_owned(),
                7 => "crate = \"\"".to_owned(),
                8 => "name = \"A\" crate = \"b\"".to_owned(),
                9 => "crate = \"a\", crate = \"b\"".to_owned(),
                10 => "name = \"a\",,".to_owned(),
                11 => "= \"a\"".to_owned(),
                12 => "retry(backoff = 0.5)".to_owned(),
                13 => "timeout = 0.secs()".to_owned(),
                14 => "retry(on = [\"States.ALL\"]), retry".to_owned(),
                _ => format!("name = \"{}\"", "N".repeat(81)),
            };
        }
        match self.rng.below(6) {
            0 | 1 => String::new(),
            5 => "retry(on = [\"Unavailable\"], max_attempts = 2), timeout = 1.hours()".to_owned(),
            2 => format!("name = \"{}\"", self.fresh("Flow-")),
            3 => "crate = \"my_facade\"".to_owned(),
            _ => format!(
                "name = \"{}\", crate = \"::workflow\",",
                self.fresh("Main_")
            ),
        }
    }

    fn function(&mut self) -> String {
        let mut out = String::new();
        for _ in 0..self.rng.below(3) {
            let attr = if self.oops() {
                *self
                    .rng
                    .pick(&["#[inline]", "#[tokio::main]", "#[must_use]"])
            } else {
                self.rng.pick(&[
                    "/// Runs a job to completion.",
                    "#[doc = \"A workflow.\"]",
                    "#[allow(clippy::all)]",
                    "#[cfg(not(any()))]",
                    "#[warn(unused)]",
                ])
            };
            out.push_str(attr);
            out.push('\n');
        }
        let vis = *self.rng.pick(&["", "pub ", "pub(crate) "]);
        out.push_str(vis);
        let qualifiers = if self.oops() {
            *self
                .rng
                .pick(&["", "const async ", "async unsafe ", "unsafe "])
        } else {
            "async "
        };
        out.push_str(qualifiers);
        out.push_str("fn ");
        out.push_str(&self.fresh("flow_"));
        if self.oops() {
            let generics = *self
                .rng
                .pick(&["<T>", "<T: Clone>", "<'a>", "<const N: usize>"]);
            out.push_str(generics);
        }
        let params = self.params().join(", ");
        out.push_str(&format!("({params})"));
        out.push_str(&self.ret());
        if self.oops() {
            let clause = *self
                .rng
                .pick(&[" where u32: Copy", " where String: Clone,", " where"]);
            out.push_str(clause);
        }
        out.push(' ');
        out.push_str(&self.body());
        out
    }

    /// Dependencies (`&T`) and owned inputs, in any order.
    fn params(&mut self) -> Vec<String> {
        let mut params = Vec::new();
        for _ in 0..self.rng.below(3) {
            let (name, ty) = *self.rng.pick(DEPS);
            if self.deps.iter().any(|d| d == name) {
                continue;
            }
            self.deps.push(name.to_owned());
            let reference = if self.oops() {
                self.rng.pick(&["&mut ", "&'a ", "&'static "])
            } else {
                "&"
            };
            params.push(format!("{name}: {reference}{ty}"));
        }
        for _ in 0..self.rng.below(4) {
            let base = self.rng.word("req input ids limit label");
            let name = self.fresh(base);
            let ty = *self.rng.pick(&VALUE_TYS);
            let mutable = if self.rng.chance(20) { "mut " } else { "" };
            params.push(format!("{mutable}{name}: {}", ty.rust()));
            self.bind(&name, ty, true);
        }
        if self.oops() {
            let bad = *self.rng.pick(&[
                "self",
                "&self",
                "mut self",
                "(p, q): (u32, u32)",
                "ref r: u32",
                "_: u32",
                "s @ _: u32",
            ]);
            let at = self.rng.below(params.len() + 1);
            params.insert(at, bad.to_owned());
        }
        self.rng.shuffle(&mut params);
        if self.oops() {
            params.push("...".to_owned());
        }
        params
    }

    fn ret(&mut self) -> String {
        self.fallible = self.rng.chance(60);
        self.ok = if self.rng.chance(20) {
            Ty::Unit
        } else {
            *self.rng.pick(&VALUE_TYS)
        };
        if self.fallible && self.oops() {
            let bad = self
                .rng
                .pick(&["Result<u32>", "Result", "io::Result<u32>", "Result<>"]);
            return format!(" -> {bad}");
        }
        let ok = self.ok.rust();
        if self.fallible {
            let err = self.rng.word("JobError MainError String std::io::Error");
            let result = self.rng.word("Result Result std::result::Result");
            format!(" -> {result}<{ok}, {err}>")
        } else if self.ok == Ty::Unit && self.rng.chance(70) {
            String::new()
        } else {
            format!(" -> {ok}")
        }
    }

    // -- Statements --------------------------------------------------------------------

    fn body(&mut self) -> String {
        let mut lines: Vec<String> = (0..self.rng.range(1, 3)).map(|_| self.stmt()).collect();
        lines.extend(self.tail());
        braced(&lines)
    }

    /// The body's value.
    fn tail(&mut self) -> Option<String> {
        match (self.fallible, self.rng.below(10)) {
            // A yield point as the tail: its value is the return value.
            (_, 0) => Some(format!("{}.await", self.task_call())),
            (true, 1) => {
                let path = self.macro_path("call_nested");
                Some(format!("{path}({})", self.workflow_call()))
            }
            (false, 1) if self.ok == Ty::Unit => {
                let path = self.macro_path("sleep");
                Some(format!("{path}({})", self.duration()))
            }
            (true, 2) => {
                let cond = self.value(Ty::Bool, false);
                let then = self.block(Some(BlockTail::Return));
                let other = self.block(Some(BlockTail::Return));
                Some(format!("if {cond} {then} else {other}"))
            }
            (true, 3) => Some(format!(
                "Err(JobError::new({}))",
                self.value(Ty::U32, false)
            )),
            _ if self.ok == Ty::Unit && !self.fallible => None,
            _ => Some(self.return_value()),
        }
    }

    fn return_value(&mut self) -> String {
        let value = self.value(self.ok, false);
        if self.fallible {
            format!("Ok({value})")
        } else {
            value
        }
    }

    fn stmt(&mut self) -> String {
        let yields_here = self.depth == 0 || self.nested_yields;
        // Inner blocks are short: a yield point there is likelier.
        let yields = if self.depth == 0 { 35 } else { 40 };
        let roll = self.rng.below(100);
        if roll < yields && (yields_here || self.oops()) {
            self.yield_stmt()
        } else if roll < yields + 20 && self.depth < MAX_DEPTH {
            self.control()
        } else if roll < yields + 25 && !self.loops.is_empty() {
            self.guarded(Self::jump)
        } else if roll < yields + 28 {
            self.guarded(Self::return_stmt)
        } else {
            self.plain()
        }
    }

    /// `if cond { stmt }`: a jump or a return that does not end the block.
    fn guarded(&mut self, f: impl FnOnce(&mut Self) -> String) -> String {
        let cond = self.value(Ty::Bool, false);
        format!("if {cond} {{ {} }}", f(self))
    }

    fn return_stmt(&mut self) -> String {
        self.shape.early_return = true;
        if self.ok == Ty::Unit && !self.fallible {
            "return;".to_owned()
        } else if self.fallible && self.rng.chance(25) {
            format!("return Err(JobError::new({}));", self.value(Ty::U32, false))
        } else {
            format!("return {};", self.return_value())
        }
    }

    /// `break`/`continue`, maybe to a label, with a value out of a `loop` bound by a `let`.
    fn jump(&mut self) -> String {
        let innermost = self.loops.len() - 1;
        let at = if self.rng.chance(60) {
            innermost
        } else {
            self.rng.below(self.loops.len())
        };
        // An unlabelled outer loop cannot be named: then the innermost is the target.
        let (at, label) = match &self.loops[at].label {
            Some(l) => (at, format!(" {l}")),
            None => (innermost, String::new()),
        };
        self.shape.labelled_jump |= !label.is_empty();
        if self.rng.chance(35) {
            return format!("continue{label};");
        }
        match self.loops[at].value {
            Some(ty) => {
                self.shape.break_value = true;
                format!("break{label} {};", self.value(ty, false))
            }
            None => format!("break{label};"),
        }
    }

    fn plain(&mut self) -> String {
        match self.rng.below(14) {
            0..=3 => {
                let ty = *self.rng.pick(&VALUE_TYS);
                let value = self.value(ty, false);
                let name = self.local_name();
                let mutable = if self.rng.chance(20) { "mut " } else { "" };
                self.bind(&name, ty, true);
                format!("let {mutable}{name}: {} = {value};", ty.rust())
            }
            4 => {
                // Unannotated: fine while it is not used after a yield point.
                let ty = *self.rng.pick(&VALUE_TYS);
                let value = self.value(ty, false);
                let name = if self.oops() {
                    self.local_name()
                } else {
                    self.fresh("tmp")
                };
                self.bind(&name, ty, false);
                format!("let {name} = {value};")
            }
            5 => match self.var(Ty::U32, false) {
                Some(v) => format!("{v} += {};", self.value(Ty::U32, false)),
                None => format!("log(&{});", self.value(Ty::Str, false)),
            },
            6 => match self.var(Ty::Vec, false) {
                Some(v) => format!("{v}.push({});", self.value(Ty::U32, false)),
                None => "let _ = Vec::<u32>::new();".to_owned(),
            },
            7 => {
                // Names used inside macros and format strings count as uses.
                let used = self.visible().find(|v| v.usable).map(|v| v.name.clone());
                let used = used.unwrap_or_else(|| "LIMIT".to_owned());
                match self.rng.below(3) {
                    0 => format!("println!(\"{{{used}}} done\");"),
                    1 => format!("tracing::info!(value = ?{used}, \"step\");"),
                    _ => format!(
                        "assert!({}, \"{{}}\", {used});",
                        self.value(Ty::Bool, false)
                    ),
                }
            }
            8 if self.fallible => {
                let s = self.value(Ty::Str, false);
                let name = self.local_name();
                self.bind(&name, Ty::U32, true);
                format!("let {name}: u32 = {s}.parse()?;")
            }
            9 => {
                let (a, b) = (self.local_name(), self.fresh("s"));
                let (x, y) = (self.value(Ty::U32, false), self.value(Ty::Str, false));
                self.bind(&a, Ty::U32, true);
                self.bind(&b, Ty::Str, true);
                format!("let ({a}, {b}): (u32, String) = ({x}, {y});")
            }
            10 => {
                let name = self.fresh("f");
                self.bind(&name, Ty::Unit, false);
                format!("let {name} = |v: u32| v + {};", self.rng.below(9))
            }
            11 => (*self.rng.pick(&[
                "fn helper(v: u32) -> u32 { v * 2 }",
                "use std::fmt::Write as _;",
                "const LIMIT: u32 = 3;",
                "async fn inner(s: &JobService) -> u32 { s.count().await }",
                "struct Local { n: u32 }",
                "macro_rules! twice { ($e:expr) => { $e * 2 }; }",
            ]))
            .to_owned(),
            12 => {
                let name = self.fresh("v");
                let opt = self.value(Ty::Opt, false);
                let ret = self.return_stmt();
                self.bind(&name, Ty::U32, false);
                format!("let Some({name}) = {opt} else {{ {ret} }};")
            }
            _ => format!("{};", self.value(Ty::U32, false)),
        }
    }

    // -- Yield points ------------------------------------------------------------------

    fn macro_path(&mut self, name: &str) -> String {
        match self.rng.below(12) {
            0 => format!("workflow::{name}!"),
            1 => format!("::workflow::{name}!"),
            _ => format!("{name}!"),
        }
    }

    fn duration(&mut self) -> String {
        match self.var(Ty::U32, true) {
            Some(n) if self.rng.chance(15) => format!("{n}.secs()"),
            _ => self.rng.word(DURATIONS).to_owned(),
        }
    }

    /// The future of a task: `dep.method(args)`, or a free async fn.
    fn task_call(&mut self) -> String {
        let method = self.rng.word(METHODS);
        let args = self.call_args();
        if self.deps.is_empty() || self.rng.chance(15) {
            let f = self.rng.word("fetch_remote api::submit helper_task");
            format!("{f}({args})")
        } else {
            let dep = self.rng.pick(&self.deps).clone();
            format!("{dep}.{method}({args})")
        }
    }

    /// Operands of a yield point are persisted while it waits: typed locals only.
    fn call_args(&mut self) -> String {
        let mut args = Vec::new();
        for _ in 0..self.rng.below(3) {
            let ty = *self.rng.pick(&VALUE_TYS);
            let by_ref = if self.rng.chance(30) { "&" } else { "" };
            args.push(format!("{by_ref}{}", self.value(ty, true)));
        }
        if self.oops() {
            // A yield point inside another.
            args.push(format!("{}.await", self.task_call()));
        }
        args.join(", ")
    }

    fn workflow_call(&mut self) -> String {
        let wf = self.rng.word(WORKFLOWS);
        format!("{wf}({})", self.call_args())
    }

    /// A task, a poll or a sleep, bound or not, with `?` or not.
    fn yield_stmt(&mut self) -> String {
        let (op, ty, has_value) = match self.rng.below(10) {
            0..=3 => {
                let ty = *self.rng.pick(&VALUE_TYS);
                (format!("{}.await", self.task_call()), ty, true)
            }
            4 | 5 => (self.poll(), Ty::Polled, true),
            6..=8 => return self.nested(),
            _ => (self.sleep(), Ty::Unit, false),
        };
        let try_op = if has_value && self.fallible && self.rng.chance(80) || self.oops() {
            "?"
        } else {
            ""
        };
        let stmt = if (has_value && self.rng.chance(65)) || (!has_value && self.oops()) {
            let name = self.local_name();
            let annotated = !self.oops();
            self.bind(&name, ty, annotated);
            if annotated {
                format!("let {name}: {} = {op}{try_op};", ty.rust())
            } else {
                format!("let {name} = {op}{try_op};")
            }
        } else {
            match with_braces(&op) {
                // A statement macro with braces needs no `;`.
                Some(braced) if try_op.is_empty() && self.rng.chance(15) => braced,
                _ => format!("{op}{try_op};"),
            }
        };
        let stmt = if self.oops() {
            self.misplace(&op)
        } else {
            stmt
        };
        let stmt = if self.rng.chance(20) {
            format!("{}{stmt}", self.policy(has_value))
        } else {
            stmt
        };
        self.after_yield();
        stmt
    }

    /// `#[retry(…)]` / `#[timeout(…)]` for a yield statement (`sleep!` has none).
    fn policy(&mut self, calls: bool) -> String {
        if !calls && !self.oops() {
            return String::new();
        }
        if !calls || self.oops() {
            return self
                .rng
                .pick(&[
                    "#[retry(backoff = 0.5)] ",
                    "#[retry(max_attempts = 0, interval = 1.secs())] ",
                    "#[retry(on = [\"States.ALL\"])] ",
                    "#[retry(on = [])] ",
                    "#[retry(on = [Unavailable])] ",
                    "#[retry(jitter = half)] ",
                    "#[retry(interval)] ",
                    "#[retry(tries = 3)] ",
                    "#[retry] #[retry] ",
                    "#[timeout] ",
                    "#[timeout(0.secs())] ",
                    "#[timeout(1.secs(), 2.secs())] ",
                ])
                .to_string();
        }
        self.rng.pick(&[
            "#[retry] ",
            "#[retry(none)] ",
            "#[retry(on = [\"Unavailable\", \"Workflow.Timeout\"], interval = 1.secs(), max_attempts = 3, backoff = 2.0, max_delay = 10.secs(), jitter = full)] ",
            "#[timeout(5.secs())] ",
            "#[retry(max_attempts = 2)] #[timeout(500.millis())] ",
        ])
        .to_string()
    }

    /// A yield point where no version lowers it: inside a larger expression, a closure, an
    /// async block, a `let … else`, a condition or a scrutinee.
    fn misplace(&mut self, op: &str) -> String {
        let name = self.fresh("m");
        match self.rng.below(7) {
            0 => format!("let {name}: u32 = 1 + {op};"),
            1 => format!("let {name}: u32 = helper({op});"),
            2 => format!("let {name} = || {op};"),
            3 => format!("let {name} = async move {{ {op} }};"),
            4 => format!(
                "let Some({name}): Option<u32> = {op} else {{ return Default::default(); }};"
            ),
            5 => format!("if {op} {{ log(\"ready\"); }}"),
            _ => format!("match {op} {{ _ => {{}} }}"),
        }
    }

    fn poll(&mut self) -> String {
        let call = self.task_call();
        let v = self.rng.word("s v status _r");
        let ready = if self.oops() {
            format!("|{v}| {v}.check().await")
        } else {
            let check = match self.rng.below(3) {
                0 => format!("{v}.is_finished()"),
                1 => format!("matches!({v}, JobStatus::Done {{ .. }})"),
                _ => format!("{v}.progress >= 100"),
            };
            format!("|{v}| {check}")
        };
        let mut options = vec![format!("every = {}", self.duration())];
        let timeout = self.rng.chance(75);
        if timeout {
            options.push(format!("timeout = {}", self.duration()));
        }
        if !timeout || self.rng.chance(30) {
            options.push(format!("max_attempts = {}", self.rng.range(1, 20)));
        }
        if self.rng.chance(40) {
            options.push(format!("max_errors = {}", self.rng.range(0, 5)));
        }
        if self.oops() {
            match self.rng.below(5) {
                0 => drop(options.remove(0)),
                1 => options.retain(|o| !o.starts_with("timeout") && !o.starts_with("max_a")),
                2 => options.push("retries = 3".to_owned()),
                3 => options.push(options[0].clone()),
                _ => options.push("10".to_owned()),
            }
        }
        self.rng.shuffle(&mut options);
        let mut items = vec![call, ready];
        if self.oops() {
            items.swap(0, 1);
            items.truncate(self.rng.below(3));
        }
        items.extend(options);
        let trailing = if self.rng.chance(30) { "," } else { "" };
        let path = self.macro_path("poll_until");
        format!("{path}({}{trailing})", items.join(", "))
    }

    fn sleep(&mut self) -> String {
        let d = if self.oops() {
            self.rng
                .word("_ 1.secs(),2.secs() let 1.secs();")
                .replace('_', "")
        } else {
            self.duration()
        };
        format!("{}({d})", self.macro_path("sleep"))
    }

    /// `call_nested!` in its three forms, bound or not.
    fn nested(&mut self) -> String {
        let path = self.macro_path("call_nested");
        let (body, binding) = match self.rng.below(3) {
            0 => (self.workflow_call(), Some(self.local_name())),
            1 => {
                let n = if self.oops() {
                    self.rng.below(2)
                } else {
                    self.rng.range(2, 3)
                };
                let calls: Vec<String> = (0..n).map(|_| self.workflow_call()).collect();
                (format!("parallel({})", calls.join(", ")), None)
            }
            _ => {
                let item = self.fresh("item");
                let iter = match self.var(Ty::Vec, true) {
                    Some(v) if self.rng.chance(70) => v,
                    Some(v) => format!("{v}.clone()"),
                    None => format!("0..{}", self.value(Ty::U32, true)),
                };
                let wf = self.rng.word(WORKFLOWS);
                let mut body = format!("for {item} in {iter} => {wf}({item})");
                if self.oops() {
                    let n = self.rng.word("0 n -1 1.5 99999999999 \"4\"");
                    body.push_str(&format!(", max_concurrency = {n}"));
                } else if self.rng.chance(50) {
                    body.push_str(&format!(", max_concurrency = {}", self.rng.range(1, 100)));
                }
                (body, Some(self.local_name()))
            }
        };
        let body = if self.oops() {
            self.rng
                .word("x x.run() parallel() wf(1)extra for_x_in_=>_wf(x) _")
                .replace('_', " ")
        } else {
            body
        };
        let try_op = if self.fallible && self.rng.chance(80) {
            "?"
        } else {
            ""
        };
        let op = format!("{path}({body}){try_op}");
        let stmt = if self.rng.chance(30) {
            format!("{op};")
        } else if let Some(name) = binding {
            let (ty, rust) = if body.starts_with("for ") {
                (Ty::Vec, "Vec<Report>")
            } else {
                (Ty::Report, "Report")
            };
            self.bind(&name, ty, true);
            format!("let {name}: {rust} = {op};")
        } else {
            let (a, b) = (self.fresh("r"), self.fresh("c"));
            self.bind(&a, Ty::Report, true);
            self.bind(&b, Ty::U32, true);
            format!("let ({a}, {b}): (Report, u32) = {op};")
        };
        self.after_yield();
        stmt
    }

    // -- Control flow ------------------------------------------------------------------

    fn control(&mut self) -> String {
        match self.rng.below(11) {
            0 => {
                let cond = self.value(Ty::Bool, false);
                let mut out = format!("if {cond} {}", self.block(None));
                for _ in 0..self.rng.below(2) {
                    let cond = self.value(Ty::Bool, false);
                    out.push_str(&format!(" else if {cond} {}", self.block(None)));
                }
                if self.rng.chance(50) {
                    out.push_str(&format!(" else {}", self.block(None)));
                }
                out
            }
            1 => {
                let v = self.fresh("v");
                let opt = self.value(Ty::Opt, false);
                let then = self.with_scope(|g| {
                    g.bind(&v, Ty::U32, false);
                    g.block(None)
                });
                let other = self.block(None);
                format!("if let Some({v}) = {opt} {then} else {other}")
            }
            2 => self.match_expr(None),
            3 => self.loop_expr(None),
            4 => {
                let (label, cond) = (self.enter_loop(), self.value(Ty::Bool, false));
                let body = self.loop_body(&label, None, None);
                format!("{}while {cond} {body}", label_prefix(&label))
            }
            5 => {
                let (label, v) = (self.enter_loop(), self.fresh("next"));
                let stack = self.var(Ty::Vec, false);
                let stack = stack.unwrap_or_else(|| "vec![1, 2, 3]".to_owned());
                let body = self.loop_body(&label, None, Some(&v));
                format!(
                    "{}while let Some({v}) = {stack}.pop() {body}",
                    label_prefix(&label)
                )
            }
            6 => {
                // Over ranges and owned collections.
                let (label, v) = (self.enter_loop(), self.fresh("i"));
                let iter = match self.rng.below(4) {
                    0 => format!("0..{}", self.value(Ty::U32, false)),
                    1 => "(1..=3).rev()".to_owned(),
                    _ => self.value(Ty::Vec, false),
                };
                let body = self.loop_body(&label, None, Some(&v));
                format!("{}for {v} in {iter} {body}", label_prefix(&label))
            }
            7 => self.block(None),
            // A value out of a construct that may yield inside.
            _ => {
                let ty = *self.rng.pick(&VALUE_TYS);
                let name = self.local_name();
                let value = match self.rng.below(4) {
                    0 => self.loop_expr(Some(ty)),
                    1 => {
                        let cond = self.value(Ty::Bool, false);
                        let then = self.block(Some(BlockTail::Value(ty)));
                        let other = self.block(Some(BlockTail::Value(ty)));
                        format!("if {cond} {then} else {other}")
                    }
                    2 => self.match_expr(Some(ty)),
                    _ => self.block(Some(BlockTail::Value(ty))),
                };
                self.bind(&name, ty, true);
                format!("let {name}: {} = {value};", ty.rust())
            }
        }
    }

    /// A new loop's label, if any. From here on, unannotated locals are out of use: one
    /// used in the loop (its condition too) after a yield point in it is used after that
    /// yield point on the next turn.
    fn enter_loop(&mut self) -> Option<String> {
        if self.nested_yields && !self.oops() {
            for v in self.scopes.iter_mut().flatten().filter(|v| !v.typed) {
                v.usable = false;
            }
        }
        self.rng.chance(30).then(|| self.fresh("'l"))
    }

    fn loop_expr(&mut self, value: Option<Ty>) -> String {
        let label = self.enter_loop();
        let body = self.loop_body(&label, value, None);
        format!("{}loop {body}", label_prefix(&label))
    }

    /// A loop's body, with the loop's pattern variable (`for i in …`) in scope.
    fn loop_body(
        &mut self,
        label: &Option<String>,
        value: Option<Ty>,
        var: Option<&str>,
    ) -> String {
        self.loops.push(Loop {
            label: label.clone(),
            value,
        });
        let body = self.with_scope(|g| {
            if let Some(v) = var {
                g.bind(v, Ty::U32, false);
            }
            g.block(Some(BlockTail::Jump))
        });
        self.loops.pop();
        body
    }

    /// On a number (literal patterns, a guard) or an option; maybe for a value.
    fn match_expr(&mut self, value: Option<Ty>) -> String {
        let tail = value.map(BlockTail::Value);
        let mut arms = Vec::new();
        let (scrutinee, binding, pattern) = if self.rng.chance(50) {
            for _ in 0..self.rng.below(3) {
                let pat = self.rng.below(10);
                arms.push(format!("{pat} => {},", self.arm(tail)));
            }
            let n = self.fresh("n");
            let guard = format!("{n} if {n} > {}", self.rng.below(50));
            (self.value(Ty::U32, false), n, guard)
        } else {
            let v = self.fresh("some");
            let pattern = format!("Some({v})");
            (self.value(Ty::Opt, false), v, pattern)
        };
        let arm = self.with_scope(|g| {
            g.bind(&binding, Ty::U32, false);
            g.arm(tail)
        });
        arms.push(format!("{pattern} => {arm},"));
        arms.push(format!("_ => {},", self.arm(tail)));
        format!("match {scrutinee} {}", braced(&arms))
    }

    /// A match arm: a block, or for a value sometimes a bare expression.
    fn arm(&mut self, tail: Option<BlockTail>) -> String {
        match tail {
            Some(BlockTail::Value(ty)) if self.rng.chance(40) => self.value(ty, false),
            None if self.rng.chance(20) => "{}".to_owned(),
            _ => self.block(tail),
        }
    }

    fn block(&mut self, tail: Option<BlockTail>) -> String {
        self.with_scope(|g| {
            let max = (MAX_DEPTH + 1).saturating_sub(g.depth).clamp(1, 2);
            let mut lines: Vec<String> = (0..g.rng.below(max + 1)).map(|_| g.stmt()).collect();
            match tail {
                Some(BlockTail::Value(ty)) => {
                    let value = if g.nested_yields && g.rng.chance(15) {
                        // A yield point as the block's value.
                        let try_op = if g.fallible { "?" } else { "" };
                        let task = g.task_call();
                        g.after_yield();
                        format!("{task}.await{try_op}")
                    } else {
                        g.value(ty, false)
                    };
                    lines.push(value);
                }
                Some(BlockTail::Return) => lines.push(g.return_value()),
                Some(BlockTail::Jump) if g.rng.chance(60) => lines.push(g.jump()),
                Some(BlockTail::Jump) | None => {}
            }
            braced(&lines)
        })
    }

    // -- Values ------------------------------------------------------------------------

    /// An expression of type `ty`; `persisted`: it uses typed locals only.
    fn value(&mut self, ty: Ty, persisted: bool) -> String {
        if self.rng.chance(50) {
            if let Some(v) = self.var(ty, persisted) {
                return v;
            }
        }
        if self.rng.chance(40) {
            return self.literal(ty);
        }
        let atom = |g: &mut Self, ty: Ty| match g.var(ty, persisted) {
            Some(v) if g.rng.chance(70) => v,
            _ => g.literal(ty),
        };
        match ty {
            Ty::U32 => match self.rng.below(4) {
                0 => format!("{} + {}", atom(self, Ty::U32), self.rng.below(10)),
                1 => format!("{}.len() as u32", atom(self, Ty::Str)),
                2 => format!("{}.unwrap_or({})", atom(self, Ty::Opt), self.rng.below(10)),
                _ => format!("LIMIT.max({})", atom(self, Ty::U32)),
            },
            Ty::Bool => match self.rng.below(4) {
                0 => format!("{} > {}", atom(self, Ty::U32), self.rng.below(10)),
                1 => format!("{}.is_empty()", atom(self, Ty::Vec)),
                2 => format!("{}.is_some()", atom(self, Ty::Opt)),
                _ => format!("!{}", atom(self, Ty::Bool)),
            },
            Ty::Str => match self.var(Ty::U32, persisted) {
                // An inline format capture is a use of the local.
                Some(n) if self.rng.chance(50) => {
                    format!("format!(\"{{{n}}}-{}\")", self.rng.below(9))
                }
                _ => format!("{}.to_string()", atom(self, Ty::Job)),
            },
            Ty::Vec => format!("vec![{}, {}]", atom(self, Ty::U32), atom(self, Ty::U32)),
            Ty::Opt => format!("{}.first().copied()", atom(self, Ty::Vec)),
            Ty::Job => format!("JobId::new({})", atom(self, Ty::U32)),
            Ty::Report => format!(
                "Report::of({}, {})",
                atom(self, Ty::Job),
                atom(self, Ty::U32)
            ),
            Ty::Polled | Ty::Unit => self.literal(ty),
        }
    }

    fn literal(&mut self, ty: Ty) -> String {
        match ty {
            Ty::U32 => self.rng.below(100).to_string(),
            Ty::Bool => self.rng.word("true false").to_owned(),
            Ty::Str => format!("String::from(\"{}\")", self.rng.word(NAMES)),
            Ty::Vec => self.rng.word("vec![1,2] Vec::new()").to_owned(),
            Ty::Opt => self.rng.word("Some(3) None").to_owned(),
            Ty::Job => format!("JobId::new({})", self.rng.below(9)),
            Ty::Report => "Report::default()".to_owned(),
            Ty::Polled => "Polled::default()".to_owned(),
            Ty::Unit => "()".to_owned(),
        }
    }
}

/// `name!(args)` as `name! { args }`.
fn with_braces(mac: &str) -> Option<String> {
    let (path, args) = mac.split_once("!(")?;
    Some(format!("{path}! {{ {} }}", args.strip_suffix(')')?))
}

fn label_prefix(label: &Option<String>) -> String {
    label.as_ref().map(|l| format!("{l}: ")).unwrap_or_default()
}

fn braced(lines: &[String]) -> String {
    if lines.is_empty() {
        return "{}".to_owned();
    }
    let mut out = String::from("{\n");
    for line in lines.iter().flat_map(|l| l.lines()) {
        out.push_str("    ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('}');
    out
}

// ---------------------------------------------------------------------------------------
// Token edits, on token trees so the result stays balanced.

#[derive(Clone)]
enum Tree {
    Leaf(TokenTree),
    Group(Delimiter, Vec<Tree>),
}

fn trees(stream: TokenStream) -> Vec<Tree> {
    stream
        .into_iter()
        .map(|tt| match tt {
            TokenTree::Group(g) => Tree::Group(g.delimiter(), trees(g.stream())),
            tt => Tree::Leaf(tt),
        })
        .collect()
}

fn stream(trees: &[Tree]) -> TokenStream {
    trees
        .iter()
        .map(|t| match t {
            Tree::Leaf(tt) => tt.clone(),
            Tree::Group(d, inner) => TokenTree::Group(Group::new(*d, stream(inner))),
        })
        .collect()
}

/// Where a token tree is: the path of group indices to its list, and its index there.
type Position = (Vec<usize>, usize);

/// Every token tree, in source order.
fn positions(list: &[Tree], path: &mut Vec<usize>, out: &mut Vec<Position>) {
    for (i, t) in list.iter().enumerate() {
        out.push((path.clone(), i));
        if let Tree::Group(_, inner) = t {
            path.push(i);
            positions(inner, path, out);
            path.pop();
        }
    }
}

fn list_at<'a>(root: &'a mut Vec<Tree>, path: &[usize]) -> &'a mut Vec<Tree> {
    match path.split_first() {
        None => root,
        Some((&i, rest)) => match &mut root[i] {
            Tree::Group(_, inner) => list_at(inner, rest),
            Tree::Leaf(_) => unreachable!("paths only go through groups"),
        },
    }
}

const EDIT_IDENTS: &str = "await async let mut if else match loop while for in break continue \
    return fn move ref self Self crate super where impl dyn unsafe const pub use poll_until \
    call_nested sleep parallel every timeout max_attempts max_errors max_concurrency Ok Err \
    Some None Result Polled u32 String svc x _ __wf_ret __WfState";
const EDIT_LITERALS: &str = r#"0 1 7u32 0xff 1.5 "s" "" 'c' b'x' r"raw" true"#;
const EDIT_PUNCTS: &str = "? ; , . = ! & | + - * < > # : :: => .. -> @ 'a $";

fn snippet(rng: &mut Rng, words: &'static str) -> Vec<Tree> {
    trees(TokenStream::from_str(rng.word(words)).expect("edit snippets tokenize"))
}

impl Input {
    /// One to three random edits of the item (or of the arguments), re-read from text so
    /// every span is on the printed input.
    fn mutate(&mut self, rng: &mut Rng) {
        let on_args = rng.chance(10);
        let source = if on_args { &self.args } else { &self.item };
        let Some(tokens) = parse_source(source) else {
            return;
        };
        let original = trees(tokens);
        for _ in 0..8 {
            let mut root = original.clone();
            for _ in 0..rng.range(1, 3) {
                edit(rng, &mut root);
            }
            let text = stream(&root).to_string();
            if parse_source(&text).is_some() {
                if on_args {
                    self.args = text;
                } else {
                    self.item = text;
                }
                self.mutated = true;
                return;
            }
        }
    }
}

fn edit(rng: &mut Rng, root: &mut Vec<Tree>) {
    let mut all = Vec::new();
    positions(root, &mut Vec::new(), &mut all);
    if all.is_empty() {
        root.extend(snippet(rng, EDIT_IDENTS));
        return;
    }
    let (path, i) = rng.pick(&all).clone();
    let list = list_at(root, &path);
    match rng.below(7) {
        0 => drop(list.remove(i)),
        1 => list.insert(i, list[i].clone()),
        2 => {
            let j = rng.below(list.len());
            list.swap(i, j);
        }
        3 => {
            let replacement = match &list[i] {
                Tree::Leaf(TokenTree::Ident(_)) => snippet(rng, EDIT_IDENTS),
                Tree::Leaf(TokenTree::Literal(_)) => snippet(rng, EDIT_LITERALS),
                Tree::Leaf(_) => snippet(rng, EDIT_PUNCTS),
                Tree::Group(_, inner) => {
                    let delimiters = [Delimiter::Parenthesis, Delimiter::Brace, Delimiter::Bracket];
                    vec![Tree::Group(*rng.pick(&delimiters), inner.clone())]
                }
            };
            list.splice(i..=i, replacement);
        }
        4 => {
            // Drop a group's delimiters, or empty it.
            let replacement = match &list[i] {
                Tree::Group(_, inner) if rng.chance(60) => inner.clone(),
                Tree::Group(d, _) => vec![Tree::Group(*d, Vec::new())],
                Tree::Leaf(_) => Vec::new(),
            };
            list.splice(i..=i, replacement);
        }
        _ => {
            let words = *rng.pick(&[EDIT_IDENTS, EDIT_LITERALS, EDIT_PUNCTS]);
            let inserted = snippet(rng, words);
            list.splice(i..i, inserted);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Shrinking a failure.

/// A smaller input that fails the same way: the arguments dropped if they are not needed,
/// then runs of token trees removed and groups unwrapped while the failure persists.
/// `None` if nothing could be removed.
fn minimize(input: &Input, failure: &Failure) -> Option<Input> {
    let fails = |args: &str, item: &[Tree]| {
        let item = stream(item).to_string();
        matches!(run_source(args, &item), Outcome::Failed(f) if f.same_kind(failure))
    };
    let mut item = trees(parse_source(&input.item)?);
    let args = if !input.args.is_empty() && fails("", &item) {
        String::new()
    } else {
        input.args.clone()
    };
    let mut budget = 3_000;
    let mut shrunk = args != input.args;
    let mut progress = true;
    while progress && budget > 0 {
        progress = false;
        let mut all = Vec::new();
        positions(&item, &mut Vec::new(), &mut all);
        // From the end: a change at a position leaves every earlier one valid but those of
        // the trees it removed.
        let mut removed: Option<(Vec<usize>, usize)> = None;
        for (path, i) in all.into_iter().rev() {
            if let Some((list, from)) = &removed {
                let inside = path.len() >= list.len() && path[..list.len()] == list[..];
                let index = path.get(list.len()).copied().unwrap_or(i);
                if inside && index >= *from {
                    continue;
                }
            }
            let mut candidates = Vec::new();
            // Runs ending at `i`, longest first: a whole statement or parameter goes in one
            // step where its tokens one by one would not parse.
            for run in [16, 8, 4, 2, 1].into_iter().filter(|&n| n <= i + 1) {
                let mut c = item.clone();
                list_at(&mut c, &path).drain(i + 1 - run..=i);
                candidates.push((c, Some(i + 1 - run)));
            }
            if let Tree::Group(_, inner) = &list_at(&mut item, &path)[i] {
                let inner = inner.clone();
                let mut c = item.clone();
                list_at(&mut c, &path).splice(i..=i, inner);
                candidates.push((c, None));
            }
            for (c, from) in candidates {
                if budget == 0 {
                    break;
                }
                budget -= 1;
                if fails(&args, &c) {
                    item = c;
                    shrunk = true;
                    progress = true;
                    removed = from.map(|from| (path.clone(), from));
                    break;
                }
            }
        }
    }
    shrunk.then(|| Input {
        mutated: true,
        ..Input::new((&args, &stream(&item).to_string()))
    })
}
