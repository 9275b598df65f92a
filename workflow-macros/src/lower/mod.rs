//! Stage 3: the IR. For each resume point (a variant of the state enum): the code its
//! arm of the step function runs, the locals it holds, and every place it can exit to;
//! and the state graph, whose edges are those exits.
//!
//! The code and the exits come from one walk (`arms`): an exit is recorded where the code
//! that takes it is written (a yield point entered, a `return`, a `?`, the end of the
//! body), so the graph cannot miss a route the code takes. `break` and `continue` need no
//! exits of their own: they only decide which code the walk writes next (the rest of an
//! enclosing block or loop), and that code records its own exits. Codegen, the static
//! `StateGraph`, the fingerprint and (through the graph) the ASL all print from this IR.

mod arms;

use std::collections::{BTreeSet, HashSet};

use proc_macro2::{Span, TokenStream};
use syn::Ident;

use crate::analyze::{Body, Local, Op};
use crate::names;
use crate::parse::{Ret, WorkflowFn};
use crate::yields::Nested;

/// The lowered workflow.
#[cfg_attr(test, derive(Debug))]
pub(crate) struct Ir {
    /// One node per yield point (a yield point's index is its node), then `Succeed`, then
    /// `Fail` for a workflow that can fail.
    pub(crate) nodes: Vec<Node>,
    /// Where the code from the start can exit to.
    pub(crate) start: Vec<Edge>,
    /// The arms of the step function: `Start` first, then per yield point its waiting
    /// arm (if it has one) and its after arm.
    pub(crate) arms: Vec<Arm>,
}

#[cfg_attr(test, derive(Debug, PartialEq))]
pub(crate) struct Node {
    pub(crate) name: String,
    pub(crate) kind: Kind,
    /// Where the code after this node can exit to: the exits of its after arm and of its
    /// waiting arm (the structural ones, a poll's next attempt or a batch's retry, are
    /// implied by the kind).
    pub(crate) edges: Vec<Edge>,
}

#[cfg_attr(test, derive(Debug, PartialEq))]
pub(crate) enum Kind {
    Task,
    Wait,
    Poll,
    Child(syn::Path),
    Parallel(Vec<syn::Path>),
    Map(syn::Path, Option<u32>),
    /// A callback: the type its value is decoded as (`None`: any, discarded), whether
    /// that is the annotation itself (bound with `?`) rather than its `Result`'s `Ok`,
    /// and whether it has a heartbeat.
    Callback {
        value: Option<syn::Type>,
        unwrapped: bool,
        heartbeat: bool,
    },
    Succeed,
    Fail,
}

#[derive(Clone, Copy, PartialEq, Eq)]
#[cfg_attr(test, derive(Debug))]
pub(crate) struct Edge {
    pub(crate) to: usize,
    pub(crate) on: On,
}

#[derive(Clone, Copy, PartialEq, Eq)]
#[cfg_attr(test, derive(Debug))]
pub(crate) enum On {
    Next,
    Error,
}

/// Where the code of an arm can go when its step ends.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(crate) enum Exit {
    /// Enters yield point `k` (for a task without a policy: makes its call, after which
    /// the execution is in `k`'s after state).
    Yield(usize),
    /// Ends the execution with the workflow's output (the end of the body, a `return`).
    Succeed,
    /// Ends it with the workflow's error (a `?`, a `return Err(…)`).
    Fail,
}

/// Which state an arm resumes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum At {
    Start,
    /// Waiting in yield point `k` (a poll between attempts, children running, a task
    /// with a policy before its call).
    Waiting(usize),
    /// Yield point `k` has completed.
    After(usize),
}

/// One arm of the step function.
#[cfg_attr(test, derive(Debug))]
pub(crate) struct Arm {
    pub(crate) at: At,
    /// The state variant (`Start`, or a yield point's waiting or after state).
    pub(crate) state: Ident,
    /// The locals its state holds (for `Start`: none, the parameters are its fields).
    pub(crate) fields: Vec<Local>,
    /// Its code, which ends the step with the next state.
    pub(crate) code: TokenStream,
    pub(crate) exits: BTreeSet<Exit>,
}

