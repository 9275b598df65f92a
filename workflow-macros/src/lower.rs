//! Stage 3: the state graph (the IR both the driver and the ASL emitter are generated
//! from) and the resume points (the variants of the state enum).
//!
//! Yield points are the graph's task, wait, poll and child nodes; an `if`, `match` or
//! loop that contains one is a choice node whose edges lead into its branches (a loop's
//! body leads back to it).

use std::collections::HashSet;

use proc_macro2::Span;
use syn::Ident;

use crate::analyze::{Block, Body, Else, If, Node as Tree, Op};
use crate::names;
use crate::yields::Nested;

#[cfg_attr(test, derive(Debug, PartialEq))]
pub(crate) struct Graph {
    pub(crate) start_at: usize,
    pub(crate) nodes: Vec<Node>,
}

#[cfg_attr(test, derive(Debug, PartialEq))]
pub(crate) struct Node {
    pub(crate) name: String,
    pub(crate) kind: Kind,
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
    Choice,
    Succeed,
    Fail,
}

#[derive(Clone, PartialEq)]
#[cfg_attr(test, derive(Debug))]
pub(crate) struct Edge {
    pub(crate) to: usize,
    pub(crate) on: On,
}

#[derive(Clone, Copy, PartialEq)]
#[cfg_attr(test, derive(Debug))]
pub(crate) enum On {
    Next,
    Error,
}

/// The state variants of one yield point.
pub(crate) struct Resume {
    /// Its node in the graph.
    pub(crate) node: usize,
    /// The state once it completed; the code after it runs from here.
    pub(crate) after: Ident,
    /// The state while it waits (polls and children).
    pub(crate) waiting: Option<Ident>,
}

pub(crate) struct Lowered {
    pub(crate) graph: Graph,
    /// One per yield point, in body order.
    pub(crate) resumes: Vec<Resume>,
}

/// Node indices: the yield points first (so a yield's index is its node), then the
/// choices, then `Succeed` and `Fail`.
pub(crate) fn lower(body: &Body, fallible: bool) -> Lowered {
    let ops: Vec<&Op> = body.yields.iter().map(|y| &y.op).collect();
    let mut raw: Vec<String> = ops.iter().map(|op| node_name(op)).collect();
    raw.extend(body.choices.iter().cloned());
    raw.push("Succeed".into());
    if fallible {
        raw.push("Fail".into());
    }
    let unique = names::uniquify(raw);
    let choices = ops.len();
    let succeed = choices + body.choices.len();
    let fail = fallible.then_some(succeed + 1);

    let mut kinds: Vec<Kind> = ops.iter().map(|op| node_kind(op)).collect();
    kinds.extend(body.choices.iter().map(|_| Kind::Choice));
    kinds.push(Kind::Succeed);
    if fallible {
        kinds.push(Kind::Fail);
    }
    let mut builder = Builder {
        edges: vec![Vec::new(); kinds.len()],
        choices,
    };
    let start_at = builder.block(&body.root, succeed);
    if let Some(fail) = fail {
        // Any code of a fallible workflow may return its error; tracking which parts can
        // fail would only thin out these edges.
        for edges in &mut builder.edges[..ops.len()] {
            edges.push(Edge {
                to: fail,
                on: On::Error,
            });
        }
    }
    let nodes = unique
        .into_iter()
        .zip(kinds)
        .zip(builder.edges)
        .map(|((name, kind), edges)| Node { name, kind, edges })
        .collect::<Vec<_>>();

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
    let resumes = body
        .yields
        .iter()
        .enumerate()
        .map(|(i, y)| {
            let camel = names::camel(&nodes[i].name);
            // A task with a policy gets a state before its call, which a retry re-runs.
            let waits = match y.op {
                Op::Poll(_) | Op::Nested(_) => true,
                Op::Task { .. } => y.policy.is_some(),
                Op::Sleep(_) => false,
            };
            Resume {
                node: i,
                waiting: waits.then(|| ident(camel.clone())),
                after: ident(format!("After{camel}")),
            }
        })
        .collect();
    Lowered {
        graph: Graph { start_at, nodes },
        resumes,
    }
}

struct Builder {
    edges: Vec<Vec<Edge>>,
    /// Index of the first choice node.
    choices: usize,
}

impl Builder {
    fn edge(&mut self, from: usize, to: usize) {
        let edge = Edge { to, on: On::Next };
        if !self.edges[from].contains(&edge) {
            self.edges[from].push(edge);
        }
    }

    /// Adds the edges of `block`, which continues at node `next`; returns its entry node.
    fn block(&mut self, block: &Block, mut next: usize) -> usize {
        for node in block.nodes.iter().rev() {
            next = match node {
                Tree::Plain(_) => next,
                Tree::Yield(k) => {
                    self.edge(*k, next);
                    *k
                }
                Tree::If(i) => self.if_node(i, next),
                Tree::Match(m) => {
                    let c = self.choices + m.choice;
                    for arm in &m.arms {
                        let to = self.block(&arm.body, next);
                        self.edge(c, to);
                    }
                    c
                }
                Tree::Loop(l) => {
                    let c = self.choices + l.choice;
                    let body = self.block(&l.body, c);
                    self.edge(c, body);
                    self.edge(c, next);
                    c
                }
                Tree::Block(_, b) => self.block(b, next),
            };
        }
        next
    }

