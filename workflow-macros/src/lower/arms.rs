//! The walk that writes the code of every arm of the step function and, as it writes
//! it, records where that code can exit to.
//!
//! The arm of the state after a yield point runs "the rest of the function" from there:
//! the rest of the innermost block, then of each enclosing block, re-entering each
//! enclosing loop (its current iteration in a labelled block whose `continue`s fall into
//! the loop again). Which locals a state holds is what its arm reads (liveness), computed
//! on the written arms themselves.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap, HashSet};

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::visit_mut::{self, VisitMut};
use syn::{Expr, Ident, Lifetime, Stmt, Type};

use super::{Arm, At, Exit, Resume};
use crate::analyze::uses;
use crate::analyze::{
    Binding, Block, Body, Else, If, Local, Loop, LoopKind, Node, Op, Range, Yield,
};
use crate::errors::Errors;
use crate::parse::{Ret, WorkflowFn};
use crate::yields::{child, respan, Call, Callback, Nested, Poll};

/// What the walk needs of the workflow.
struct Cx<'a> {
    f: &'a WorkflowFn,
    body: &'a Body,
    resumes: &'a [Resume],
    /// `<crate>::__private`.
    wf: &'a TokenStream,
}

impl Cx<'_> {
    fn err_ty(&self) -> TokenStream {
        match &self.f.ret {
            Ret::Fallible { err, .. } => err.to_token_stream(),
            Ret::Plain(_) => {
                let wf = self.wf;
                quote!(#wf::NoError)
            }
        }
    }

    fn fallible(&self) -> bool {
        matches!(self.f.ret, Ret::Fallible { .. })
    }
}

/// Every arm, `Start` first: its code, exits and fields.
pub(super) fn arms(
    f: &WorkflowFn,
    body: &Body,
    resumes: &[Resume],
    wf: &TokenStream,
) -> syn::Result<Vec<Arm>> {
    let cx = Cx {
        f,
        body,
        resumes,
        wf,
    };
    let (fields, asked) = liveness(&cx)?;
    let emit = |code: &dyn Fn(&Emit) -> TokenStream| {
        let e = Emit {
            cx: &cx,
            fields: Some(&fields),
            exits: RefCell::default(),
            decisions: RefCell::default(),
            asked: &asked,
        };
        let code = code(&e);
        (code, e.exits.into_inner())
    };
    let (code, exits) = emit(&|e| e.root());
    let mut arms = vec![Arm {
        at: At::Start,
        state: Ident::new("Start", Span::call_site()),
        fields: Vec::new(),
        code,
        exits,
    }];
    for (k, r) in resumes.iter().enumerate() {
        if let Some(waiting) = &r.waiting {
            let (code, exits) = emit(&|e| e.waiting_body(k));
            arms.push(Arm {
                at: At::Waiting(k),
                state: waiting.clone(),
                fields: fields.waiting(k).to_vec(),
                code,
                exits,
            });
        }
        let (code, exits) = emit(&|e| e.rest(k));
        arms.push(Arm {
            at: At::After(k),
            state: r.after.clone(),
            fields: fields.after(k).to_vec(),
            code,
            exits,
        });
    }
    Ok(arms)
}

/// The fields of every state variant but `Start` (whose fields are the parameters).
#[derive(Clone, Default, PartialEq)]
pub(crate) struct Fields {
    waiting: Vec<Vec<Local>>,
    after: Vec<Vec<Local>>,
}

impl Fields {
    fn waiting(&self, k: usize) -> &[Local] {
        &self.waiting[k]
    }
    fn after(&self, k: usize) -> &[Local] {
        &self.after[k]
    }
}