/// The state variants of one yield point.
#[cfg_attr(test, derive(Debug))]
pub(crate) struct Resume {
    /// The state once it completed; the code after it runs from here.
    pub(crate) after: Ident,
    /// The state while it waits (polls, children, tasks with a policy).
    pub(crate) waiting: Option<Ident>,
}

/// Lowers an analyzed body; fails if a persisted local cannot be persisted.
pub(crate) fn lower(f: &WorkflowFn, body: &Body, wf: &TokenStream) -> syn::Result<Ir> {
    let fallible = matches!(f.ret, Ret::Fallible { .. });
    let n = body.yields.len();
    let mut raw: Vec<String> = body.yields.iter().map(|y| node_name(&y.op)).collect();
    raw.push("Succeed".into());
    let mut kinds: Vec<Kind> = body.yields.iter().map(node_kind).collect();
    kinds.push(Kind::Succeed);
    if fallible {
        raw.push("Fail".into());
        kinds.push(Kind::Fail);
    }
    let names = names::uniquify(raw);

    let mut idents = HashSet::from(["Start".to_owned()]);
    let mut ident = |base: String| {
        let mut candidate = base.clone();
        let mut n = 2;
        while !idents.insert(candidate.clone()) {
            candidate = format!("{base}{n}");
            n += 1;
        }
        Ident::new(&candidate, Span::call_site())
    };
    let resumes: Vec<Resume> = body
        .yields
        .iter()
        .enumerate()
        .map(|(i, y)| {
            let camel = names::camel(&names[i]);
            // A task with a policy gets a state before its call, which a retry re-runs.
            let waits = match y.op {
                Op::Poll(_) | Op::Child(_) | Op::Callback(_) => true,
                Op::Task { .. } => y.policy.is_some(),
                Op::Wait(_) => false,
            };
            Resume {
                waiting: waits.then(|| ident(camel.clone())),
                after: ident(format!("After{camel}")),
            }
        })
        .collect();

    let arms = arms::arms(f, body, &resumes, wf)?;
    let succeed = n;
    let fail = fallible.then_some(n + 1);
    let edges = |exits: BTreeSet<Exit>| -> Vec<Edge> {
        exits
            .into_iter()
            .filter_map(|e| match e {
                Exit::Yield(k) => Some(Edge {
                    to: k,
                    on: On::Next,
                }),
                Exit::Succeed => Some(Edge {
                    to: succeed,
                    on: On::Next,
                }),
                Exit::Fail => fail.map(|to| Edge { to, on: On::Error }),
            })
            .collect()
    };
    let start = edges(arms[0].exits.clone());
    let nodes = names
        .into_iter()
        .zip(kinds)
        .enumerate()
        .map(|(k, (name, kind))| {
            // A yield point's waiting arm runs on into its after arm.
            let exits = arms
                .iter()
                .filter(|a| a.at == At::After(k) || a.at == At::Waiting(k))
                .flat_map(|a| a.exits.iter().copied())
                .collect();
            let edges = if k < n { edges(exits) } else { Vec::new() };
            Node { name, kind, edges }
        })
        .collect();
    Ok(Ir { nodes, start, arms })
}

fn node_name(op: &Op) -> String {
    match op {
        Op::Task { future, .. } => names::call_name(future),
        Op::Wait(_) => "sleep".into(),
        Op::Poll(p) => format!("poll {}", names::call_name(&p.call)),
        Op::Child(n) => match &**n {
            Nested::One(c) => names::path_name(&c.workflow),
            Nested::Parallel(cs) => {
                let list: Vec<String> = cs.iter().map(|c| names::path_name(&c.workflow)).collect();
                format!("parallel {}", list.join(", "))
            }
            Nested::Map { call, .. } => format!("map {}", names::path_name(&call.workflow)),
        },
        // Named after the call that sends the token, when the closure is one.
        Op::Callback(c) => match &*c.send.body {
            body @ (syn::Expr::Call(_) | syn::Expr::MethodCall(_)) => {
                format!("callback {}", names::call_name(body))
            }
            _ => "callback".into(),
        },
    }
}