    fn if_node(&mut self, i: &If, next: usize) -> usize {
        let c = self.choices + i.choice;
        let then = self.block(&i.then, next);
        let els = match &i.els {
            None => next,
            Some(Else::Block(b)) => self.block(b, next),
            Some(Else::If(inner)) => self.if_node(inner, next),
        };
        self.edge(c, then);
        self.edge(c, els);
        c
    }
}

fn node_name(op: &Op) -> String {
    match op {
        Op::Task { future, .. } => names::call_name(future),
        Op::Sleep(_) => "sleep".into(),
        Op::Poll(p) => format!("poll {}", names::call_name(&p.call)),
        Op::Nested(n) => match &**n {
            Nested::One(c) => names::path_name(&c.workflow),
            Nested::Parallel(cs) => {
                let list: Vec<String> = cs.iter().map(|c| names::path_name(&c.workflow)).collect();
                format!("parallel {}", list.join(", "))
            }
            Nested::Map { call, .. } => format!("map {}", names::path_name(&call.workflow)),
        },
    }
}

fn node_kind(op: &Op) -> Kind {
    match op {
        Op::Task { .. } => Kind::Task,
        Op::Sleep(_) => Kind::Wait,
        Op::Poll(_) => Kind::Poll,
        Op::Nested(n) => match &**n {
            Nested::One(c) => Kind::Child(c.workflow.clone()),
            Nested::Parallel(cs) => Kind::Parallel(cs.iter().map(|c| c.workflow.clone()).collect()),
            Nested::Map {
                call,
                max_concurrency,
                ..
            } => Kind::Map(call.workflow.clone(), *max_concurrency),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::Errors;

    fn lower_src(src: &str) -> Lowered {
        let item: syn::ItemFn = syn::parse_str(src).unwrap();
        let f = crate::parse::function(item).unwrap();
        let mut errors = Errors::default();
        let body = crate::analyze::body(&f, &quote::quote!(::workflow::__private), &mut errors);
        errors.check().unwrap();
        lower(&body, matches!(f.ret, crate::parse::Ret::Fallible { .. }))
    }

    #[test]
    fn nested_polling_workflow_is_a_chain_with_a_fail_state() {
        let l = lower_src(
            "async fn run_job(svc: &Svc, req: Req) -> Result<Report, E> {
                let job: JobId = svc.start(&req).await?;
                let done: Polled<S> = poll_until!(svc.status(&job), |s| s.done, every = 1.secs(), timeout = 5.mins())?;
                Ok(Report::new(job, done))
            }",
        );
        let names: Vec<&str> = l.graph.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["svc.start", "poll svc.status", "Succeed", "Fail"]);
        assert_eq!(l.graph.nodes[0].kind, Kind::Task);
        assert_eq!(l.graph.nodes[1].kind, Kind::Poll);
        assert_eq!(
            l.graph.nodes[0].edges,
            [
                Edge {
                    to: 1,
                    on: On::Next
                },
                Edge {
                    to: 3,
                    on: On::Error
                }
            ]
        );
        assert_eq!(
            l.graph.nodes[1].edges[0],
            Edge {
                to: 2,
                on: On::Next
            }
        );
        assert!(l.graph.nodes[2].edges.is_empty());
        assert_eq!(l.resumes[0].after, "AfterSvcStart");
        assert!(l.resumes[0].waiting.is_none());
        assert_eq!(l.resumes[1].waiting.as_ref().unwrap(), "PollSvcStatus");
        assert_eq!(l.resumes[1].after, "AfterPollSvcStatus");
    }

    #[test]
    fn children_and_repeats_get_distinct_names() {
        let l = lower_src(
            "async fn main_flow(b: Batch) -> Result<Sum, E> {
                let a: R = call_nested!(run_job(b.first()))?;
                let c: R = call_nested!(run_job(b.second()))?;
                let many: Vec<R> = call_nested!(for r in b.rest => run_job(r), max_concurrency = 4)?;
                let both: (R, R) = call_nested!(parallel(run_job(1), other(2)))?;
                sleep!(1.secs());
                Ok(Sum::of(a, c, many, both))
            }",
        );
        let names: Vec<&str> = l.graph.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(
            names,
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
            l.graph.nodes[2].kind,
            Kind::Map(syn::parse_str("run_job").unwrap(), Some(4))
        );
        assert_eq!(l.graph.nodes[4].kind, Kind::Wait);
        assert_eq!(l.resumes[1].waiting.as_ref().unwrap(), "RunJob2");
    }

    #[test]
    fn infallible_workflow_has_no_fail_state() {
        let l = lower_src("async fn f() -> u32 { 1 }");
        assert_eq!(l.graph.nodes.len(), 1);
        assert_eq!(l.graph.nodes[0].kind, Kind::Succeed);
        assert_eq!(l.graph.start_at, 0);
    }
}