impl PartialEq for Local {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

/// Which locals each state holds: the locals in scope there that its arm reads.
///
/// Arms construct the next states, so a state also holds what the states it leads to
/// need. Each arm is written once with a marker in place of each state it constructs
/// (`__WfState::AfterX { __wf_live_after_3 }`), and read once: its free names, and for
/// each marker the names bound around it. The sets then grow from empty to the
/// fixpoint (the smallest sets) without writing the code again.
///
/// Also returns what was asked of the code while it was written: the answers hold for
/// the code written with the fields, which need not be read again.
fn liveness(cx: &Cx) -> syn::Result<(Fields, RefCell<Asked>)> {
    let n = cx.body.yields.len();
    let asked = RefCell::default();
    let emit = Emit {
        cx,
        fields: None,
        exits: RefCell::default(),
        decisions: RefCell::default(),
        asked: &asked,
    };
    let mut reads_waiting = Vec::with_capacity(n);
    let mut reads_after = Vec::with_capacity(n);
    for k in 0..n {
        let waiting = cx.resumes[k].waiting.is_some();
        reads_waiting.push(if waiting {
            Some(reads(emit.waiting_body(k))?)
        } else {
            None
        });
        reads_after.push(reads(emit.rest(k))?);
    }
    let mut fields = Fields {
        waiting: vec![Vec::new(); n],
        after: vec![Vec::new(); n],
    };
    // Each round can only add locals, and there are finitely many.
    loop {
        let mut next = fields.clone();
        for (k, y) in cx.body.yields.iter().enumerate() {
            if let Some(reads) = &reads_waiting[k] {
                next.waiting[k] = resolve(&reads.names(&fields), &y.scope_before);
            }
            next.after[k] = resolve(&reads_after[k].names(&fields), &y.scope_after);
        }
        if next == fields {
            break;
        }
        fields = next;
    }
    // The code was written as if no state held anything. Where that changed how it was
    // written (a loop's pattern bound again or not), write it again with the fields.
    let decisions = emit.decisions.into_inner();
    let asked = if decisions.iter().all(|d| d.holds(&fields)) {
        asked
    } else {
        fields = liveness_by_rounds(cx)?;
        RefCell::default()
    };
    #[cfg(test)]
    assert!(
        fields == liveness_by_rounds(cx)?,
        "the fields from one writing of the arms are those of writing them until nothing changes"
    );
    check_persisted(&fields)?;
    Ok((fields, asked))
}

/// The fields by writing the arms with the fields so far until they do not change.
fn liveness_by_rounds(cx: &Cx) -> syn::Result<Fields> {
    let n = cx.body.yields.len();
    let mut fields = Fields {
        waiting: vec![Vec::new(); n],
        after: vec![Vec::new(); n],
    };
    // Each round can only add locals, and there are finitely many.
    for _ in 0..=(2 * n + 1) {
        let asked = RefCell::default();
        let emit = Emit {
            cx,
            fields: Some(&fields),
            exits: RefCell::default(),
            decisions: RefCell::default(),
            asked: &asked,
        };
        let mut next = fields.clone();
        for (k, y) in cx.body.yields.iter().enumerate() {
            if cx.resumes[k].waiting.is_some() {
                next.waiting[k] = resolve(&reads(emit.waiting_body(k))?.free, &y.scope_before);
            }
            next.after[k] = resolve(&reads(emit.rest(k))?.free, &y.scope_after);
        }
        if next == fields {
            break;
        }
        fields = next;
    }
    Ok(fields)
}

/// A choice made on what a piece of code reads, while the fields were not known.
struct Decision {
    code: Reads,
    /// The names whose reading was asked.
    names: BTreeSet<String>,
}

impl Decision {
    /// Whether the code reads `names` as it did without fields, now they are `fields`.
    fn holds(&self, fields: &Fields) -> bool {
        let before = &self.code.free;
        let now = self.code.names(fields);
        before.is_disjoint(&self.names) == now.is_disjoint(&self.names)
            && self.names.is_subset(before) == self.names.is_subset(&now)
    }
}

/// The marker standing for the fields of the state `at` in code written before they are
/// known.
fn marker(at: At) -> Ident {
    match at {
        At::Waiting(k) => format_ident!("{}waiting_{}", MARKER, k),
        At::After(k) => format_ident!("{}after_{}", MARKER, k),
        At::Start => unreachable!("no arm constructs the start state"),
    }
}

const MARKER: &str = "__wf_live_";

/// What an arm written with markers reads.
struct Reads {
    /// Its own free names.
    free: BTreeSet<String>,
    /// The states it constructs, with the names bound around each construction.
    states: Vec<(At, BTreeSet<String>)>,
}

impl Reads {
    /// Its free names once the states' fields are `fields`.
    fn names(&self, fields: &Fields) -> BTreeSet<String> {
        let mut names = self.free.clone();
        for (at, bound) in &self.states {
            let locals = match *at {
                At::Waiting(k) => fields.waiting(k),
                At::After(k) => fields.after(k),
                At::Start => &[],
            };
            names.extend(
                locals
                    .iter()
                    .map(Local::name)
                    .filter(|n| !bound.contains(n)),
            );
        }
        names
    }
}

fn reads(code: TokenStream) -> syn::Result<Reads> {
    let block: syn::Block = syn::parse2(quote!({ #code }))?;
    let (free, markers) = uses::free_names(&block, MARKER);
    let states = markers
        .into_iter()
        .map(|(name, bound)| {
            let rest = &name[MARKER.len()..];
            let at = match rest.split_once('_') {
                Some(("waiting", k)) => At::Waiting(k.parse().expect("a marker's index")),
                Some(("after", k)) => At::After(k.parse().expect("a marker's index")),
                _ => unreachable!("markers are written by `marker`"),
            };
            (at, bound)
        })
        .collect();
    Ok(Reads { free, states })
}

/// Every persisted local needs a type, and one that owns its data.
fn check_persisted(fields: &Fields) -> syn::Result<()> {
    let mut errors = Errors::default();
    let mut seen = HashSet::new();
    for local in fields.waiting.iter().chain(&fields.after).flatten() {
        if !seen.insert(local.id) {
            continue;
        }
        let name = &local.ident;
        match &local.ty {
                None if local.from_pattern => errors.spanned(
                    name,
                    format!("`{name}` is bound by a pattern and used after a yield point, so it is persisted there and needs a type: rebind it first, `let {name}: Type = {name};`"),
                ),
                None => errors.spanned(
                    name,
                    format!("`{name}` is used after a yield point, so it is persisted there and needs a type: write `let {name}: Type = …;`"),
                ),
                Some(ty) => {
                    if let Some(borrow) = borrow_in(ty) {
                        errors.spanned(borrow, format!("`{name}` is used after a yield point, so it is persisted there, and a borrow cannot be persisted: keep an owned value (`String`, `Vec<T>`, a clone) instead"));
                    } else if let Some(infer) = inferred_in(ty) {
                        errors.spanned(infer, format!("`{name}` is persisted across a yield point: spell out its type, the state enum cannot infer it"));
                    }
                }
            }
    }
    errors.check()
}

/// Emits the code of the arms, for a given assignment of fields to states.
struct Emit<'c, 'a> {
    cx: &'c Cx<'a>,
    /// `None` while the fields are computed: each state constructed gets a marker.
    fields: Option<&'c Fields>,
    /// The exits of the code written so far.
    exits: RefCell<BTreeSet<Exit>>,
    /// Without fields: the choices made on what some code reads.
    decisions: RefCell<Vec<Decision>>,
    /// What was asked of which code, shared by the writers of every arm: the same
    /// question comes up again in other arms (a loop re-entered from each of its yield
    /// points), and reading code back means parsing it.
    asked: &'c RefCell<Asked>,
}

/// The answers to the questions asked of code while the arms are written.
type Asked = HashMap<Ask, Uses>;

/// Which code a `for` loop's pattern is looked for in. The code depends on nothing else
/// (the same loop, the same resumed loops around it, the same fields).
#[derive(Clone, PartialEq, Eq, Hash)]
enum Ask {
    /// The body of loop `l`, started again, in the loops `rw` being resumed.
    Again { l: usize, rw: Vec<usize> },
    /// The rest of loop `l`'s iteration after yield point `k`.
    Rest { l: usize, k: usize, rw: Vec<usize> },
    /// The arm resuming the waiting state of yield point `k`, for its `f`-th loop.
    Waiting { k: usize, f: usize },
}

/// Whether some code reads all of the names asked about, or none of them.
#[derive(Clone, Copy)]
struct Uses {
    all: bool,
    none: bool,
}

impl Emit<'_, '_> {
    /// Whether `code`, which `ask` names, reads all or none of `names`: that decides how
    /// the code around it is written (code that does not parse reads them all). Without
    /// fields, the decision is recorded, to be checked once they are known.
    fn reads_names(&self, ask: Ask, code: &TokenStream, names: &BTreeSet<String>) -> Uses {
        if let Some(&uses) = self.asked.borrow().get(&ask) {
            // The macro's own tests read the code again: the answer must be the same.
            #[cfg(test)]
            if let Ok(code) = reads(code.clone()) {
                assert_eq!(
                    (uses.all, uses.none),
                    (names.is_subset(&code.free), names.is_disjoint(&code.free)),
                    "a question asked again of the same code gets the same answer"
                );
            }
            return uses;
        }
        let Ok(code) = reads(code.clone()) else {
            // Not kept: only what was read, and checked as a decision, is reused.
            return Uses {
                all: true,
                none: false,
            };
        };
        let uses = Uses {
            all: names.is_subset(&code.free),
            none: names.is_disjoint(&code.free),
        };
        if self.fields.is_none() {
            self.decisions.borrow_mut().push(Decision {
                code,
                names: names.clone(),
            });
        }
        self.asked.borrow_mut().insert(ask, uses);
        uses
    }

    /// The field initializers of the state `at` (shorthand: the locals of the same name).
    fn inits(&self, at: At) -> Vec<TokenStream> {
        let Some(fields) = self.fields else {
            return vec![marker(at).to_token_stream()];
        };
        let locals = match at {
            At::Waiting(k) => fields.waiting(k),
            At::After(k) => fields.after(k),
            At::Start => unreachable!("no arm constructs the start state"),
        };
        locals.iter().map(|l| l.ident.to_token_stream()).collect()
    }

    /// The whole body, from the start.
    fn root(&self) -> TokenStream {
        let (nodes, stops) = self.nodes(&self.cx.body.root.nodes, &[]);
        let end = (!stops).then(|| self.complete(&[]));
        quote!(#nodes #end)
    }

    /// Everything after yield point `k`, to the end of the body.
    fn rest(&self, k: usize) -> TokenStream {
        self.rest_in(&self.cx.body.root, k, &[], true)
            .map(|(code, _)| code)
            .unwrap_or_else(|| unreachable!("every yield point is in the body"))
    }

    /// The rest of `block` after yield point `k`, if `k` is in it, and whether that code
    /// never falls through to what follows the block.
    ///
    /// The "stops" flags here and below are what keeps code that cannot run out of the
    /// arms (code after a `loop` whose iteration always yields before any `break`, after
    /// an `if` whose branches all yield): rustc would only warn about it, but the exits it
    /// records would be routes the execution can never take.
    fn rest_in(
        &self,
        block: &Block,
        k: usize,
        rw: &[Redirect],
        root: bool,
    ) -> Option<(TokenStream, bool)> {
        for (i, node) in block.nodes.iter().enumerate() {
            let head = match node {
                Node::Yield(j) if *j == k => Some((quote!(), false)),
                Node::If(x) => self.rest_in_if(x, k, rw),
                Node::Match(m) => m.arms.iter().find_map(|arm| {
                    self.rest_in(&arm.body, k, rw, false)
                        .map(|(r, stops)| (quote!({ #r };), stops))
                }),
                Node::Loop(l) => self.rest_in_loop(l, k, rw),
                Node::Block(label, b) => self.rest_in(b, k, rw, false).map(|(r, stops)| {
                    let code = quote!(#label { #r };);
                    let left = label.as_ref().is_some_and(|l| breaks_to(&code, &[&l.name]));
                    (code, stops && !left)
                }),
                Node::Yield(_) | Node::Plain(_) => None,
            };
            if let Some((head, stops)) = head {
                if stops {
                    return Some((head, true));
                }
                let (after, stops) = self.nodes(&block.nodes[i + 1..], rw);
                let end = if stops {
                    quote!()
                } else if root {
                    self.complete(rw)
                } else {
                    let tail = block.tail.as_ref().map(|t| self.user_expr(t, rw));
                    quote!(#tail)
                };
                return Some((quote!(#head #after #end), stops));
            }
        }
        None
    }

    fn rest_in_if(&self, x: &If, k: usize, rw: &[Redirect]) -> Option<(TokenStream, bool)> {
        let wrap = |(r, stops): (TokenStream, bool)| (quote!({ #r };), stops);
        if let Some(r) = self.rest_in(&x.then, k, rw, false) {
            return Some(wrap(r));
        }
        match &x.els {
            Some(Else::Block(b)) => self.rest_in(b, k, rw, false).map(wrap),
            Some(Else::If(inner)) => self.rest_in_if(inner, k, rw),
            None => None,
        }
    }

    /// The rest of the current iteration, then the loop again.
    fn rest_in_loop(&self, l: &Loop, k: usize, rw: &[Redirect]) -> Option<(TokenStream, bool)> {
        let redirect = Redirect {
            id: l.id,
            label: l.label.clone(),
            next: Lifetime::new(&format!("'__wf_next{}", l.id), Span::call_site()),
            exit: Lifetime::new(&format!("'__wf_exit{}", l.id), Span::call_site()),
        };
        let mut inner_rw = rw.to_vec();
        inner_rw.push(redirect.clone());
        let (mut inner, inner_stops) = self.rest_in(&l.body, k, &inner_rw, false)?;
        let (next, exit) = (&redirect.next, &redirect.exit);
        // The loop runs again if the rest of this iteration ends or `continue`s.
        let again = !inner_stops || breaks_to(&inner, &[next]);
        if let LoopKind::For {
            pat, state, item, ..
        } = &l.kind
        {
            let ask = Ask::Rest {
                l: l.id,
                k,
                rw: rw.iter().map(|r| r.id).collect(),
            };
            let rebind = self.rebind_for(ask, pat, state, item.as_ref(), &inner);
            inner = quote!(#rebind #inner);
        }
        if !again {
            let code = quote!(#exit: { #next: { #inner } };);
            return Some((code.clone(), !breaks_to(&code, &[exit])));
        }
        let (again, _) = self.loop_again(l, rw);
        let code = quote!(#exit: { #next: { #inner } #again };);
        // A `while` or `for` ends by itself; a `loop` only by a `break`.
        let stops = matches!(l.kind, LoopKind::Loop) && !breaks_to(&code, &[exit, &l.label]);
        Some((code, stops))
    }

    /// Binds a `for` loop's pattern again from its current item, if `code` reads it.
    fn rebind_for(
        &self,
        ask: Ask,
        pat: &syn::Pat,
        state: &Ident,
        item: Option<&Type>,
        code: &TokenStream,
    ) -> TokenStream {
        let names: BTreeSet<String> = uses::pat_names(pat).iter().map(|i| i.to_string()).collect();
        if self.reads_names(ask, code, &names).none {
            return quote!();
        }
        let turbofish = item.map(|t| quote!(::<#t>));
        quote! {
            let #pat = match #state.current #turbofish() {
                __WfOk(__wf_item) => __wf_item,
                __WfErr(__wf_fault) => {
                    return __WfOk(__WfStep::Fault(__wf_fault));
                }
            };
        }
    }

    /// The code of `nodes`, up to the first yield point at this level: entering it
    /// returns from the step, and what follows runs from its own state (where the locals
    /// it binds exist). The flag says whether the code stops before the end of `nodes`
    /// (at such a yield point, or in a construct that never falls through).
    fn nodes(&self, nodes: &[Node], rw: &[Redirect]) -> (TokenStream, bool) {
        let mut code = TokenStream::new();
        for node in nodes {
            let (node, stops) = self.node(node, rw);
            code.extend(node);
            if stops {
                return (code, true);
            }
        }
        (code, false)
    }

    fn block(&self, block: &Block, rw: &[Redirect]) -> (TokenStream, bool) {
        let (nodes, stops) = self.nodes(&block.nodes, rw);
        let tail = block
            .tail
            .as_ref()
            .filter(|_| !stops)
            .map(|t| self.user_expr(t, rw));
        (quote!(#nodes #tail), stops)
    }

    fn node(&self, node: &Node, rw: &[Redirect]) -> (TokenStream, bool) {
        match node {
            Node::Plain(stmt) => (self.user_stmt(stmt, rw), jumps(stmt)),
            Node::Yield(k) => (self.enter(*k), true),
            Node::If(x) => {
                let (code, stops) = self.if_code(x, rw);
                (quote!(#code;), stops)
            }
            Node::Match(m) => {
                let expr = self.user_expr(&m.expr, rw);
                let mut stops = true;
                let arms: Vec<TokenStream> = m
                    .arms
                    .iter()
                    .map(|arm| {
                        let pat = &arm.pat;
                        let guard = arm.guard.as_ref().map(|g| {
                            let g = self.user_expr(g, rw);
                            quote!(if #g)
                        });
                        let (body, arm_stops) = self.block(&arm.body, rw);
                        stops &= arm_stops;
                        quote!(#pat #guard => { #body })
                    })
                    .collect();
                (quote!(match #expr { #(#arms)* };), stops)
            }
            Node::Loop(l) => {
                let entry = match &l.kind {
                    LoopKind::For {
                        iter, range, state, ..
                    } => {
                        let wf = self.cx.wf;
                        let iter = self.user_expr(iter, rw);
                        let ctor = match range {
                            Range::No => quote!(items),
                            Range::HalfOpen => quote!(range),
                            Range::Closed => quote!(range_inclusive),
                        };
                        quote! {
                            let mut #state = match #wf::codegen::ForIter::#ctor(#iter) {
                                __WfOk(__wf_iter) => __wf_iter,
                                __WfErr(__wf_fault) => {
                                    return __WfOk(__WfStep::Fault(__wf_fault));
                                }
                            };
                        }
                    }
                    LoopKind::Loop | LoopKind::While(_) => quote!(),
                };
                let (again, stops) = self.loop_again(l, rw);
                (quote!(#entry #again), stops)
            }
            Node::Block(label, b) => {
                let (body, stops) = self.block(b, rw);
                let code = quote!(#label { #body };);
                let left = label.as_ref().is_some_and(|l| breaks_to(&code, &[&l.name]));
                (code, stops && !left)
            }
        }
    }

    fn if_code(&self, x: &If, rw: &[Redirect]) -> (TokenStream, bool) {
        let cond = self.user_expr(&x.cond, rw);
        let (then, then_stops) = self.block(&x.then, rw);
        let (els, els_stops) = match &x.els {
            None => (quote!(), false),
            Some(Else::Block(b)) => {
                let (b, stops) = self.block(b, rw);
                (quote!(else { #b }), stops)
            }
            Some(Else::If(inner)) => {
                let (inner, stops) = self.if_code(inner, rw);
                (quote!(else #inner), stops)
            }
        };
        (quote!(if #cond { #then } #els), then_stops && els_stops)
    }

    /// The loop itself, from the top of an iteration, and whether it never ends (a
    /// `loop` without a `break` in the code written for it).
    fn loop_again(&self, l: &Loop, rw: &[Redirect]) -> (TokenStream, bool) {
        let label = &l.label;
        let (body, _) = self.block(&l.body, rw);
        let code = match &l.kind {
            LoopKind::Loop => quote!(#label: loop { #body };),
            LoopKind::While(cond) => {
                let cond = self.user_expr(cond, rw);
                quote!(#label: while #cond { #body };)
            }
            LoopKind::For {
                pat,
                range,
                state,
                item,
                ..
            } => {
                let wf = self.cx.wf;
                let next = match range {
                    Range::No => quote!(next_item),
                    Range::HalfOpen => quote!(next_in_range),
                    Range::Closed => quote!(next_in_range_inclusive),
                };
                // In an arm that stops at a yield point before reading the pattern, its
                // names are read in the next state's arm instead.
                let names: BTreeSet<String> =
                    uses::pat_names(pat).iter().map(|i| i.to_string()).collect();
                let ask = Ask::Again {
                    l: l.id,
                    rw: rw.iter().map(|r| r.id).collect(),
                };
                let Uses {
                    all: read,
                    none: unread,
                } = self.reads_names(ask, &body, &names);
                // An item nothing here reads is still taken from the loop, but not decoded
                // (`IgnoredAny` reads anything): its type may not show in this arm.
                let skip = unread && item.is_none() && *range == Range::No;
                let bound = if skip { quote!(_) } else { quote!(#pat) };
                let turbofish = match (pat, range, item) {
                    (_, _, Some(item)) => quote!(::<#item>),
                    (syn::Pat::Wild(_), Range::No, None) => quote!(::<#wf::serde::de::IgnoredAny>),
                    _ if skip => quote!(::<#wf::serde::de::IgnoredAny>),
                    _ => quote!(),
                };
                let allow = (!read && !skip).then(|| quote!(#[allow(unused_variables)]));
                quote! {
                    #label: loop {
                        #allow
                        let #bound = match #state.#next #turbofish() {
                            __WfSome(__WfOk(__wf_item)) => __wf_item,
                            __WfSome(__WfErr(__wf_fault)) => {
                                return __WfOk(__WfStep::Fault(__wf_fault));
                            }
                            __WfNone => break #label,
                        };
                        #body
                    };
                }
            }
        };
        let never_ends = matches!(l.kind, LoopKind::Loop) && !breaks_to(&code, &[label]);
        (code, never_ends)
    }

    fn user_stmt(&self, stmt: &Stmt, rw: &[Redirect]) -> TokenStream {
        self.record(|find| find.visit_stmt(stmt));
        let mut stmt = stmt.clone();
        UserCode {
            cx: self.cx,
            redirects: rw,
        }
        .visit_stmt_mut(&mut stmt);
        stmt.into_token_stream()
    }

    fn user_expr(&self, expr: &Expr, rw: &[Redirect]) -> TokenStream {
        self.scan(expr);
        let mut expr = expr.clone();
        UserCode {
            cx: self.cx,
            redirects: rw,
        }
        .visit_expr_mut(&mut expr);
        expr.into_token_stream()
    }

    /// The end of the body: its tail returned, or `()` for a workflow without one.
    fn complete(&self, rw: &[Redirect]) -> TokenStream {
        let ident = &self.cx.f.ident;
        let tail = self.cx.body.root.tail.as_ref();
        match tail {
            Some(t) => self.ends_with(t),
            None if !self.cx.fallible() => self.exit(Exit::Succeed),
            None => {}
        }
        let tail = tail.map(|t| self.user_expr(t, rw));
        match (tail, &self.cx.f.ret) {
            (Some(tail), Ret::Fallible { .. }) => {
                quote!(return __WfStep::<#ident>::returned(#tail);)
            }
            (Some(tail), Ret::Plain(_)) => {
                quote!(return __WfOk(__WfStep::Succeed(#tail));)
            }
            // Without a tail, a `Result` workflow must have returned already: adding
            // nothing lets rustc report a missing return exactly as for a plain fn.
            (None, Ret::Fallible { .. }) => quote!(),
            (None, Ret::Plain(_)) => {
                quote!(return __WfOk(__WfStep::Succeed(()));)
            }
        }
    }

    fn exit(&self, exit: Exit) {
        if exit != Exit::Fail || self.cx.fallible() {
            self.exits.borrow_mut().insert(exit);
        }
    }

    /// Records the ends an expression ending the workflow with its value can take.
    fn ends_with(&self, value: &Expr) {
        for exit in ends(value, self.cx.fallible()) {
            self.exit(exit);
        }
    }

    /// Records the exits of a piece of user code: a `?` or a `return` in it, outside
    /// closures and async blocks.
    fn scan(&self, expr: &Expr) {
        self.record(|find| find.visit_expr(expr));
    }

    fn record(&self, visit: impl FnOnce(&mut FindExits)) {
        let mut find = FindExits {
            fallible: self.cx.fallible(),
            exits: BTreeSet::new(),
        };
        visit(&mut find);
        for exit in find.exits {
            self.exit(exit);
        }
    }

    /// The code that starts yield point `y` and returns the step it asks for.
    fn enter(&self, k: usize) -> TokenStream {
        let y = &self.cx.body.yields[k];
        let r = &self.cx.resumes[k];
        let node = k;
        self.exit(Exit::Yield(k));
        let after = &r.after;
        let after_fields = self.inits(At::After(k));
        let cont = quote! {
            return __WfOk(__WfStep::Continue(
                __WfState::#after { #(#after_fields),* },
            ));
        };
        match &y.op {
            Op::Task { .. } if r.waiting.is_some() => {
                let waiting = r.waiting.as_ref().expect("just checked");
                let fields = self.inits(At::Waiting(k));
                quote! {
                    return __WfOk(__WfStep::Task {
                        node: #node,
                        state: __WfState::#waiting { #(#fields),* },
                    });
                }
            }
            Op::Task { future, await_span } => {
                self.scan(future);
                let aw = quote_spanned!(*await_span=> .await);
                let value = self.task_value(y, node, quote!(#future #aw));
                quote! {
                    __wf_cx.task_scheduled(#node);
                    #value
                    #cont
                }
            }
            Op::Wait(duration) => {
                self.scan(duration);
                quote! {
                    return __WfOk(__WfStep::Wait {
                        node: #node,
                        duration: #duration,
                        state: __WfState::#after { #(#after_fields),* },
                    });
                }
            }
            Op::Poll(p) => self.enter_poll(p, k, r),
            Op::Child(n) => self.enter_nested(n, k, r),
            Op::Callback(c) => self.enter_callback(c, k, r),
        }
    }

    /// A task's value, from `call` (its `….await`, or the result a policy's call gave),
    /// recorded in the history and bound as the statement says.
    fn task_value(&self, y: &Yield, node: usize, call: TokenStream) -> TokenStream {
        let wf = self.cx.wf;
        let err = self.cx.err_ty();
        let ty = match &y.binding {
            Binding::Let { ty, .. } => ty.as_ref(),
            Binding::Discard | Binding::Assign { .. } => None,
        };
        if y.try_token.is_some() {
            self.exit(Exit::Fail);
        }
        // A typed binding records the task's output in the history, if its type has
        // serde (where the value is persisted, a type without is refused on its own).
        let encoder = ty.map(|ty| {
            let p = quote!(#wf::codegen::persist);
            quote!({
                #[allow(unused_imports)]
                use #p::{Fallback as _, ViaSerde as _};
                (&#p::Probe::<#ty>::new()).encoder()
            })
        });
        let (get, bind) = match (&y.try_token, ty) {
            (Some(q), Some(ty)) => (
                quote!(let __wf_r = async { ::core::result::Result::<#ty, #err>::Ok(#call #q) }.await;),
                bind(
                    &y.binding,
                    quote!(__wf_cx.task_finished(#node, __wf_r, #encoder)?),
                ),
            ),
            (Some(q), None) => (
                quote!(let __wf_r = async { ::core::result::Result::<_, #err>::Ok(#call #q) }.await;),
                bind(
                    &y.binding,
                    quote!(__wf_cx.task_finished_opaque(#node, __wf_r)?),
                ),
            ),
            (None, Some(ty)) => (
                quote!(let __wf_r: #ty = #call;),
                bind(
                    &y.binding,
                    quote!(__wf_cx.task_value(#node, __wf_r, #encoder)),
                ),
            ),
            (None, None) => (
                quote!(let __wf_r = #call; __wf_cx.task_done(#node);),
                bind(&y.binding, quote!(__wf_r)),
            ),
        };
        quote!(#get #bind)
    }

    /// The call of a task or poll with a policy: with its timeout, and ending the step
    /// with a retry when its error is retried. Its value is `__wf_call`.
    fn policy_call(&self, y: &Yield, node: usize, call: &Expr) -> TokenStream {
        let wf = self.cx.wf;
        let method = if y.policy.as_ref().is_some_and(|p| p.timeout.is_some()) {
            quote_spanned!(call_span(call)=> call_with_timeout)
        } else {
            quote_spanned!(call_span(call)=> call)
        };
        let fut = quote_spanned!(call_span(call)=> ::core::future::IntoFuture::into_future(#call));
        // A missing `From<TaskTimeout>` is reported on the `#[timeout]`, once.
        let timed_out = y.policy.as_ref().and_then(|p| p.timeout.as_ref()).map(|t| {
            let span = call_span(t);
            let wf = respan(wf.clone(), span);
            quote_spanned!(span=> , #wf::codegen::timeout_error)
        });
        // Spanned on the call: a missing `WorkflowError` is reported there, once.
        // A call's error without `WorkflowError` is reported on the call, once.
        let named = {
            let span = call_span(call);
            let wf = respan(wf.clone(), span);
            quote_spanned!(span=> #wf::codegen::error_name)
        };
        let called = quote_spanned!(call_span(call)=>
            __wf_cx.#method(#node, #fut, #named #timed_out).await
        );
        quote! {
            let __wf_call = match #called {
                __WfOk(__wf_call) => __wf_call,
                __WfErr(__wf_stop) => {
                    return __WfOk(__WfStep::from(__wf_stop));
                }
            };
        }
    }

    fn enter_poll(&self, p: &Poll, k: usize, r: &Resume) -> TokenStream {
        let wf = self.cx.wf;
        let node = k;
        for e in [
            Some(&p.every),
            p.timeout.as_ref(),
            p.max_attempts.as_ref(),
            p.max_errors.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            self.scan(e);
        }
        let waiting = r.waiting.as_ref().expect("polls have a waiting state");
        let fields = self.inits(At::Waiting(k));
        let some_or_none = |e: &Option<Expr>| match e {
            Some(e) => quote!(::core::option::Option::Some(#e)),
            None => quote!(__WfNone),
        };
        let every = &p.every;
        let timeout = some_or_none(&p.timeout);
        let max_attempts = some_or_none(&p.max_attempts);
        let max_errors = p
            .max_errors
            .as_ref()
            .map_or_else(|| quote!(0), |e| quote!(#e));
        quote! {
            let __wf_poll = #wf::codegen::PollState::begin(__wf_cx, #wf::codegen::PollConfig {
                every: #every,
                timeout: #timeout,
                max_attempts: #max_attempts,
                max_errors: #max_errors,
            });
            return __WfOk(__WfStep::Wait {
                node: #node,
                duration: __wf_poll.every(),
                state: __WfState::#waiting { #(#fields,)* __wf_poll },
            });
        }
    }

    /// Stops at a callback with its limits, evaluated here (they may read locals): the
    /// driver makes the callback and checkpoints it before the next step sends its token.
    fn enter_callback(&self, c: &Callback, k: usize, r: &Resume) -> TokenStream {
        let node = k;
        self.scan(&c.timeout);
        if let Some(h) = &c.heartbeat {
            self.scan(h);
        }
        let waiting = r.waiting.as_ref().expect("callbacks have a waiting state");
        let fields = self.inits(At::Waiting(k));
        let timeout = &c.timeout;
        let heartbeat = match &c.heartbeat {
            Some(h) => quote!(::core::option::Option::Some(#h)),
            None => quote!(__WfNone),
        };
        // Evaluated before the state takes the locals they may read.
        quote! {
            let __wf_timeout: ::core::time::Duration = #timeout;
            let __wf_heartbeat: ::core::option::Option<::core::time::Duration> = #heartbeat;
            return __WfOk(__WfStep::Callback {
                node: #node,
                state: __WfState::#waiting { #(#fields),* },
                timeout: __wf_timeout,
                heartbeat: __wf_heartbeat,
            });
        }
    }

    fn enter_nested(&self, n: &Nested, k: usize, r: &Resume) -> TokenStream {
        let wf = self.cx.wf;
        let node = k;
        for c in n.calls() {
            c.args.iter().for_each(|a| self.scan(a));
        }
        if let Nested::Map { iter, .. } = n {
            self.scan(iter);
        }
        let waiting = r.waiting.as_ref().expect("children have a waiting state");
        let fields = self.inits(At::Waiting(k));
        let push = |c: &Call| {
            let p = child(wf, &c.workflow);
            // Spanned on the call: arguments that do not make the child's input (a wrong
            // count builds the wrong tuple) are reported there.
            let input = match c.args.as_slice() {
                [] => quote_spanned!(c.span=> ()),
                [one] => quote!(#one),
                many => quote_spanned!(c.span=> (#(#many),*)),
            };
            quote_spanned!(c.span=> __wf_batch.push(#p, #input);)
        };
        let (max, pushes) = match n {
            Nested::One(c) => (quote!(__WfNone), push(c)),
            Nested::Parallel(cs) => {
                let pushes = cs.iter().map(push);
                (quote!(__WfNone), quote!(#(#pushes)*))
            }
            Nested::Map {
                pat,
                iter,
                call,
                max_concurrency,
            } => {
                let max = match max_concurrency {
                    Some(m) => {
                        let m = *m as usize;
                        quote!(::core::option::Option::Some(#m))
                    }
                    None => quote!(__WfNone),
                };
                let push = push(call);
                (max, quote!(for #pat in #iter { #push }))
            }
        };
        quote! {
            let mut __wf_batch = #wf::codegen::ChildBatch::new(#node, #max);
            #pushes
            return __WfOk(__WfStep::Children {
                state: __WfState::#waiting { #(#fields),* },
                batch: __wf_batch,
            });
        }
    }

    /// One poll attempt, or the children's results.
    /// The body of the arm that resumes a waiting state.
    fn waiting_body(&self, k: usize) -> TokenStream {
        let y = &self.cx.body.yields[k];
        let r = &self.cx.resumes[k];
        let Some(waiting) = &r.waiting else {
            return quote!();
        };
        let node = k;
        let after = &r.after;
        let after_fields = self.inits(At::After(k));
        let q = &y.try_token;
        if q.is_some() {
            self.exit(Exit::Fail);
        }
        // The value, spanned on the user's yield expression: a type error about it is
        // reported there (with rustc's suggestion, such as adding the `?`).
        let value = Ident::new("__wf_r", y.span);
        let bind = bind(&y.binding, quote!(#value #q));
        let cont = quote! {
            return __WfOk(__WfStep::Continue(
                __WfState::#after { #(#after_fields),* },
            ));
        };
        let done = quote!(#bind #cont);
        let fields = self.inits(At::Waiting(k));
        let body = self.waiting_code(y, node, waiting, &fields, done, cont);
        let rebinds: Vec<TokenStream> = y
            .fors
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let ask = Ask::Waiting { k, f: i };
                self.rebind_for(ask, &f.pat, &f.state, f.item.as_ref(), &body)
            })
            .collect();
        quote!(#(#rebinds)* #body)
    }

    fn waiting_code(
        &self,
        y: &Yield,
        node: usize,
        waiting: &Ident,
        fields: &[TokenStream],
        done: TokenStream,
        cont_after: TokenStream,
    ) -> TokenStream {
        let wf = self.cx.wf;
        match &y.op {
            Op::Poll(p) => {
                let call = &p.call;
                let ready = &p.ready;
                self.scan(call);
                self.scan(ready);
                let (before, answer) = if y.policy.is_some() {
                    (self.policy_call(y, node, call), quote!(__wf_call))
                } else {
                    (quote!(), quote_spanned!(call_span(call)=> #call.await))
                };
                let attempt = quote_spanned! {call_span(call)=>
                    __wf_poll.attempt(__wf_cx, #node, #answer, #ready)
                };
                quote! {
                        #before
                        match #attempt {
                            #wf::codegen::PollNext::Wait(__wf_every) => {
                                return __WfOk(__WfStep::Wait {
                                    node: #node,
                                    duration: __wf_every,
                                    state: __WfState::#waiting { #(#fields,)* __wf_poll },
                                });
                            }
                            #wf::codegen::PollNext::Done(__wf_r) => { #done }
                        }
                }
            }
            Op::Child(n) => {
                let decode = self.decode(n);
                let retry = y.policy.as_ref().filter(|p| p.retry.is_some()).map(|_| {
                    quote! {
                        let __wf_r = match __wf_cx.nested(#node, __wf_r) {
                            __WfOk(__wf_r) => __wf_r,
                            __WfErr(__wf_stop) => {
                                return __WfOk(__WfStep::from(__wf_stop));
                            }
                        };
                    }
                });
                quote! {
                        let mut __wf_o = match __wf_cx.take_children(#node) {
                            __WfOk(__wf_o) => __wf_o,
                            __WfErr(__wf_fault) => {
                                return __WfOk(__WfStep::Fault(__wf_fault));
                            }
                        };
                        let __wf_r = #decode;
                        #retry
                        #done
                }
            }
            Op::Task { future, .. } => {
                self.scan(future);
                let call = self.policy_call(y, node, future);
                let value = self.task_value(y, node, quote!(__wf_call));
                quote! {
                    __wf_cx.task_scheduled(#node);
                    #call
                    #value
                    #cont_after
                }
            }
            Op::Callback(c) => {
                let send = &c.send;
                self.scan(&Expr::Closure(send.clone()));
                let span = send.span();
                // Spanned on the closure: one that does not return a future, or whose
                // future's output says nothing of the send, is reported there.
                let sent = {
                    let wf = respan(wf.clone(), span);
                    quote_spanned!(span=> #wf::codegen::Sent::into_sent(#wf::codegen::send(#send, __wf_token).await))
                };
                // A discarded value is taken whatever it is; a bound one is decoded as
                // the binding's type.
                let turbofish = match &y.binding {
                    Binding::Discard => Some(quote!(::<#wf::serde::de::IgnoredAny>)),
                    Binding::Let { .. } | Binding::Assign { .. } => None,
                };
                quote! {
                    match __wf_cx.take_callback(#node) {
                        __WfErr(__wf_fault) => {
                            return __WfOk(__WfStep::Fault(__wf_fault));
                        }
                        __WfOk(#wf::codegen::CallbackStep::Send(__wf_token)) => {
                            let __wf_sent = #sent;
                            return __WfOk(__WfStep::CallbackSent {
                                node: #node,
                                state: __WfState::#waiting { #(#fields),* },
                                sent: __wf_sent,
                            });
                        }
                        __WfOk(#wf::codegen::CallbackStep::Resolved(__wf_resolved)) => {
                            let __wf_r = match __wf_resolved.value #turbofish () {
                                __WfOk(__wf_r) => __wf_r,
                                __WfErr(__wf_fault) => {
                                    return __WfOk(__WfStep::Fault(__wf_fault));
                                }
                            };
                            #done
                        }
                    }
                }
            }
            Op::Wait(_) => unreachable!("sleeps do not wait in a state of their own"),
        }
    }

    fn decode(&self, n: &Nested) -> TokenStream {
        let wf = self.cx.wf;
        match n {
            Nested::One(c) => {
                let p = child(wf, &c.workflow);
                quote!(__wf_o.decode(#p, 0))
            }
            Nested::Map { call, .. } => {
                let p = child(wf, &call.workflow);
                quote!(__wf_o.decode_all(#p))
            }
            Nested::Parallel(cs) => {
                // The child that failed first is the error; its siblings were cancelled
                // because of it, so they must not be reported instead.
                let paths: Vec<TokenStream> = cs.iter().map(|c| child(wf, &c.workflow)).collect();
                let idx: Vec<usize> = (0..cs.len()).collect();
                // The batch's error type is the first child's that can fail (see
                // `codegen::ErrorOf`): the children's error types, joined left to right.
                let joins = paths.iter().skip(1).map(
                    |p| quote!(let __wf_j = (&(__wf_j, #wf::codegen::error_of(#p))).__wf_join();),
                );
                let first = &paths[0];
                // Every child's error converts into it, spanned on the child's path: a
                // child whose error does not convert is reported there.
                let errs: Vec<TokenStream> = cs
                    .iter()
                    .zip(&paths)
                    .map(|(c, p)| {
                        let span = c.workflow.span();
                        let wf = respan(wf.clone(), span);
                        quote_spanned!(span=> __wf_j.batch_error(
                            (&#wf::codegen::error_of(#p)).__wf_conversion().convert(__wf_e)
                        ))
                    })
                    .collect();
                let vals: Vec<Ident> = idx.iter().map(|i| format_ident!("__wf_v{}", i)).collect();
                quote! {{
                    // One trait of each pair is always unused: that is how the calls pick.
                    #[allow(unused_imports)]
                    use #wf::codegen::{
                        ConvertFrom as _, ConvertInfallible as _, JoinFirst as _,
                        JoinInfallible as _,
                    };
                    let __wf_j = #wf::codegen::error_of(#first);
                    #(#joins)*
                    let __wf_r = '__wf_decode: {
                        match __wf_o.failure() {
                            #(
                                __WfSome(#idx) => {
                                    if let __WfErr(__wf_e) = __wf_o.decode(#paths, #idx) {
                                        break '__wf_decode <::core::result::Result<_, _>>::Err(#errs);
                                    }
                                }
                            )*
                            _ => {}
                        }
                        #(
                            let #vals = match __wf_o.decode(#paths, #idx) {
                                __WfOk(__wf_v) => __wf_v,
                                __WfErr(__wf_e) => break '__wf_decode <::core::result::Result<_, _>>::Err(#errs),
                            };
                        )*
                        __WfOk((#(#vals,)*))
                    };
                    __wf_r
                }}
            }
        }
    }
}

/// The statement that puts a yield point's value where the user asked.
fn bind(b: &Binding, value: TokenStream) -> TokenStream {
    match b {
        Binding::Discard => quote!(let _ = #value;),
        Binding::Let { pat, ty: Some(ty) } => quote!(let #pat: #ty = #value;),
        Binding::Let { pat, ty: None } => quote!(let #pat = #value;),
        Binding::Assign { place, op } => match op {
            Some(op) => quote!(#place #op #value;),
            None => quote!(#place = #value;),
        },
    }
}

/// A loop resumed in the middle of an iteration: its `break`s leave `exit`, its
/// `continue`s end the current iteration (`next`) and fall into the re-entered loop.
#[derive(Clone)]
pub(crate) struct Redirect {
    /// The loop's id.
    id: usize,
    label: Lifetime,
    next: Lifetime,
    exit: Lifetime,
}

/// Rewrites user code for the step function: `return x` becomes the step's completion,
/// and `break`/`continue` of loops being resumed are redirected. Closures, async blocks
/// and nested items (whose `return`s are their own) are left alone.
struct UserCode<'a, 'b> {
    cx: &'a Cx<'b>,
    redirects: &'a [Redirect],
}

impl VisitMut for UserCode<'_, '_> {
    fn visit_expr_mut(&mut self, e: &mut Expr) {
        match e {
            Expr::Closure(_) | Expr::Async(_) => {}
            Expr::Return(r) => {
                if let Some(inner) = &mut r.expr {
                    self.visit_expr_mut(inner);
                }
                let ident = &self.cx.f.ident;
                let value = r.expr.take().map_or_else(|| quote!(()), |v| quote!(#v));
                let done = match self.cx.f.ret {
                    Ret::Fallible { .. } => quote!(__WfStep::<#ident>::returned(#value)),
                    Ret::Plain(_) => {
                        quote!(__WfOk(__WfStep::Succeed(#value)))
                    }
                };
                r.expr = Some(Box::new(syn::parse_quote!(#done)));
            }
            Expr::Break(b) => {
                visit_mut::visit_expr_break_mut(self, b);
                if let Some(r) = self.redirect(b.label.as_ref()) {
                    b.label = Some(r.exit.clone());
                }
            }
            Expr::Continue(c) => {
                if let Some(r) = self.redirect(c.label.as_ref()) {
                    let next = r.next.clone();
                    *e = syn::parse_quote!(break #next);
                }
            }
            _ => visit_mut::visit_expr_mut(self, e),
        }
    }
    fn visit_item_mut(&mut self, _: &mut syn::Item) {}
}

impl UserCode<'_, '_> {
    fn redirect(&self, label: Option<&Lifetime>) -> Option<&Redirect> {
        // Loops that yield have labelled every `break`/`continue` aimed at them.
        let label = label?;
        self.redirects.iter().rev().find(|r| &r.label == label)
    }
}

/// Whether a statement always jumps away (`break`, `continue`, `return`): the code after
/// it in its block never runs.
fn jumps(stmt: &Stmt) -> bool {
    match stmt {
        Stmt::Expr(e, _) => expr_jumps(e),
        _ => false,
    }
}

/// `break`, `continue`, `return`, or a block that ends with one (a `break value` of a
/// value-producing construct is `{ holder = Some(value); break 'label }`).
fn expr_jumps(e: &Expr) -> bool {
    match e {
        Expr::Break(_) | Expr::Continue(_) | Expr::Return(_) => true,
        Expr::Block(b) if b.label.is_none() => b.block.stmts.last().is_some_and(jumps),
        Expr::Paren(p) => expr_jumps(&p.expr),
        Expr::Group(g) => expr_jumps(&g.expr),
        _ => false,
    }
}

/// Whether `code` has a `break` to one of `labels`.
fn breaks_to(code: &TokenStream, labels: &[&Lifetime]) -> bool {
    let tokens: Vec<TokenTree> = code.clone().into_iter().collect();
    tokens.iter().enumerate().any(|(i, tt)| match tt {
        TokenTree::Ident(b) if b == "break" => match (tokens.get(i + 1), tokens.get(i + 2)) {
            (Some(TokenTree::Punct(q)), Some(TokenTree::Ident(name))) if q.as_char() == '\'' => {
                labels.iter().any(|l| l.ident == *name)
            }
            _ => false,
        },
        TokenTree::Group(g) => breaks_to(&g.stream(), labels),
        _ => false,
    })
}

/// The ends an expression can take when it is the workflow's value: a `Result`
/// workflow's `Ok(…)` succeeds and `Err(…)` fails; any other value may do either.
fn ends(value: &Expr, fallible: bool) -> Vec<Exit> {
    if !fallible {
        return vec![Exit::Succeed];
    }
    let callee = match value {
        Expr::Call(c) => match &*c.func {
            Expr::Path(p) => p.path.segments.last().map(|s| s.ident.to_string()),
            _ => None,
        },
        _ => None,
    };
    match callee.as_deref() {
        Some("Ok") => vec![Exit::Succeed],
        Some("Err") => vec![Exit::Fail],
        _ => vec![Exit::Succeed, Exit::Fail],
    }
}

/// The exits in a macro's tokens, which are not parsed: any `?` may fail, any `return`
/// may end the workflow either way.
fn macro_exits(tokens: TokenStream) -> Vec<Exit> {
    let mut out = Vec::new();
    for tt in tokens {
        match tt {
            TokenTree::Punct(p) if p.as_char() == '?' => out.push(Exit::Fail),
            TokenTree::Ident(i) if i == "return" => out.extend([Exit::Succeed, Exit::Fail]),
            TokenTree::Group(g) => out.extend(macro_exits(g.stream())),
            _ => {}
        }
    }
    out
}

/// The exits of user code: its `?`s and `return`s outside closures, async blocks and
/// items (whose own they are), and any in macros' tokens.
struct FindExits {
    fallible: bool,
    exits: BTreeSet<Exit>,
}

impl<'ast> Visit<'ast> for FindExits {
    fn visit_expr(&mut self, e: &'ast Expr) {
        match e {
            Expr::Closure(_) | Expr::Async(_) => {}
            Expr::Try(t) => {
                self.exits.insert(Exit::Fail);
                syn::visit::visit_expr_try(self, t);
            }
            Expr::Return(r) => {
                match &r.expr {
                    Some(value) => self.exits.extend(ends(value, self.fallible)),
                    None => {
                        self.exits.insert(Exit::Succeed);
                    }
                }
                syn::visit::visit_expr_return(self, r);
            }
            _ => syn::visit::visit_expr(self, e),
        }
    }
    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.exits.extend(macro_exits(m.tokens.clone()));
    }
    fn visit_item(&mut self, _: &'ast syn::Item) {}
}

/// The free names of generated arm code. The code is ours and valid, so it parses.
/// The latest local in `scope` for each name in `names`, in declaration order.
fn resolve(names: &BTreeSet<String>, scope: &[Local]) -> Vec<Local> {
    let mut seen = HashSet::new();
    let mut out: Vec<Local> = scope
        .iter()
        .rev()
        .filter(|l| names.contains(&l.name()) && seen.insert(l.name()))
        .cloned()
        .collect();
    out.reverse();
    out
}

/// A reference or a lifetime inside a type.
fn borrow_in(ty: &Type) -> Option<TokenStream> {
    struct Find(Option<TokenStream>);
    impl<'ast> syn::visit::Visit<'ast> for Find {
        fn visit_type_reference(&mut self, r: &'ast syn::TypeReference) {
            self.0
                .get_or_insert_with(|| r.and_token.into_token_stream());
        }
        fn visit_lifetime(&mut self, l: &'ast Lifetime) {
            self.0.get_or_insert_with(|| l.into_token_stream());
        }
    }
    let mut find = Find(None);
    syn::visit::Visit::visit_type(&mut find, ty);
    find.0
}

/// `_` or `impl Trait` inside a type.
fn inferred_in(ty: &Type) -> Option<TokenStream> {
    struct Find(Option<TokenStream>);
    impl<'ast> syn::visit::Visit<'ast> for Find {
        fn visit_type(&mut self, t: &'ast Type) {
            match t {
                Type::Infer(_) | Type::ImplTrait(_) => {
                    self.0.get_or_insert_with(|| t.into_token_stream());
                }
                _ => syn::visit::visit_type(self, t),
            }
        }
    }
    let mut find = Find(None);
    syn::visit::Visit::visit_type(&mut find, ty);
    find.0
}

fn call_span(e: &Expr) -> Span {
    syn::spanned::Spanned::span(e)
}