fn node_kind(y: &crate::analyze::Yield) -> Kind {
    match &y.op {
        Op::Task { .. } => Kind::Task,
        Op::Wait(_) => Kind::Wait,
        Op::Poll(_) => Kind::Poll,
        Op::Child(n) => match &**n {
            Nested::One(c) => Kind::Child(c.workflow.clone()),
            Nested::Parallel(cs) => Kind::Parallel(cs.iter().map(|c| c.workflow.clone()).collect()),
            Nested::Map {
                call,
                max_concurrency,
                ..
            } => Kind::Map(call.workflow.clone(), *max_concurrency),
        },
        Op::Callback(c) => Kind::Callback {
            value: match &y.binding {
                crate::analyze::Binding::Let { ty, .. } => ty.clone(),
                _ => None,
            },
            unwrapped: y.try_token.is_some(),
            heartbeat: c.heartbeat.is_some(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::Errors;

    fn lower_src(src: &str) -> Ir {
        let item: syn::ItemFn = syn::parse_str(src).unwrap();
        let f = crate::parse::function(item).unwrap();
        let mut errors = Errors::default();
        let wf = quote::quote!(::workflow::__private);
        let body = crate::analyze::body(&f, &wf, &mut errors);
        errors.check().unwrap();
        lower(&f, &body, &wf).unwrap()
    }

    fn names(ir: &Ir) -> Vec<&str> {
        ir.nodes.iter().map(|n| n.name.as_str()).collect()
    }

    /// The names an edge list leads to.
    fn to<'a>(ir: &'a Ir, edges: &[Edge]) -> Vec<&'a str> {
        edges.iter().map(|e| ir.nodes[e.to].name.as_str()).collect()
    }

    /// The names node `name` leads to.
    fn after<'a>(ir: &'a Ir, name: &str) -> Vec<&'a str> {
        let node = ir.nodes.iter().find(|n| n.name == name).unwrap();
        to(ir, &node.edges)
    }

    #[test]
    fn nested_polling_workflow_is_a_chain_with_a_fail_state() {
        let ir = lower_src(
            "async fn run_job(svc: &Svc, req: Req) -> Result<Report, E> {
                let job: JobId = svc.start(&req).await?;
                let done: Polled<S> = poll_until!(svc.status(&job), |s| s.done, every = 1.secs(), timeout = 5.mins())?;
                Ok(Report::new(job, done))
            }",
        );
        assert_eq!(
            names(&ir),
            ["svc.start", "poll svc.status", "Succeed", "Fail"]
        );
        assert_eq!(ir.nodes[0].kind, Kind::Task);
        assert_eq!(ir.nodes[1].kind, Kind::Poll);
        // The task's `?` is in the code that makes the call: the start's.
        assert_eq!(to(&ir, &ir.start), ["svc.start", "Fail"]);
        assert_eq!(
            ir.start[1],
            Edge {
                to: 3,
                on: On::Error
            }
        );
        assert_eq!(after(&ir, "svc.start"), ["poll svc.status"]);
        // The poll's `?` fails; `Ok(…)` only succeeds.
        assert_eq!(after(&ir, "poll svc.status"), ["Succeed", "Fail"]);
        assert!(ir.nodes[2].edges.is_empty());
        let states: Vec<String> = ir.arms.iter().map(|a| a.state.to_string()).collect();
        assert_eq!(
            states,
            [
                "Start",
                "AfterSvcStart",
                "PollSvcStatus",
                "AfterPollSvcStatus"
            ]
        );
        let fields = |i: usize| -> Vec<String> {
            ir.arms[i]
                .fields
                .iter()
                .map(|l| l.ident.to_string())
                .collect()
        };
        assert_eq!(fields(1), ["job"]);
        assert_eq!(fields(3), ["job", "done"]);
    }

    #[test]
    fn children_and_repeats_get_distinct_names() {
        let ir = lower_src(
            "async fn main_flow(b: Batch) -> Result<Sum, E> {
                let a: R = call_nested!(run_job(b.first()))?;
                let c: R = call_nested!(run_job(b.second()))?;
                let many: Vec<R> = call_nested!(for r in b.rest => run_job(r), max_concurrency = 4)?;
                let both: (R, R) = call_nested!(parallel(run_job(1), other(2)))?;
                sleep!(1.secs());
                Ok(Sum::of(a, c, many, both))
            }",
        );
        assert_eq!(
            names(&ir),
            [
                "run_job",
                "run_job #2",
                "map run_job",
                "parallel run_job, other",
                "sleep",
                "Succeed",
                "Fail"
            ]
        );
        assert_eq!(
            ir.nodes[2].kind,
            Kind::Map(syn::parse_str("run_job").unwrap(), Some(4))
        );
        assert_eq!(ir.nodes[4].kind, Kind::Wait);
        assert_eq!(ir.arms[3].state, "RunJob2");
        // A child's `?` is in its waiting arm: an edge of the child's node.
        assert_eq!(after(&ir, "run_job"), ["run_job #2", "Fail"]);
        assert_eq!(after(&ir, "sleep"), ["Succeed"]);
    }

    #[test]
    fn a_callback_waits_in_its_node_with_the_locals_its_closure_and_the_rest_read() {
        let ir = lower_src(
            "async fn approval(desk: &Desk, order: Order, note: String) -> Result<Receipt, E> {
                let first: Decision = wait_for_callback!(|token| desk.ask(&order, token), timeout = 1.hours())?;
                wait_for_callback!(|t| async move { drop(t) }, timeout = order.limit(), heartbeat = 5.mins())?;
                let third: Result<u32, CallbackError> = wait_for_callback!(|t| desk.ask(&order, t), timeout = 1.hours());
                Ok(Receipt::new(order, first, third))
            }",
        );
        assert_eq!(
            names(&ir),
            [
                "callback desk.ask",
                "callback",
                "callback desk.ask #2",
                "Succeed",
                "Fail"
            ]
        );
        assert_eq!(
            ir.nodes[0].kind,
            Kind::Callback {
                value: Some(syn::parse_str("Decision").unwrap()),
                unwrapped: true,
                heartbeat: false
            }
        );
        assert_eq!(
            ir.nodes[1].kind,
            Kind::Callback {
                value: None,
                unwrapped: true,
                heartbeat: true
            }
        );
        assert_eq!(
            ir.nodes[2].kind,
            Kind::Callback {
                value: Some(syn::parse_str("Result<u32, CallbackError>").unwrap()),
                unwrapped: false,
                heartbeat: false
            }
        );
        let states: Vec<String> = ir.arms.iter().map(|a| a.state.to_string()).collect();
        assert_eq!(
            states,
            [
                "Start",
                "CallbackDeskAsk",
                "AfterCallbackDeskAsk",
                "Callback",
                "AfterCallback",
                "CallbackDeskAsk2",
                "AfterCallbackDeskAsk2"
            ]
        );
        let fields = |i: usize| -> Vec<String> {
            ir.arms[i]
                .fields
                .iter()
                .map(|l| l.ident.to_string())
                .collect()
        };
        // Waiting: what the closure reads and what comes after; `note` is never read.
        assert_eq!(fields(1), ["order"]);
        assert_eq!(fields(3), ["order", "first"]);
        // The value's `?` fails from the waiting state's code.
        assert_eq!(after(&ir, "callback desk.ask"), ["callback", "Fail"]);
        assert_eq!(after(&ir, "callback desk.ask #2"), ["Succeed"]);
    }

    #[test]
    fn infallible_workflow_has_no_fail_state() {
        let ir = lower_src("async fn f() -> u32 { 1 }");
        assert_eq!(names(&ir), ["Succeed"]);
        assert_eq!(to(&ir, &ir.start), ["Succeed"]);
    }

    #[test]
    fn continue_and_break_of_an_outer_loop_after_an_inner_yield() {
        // `grid`: the inner task's code can go back to the outer loop's first task.
        let ir = lower_src(
            "async fn grid(log: &Log, rows: u32, cols: u32) -> u32 {
                let mut r: u32 = 0;
                let found: u32 = 'outer: loop {
                    r += 1;
                    log.outer(r).await;
                    let mut c: u32 = 0;
                    while c < cols {
                        c += 1;
                        let v: u32 = log.inner(c).await;
                        if v % 7 == 0 { continue 'outer; }
                        if r >= rows && c == cols { break 'outer v; }
                        sleep!(1.millis());
                    }
                };
                found
            }",
        );
        assert_eq!(names(&ir), ["log.outer", "log.inner", "sleep", "Succeed"]);
        assert_eq!(to(&ir, &ir.start), ["log.outer"]);
        assert_eq!(after(&ir, "log.outer"), ["log.outer", "log.inner"]);
        assert_eq!(after(&ir, "log.inner"), ["log.outer", "sleep", "Succeed"]);
        assert_eq!(after(&ir, "sleep"), ["log.outer", "log.inner"]);
    }

    #[test]
    fn exits_of_returns_tries_and_blocks() {
        let ir = lower_src(
            "async fn f(s: &S, n: u32) -> Result<u32, E> {
                let a: u32 = s.a(n).await;
                if a == 0 { return Ok(1); }
                if a == 1 { return Err(E::One); }
                let b: u32 = 'b: {
                    if a == 2 { break 'b 7; }
                    let x: u32 = s.b(a).await;
                    if x > 3 { break 'b x; }
                    x + 1
                };
                let c: u32 = s.check(b)?;
                Ok(c)
            }",
        );
        assert_eq!(names(&ir), ["s.a", "s.b", "Succeed", "Fail"]);
        // `return Ok` succeeds, `return Err` fails, the labelled block skips `s.b`.
        assert_eq!(after(&ir, "s.a"), ["s.b", "Succeed", "Fail"]);
        assert_eq!(after(&ir, "s.b"), ["Succeed", "Fail"]);
        // Without the `?`, the code after `s.b` could only succeed.
        let ir = lower_src(
            "async fn f(s: &S, n: u32) -> Result<u32, E> {
                let x: u32 = s.b(n).await;
                Ok(x)
            }",
        );
        assert_eq!(after(&ir, "s.b"), ["Succeed"]);
    }

    #[test]
    fn a_match_whose_arms_continue_break_or_fall_through() {
        let ir = lower_src(
            "async fn f(s: &S, items: Vec<u32>) -> u32 {
                let mut total: u32 = 0;
                for i in items {
                    let k: u32 = s.kind(i).await;
                    match k {
                        0 => continue,
                        1 => break,
                        _ => {}
                    }
                    sleep!(1.secs());
                    total += k;
                }
                s.last(total).await
            }",
        );
        assert_eq!(names(&ir), ["s.kind", "sleep", "s.last", "Succeed"]);
        assert_eq!(to(&ir, &ir.start), ["s.kind", "s.last"]);
        assert_eq!(after(&ir, "s.kind"), ["s.kind", "sleep", "s.last"]);
        assert_eq!(after(&ir, "sleep"), ["s.kind", "s.last"]);
        assert_eq!(after(&ir, "s.last"), ["Succeed"]);
    }

    #[test]
    fn dead_locals_are_not_persisted() {
        // After the wait, `v` is only read on a path that ends the loop first; after the
        // task, the outer `r` is read again after the inner loop.
        let ir = lower_src(
            "async fn f(s: &S, n: u32) -> u32 {
                let mut total: u32 = 0;
                for r in 0..n {
                    let mut c: u32 = 0;
                    while c < 2 {
                        c += 1;
                        total += s.note(r * 10 + c).await;
                    }
                    total += r;
                }
                loop {
                    let v: u32 = total * 2;
                    sleep!(1.secs());
                    break;
                    total += v;
                }
                total
            }",
        );
        let fields = |state: &str| -> Vec<String> {
            let arm = ir.arms.iter().find(|a| a.state == state).unwrap();
            arm.fields.iter().map(|l| l.ident.to_string()).collect()
        };
        assert_eq!(fields("AfterSleep"), ["total"]);
        assert!(fields("AfterSNote").contains(&"total".to_owned()));
        assert_eq!(after(&ir, "sleep"), ["Succeed"]);
    }
}
