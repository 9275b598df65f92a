//! The walk that writes the code of every arm of the step function and, as it writes
//! it, records where that code can exit to.
//!
//! The arm of the state after a yield point runs "the rest of the function" from there:
//! the rest of the innermost block, then of each enclosing block, re-entering each
//! enclosing loop (its current iteration in a labelled block whose `continue`s fall into
//! the loop again). Which locals a state holds is what its arm reads (liveness): each
//! piece of code is written with what it does with names (`uses::Names`), so the arms'
//! free names are known without reading the code back.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashSet};

use proc_macro2::{Group, Punct, Spacing, Span, TokenStream, TokenTree};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::visit_mut::{self, VisitMut};
use syn::{Expr, Ident, Lifetime, Stmt, Type};

use super::{Arm, At, Exit, Resume};
use crate::analyze::uses::{self, Names};
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
///
/// Each arm is written once, with a marker where the fields of each state it constructs
/// go (`__WfState::AfterX { __wf_live_after_3, }`); the liveness pass computes the
/// fields from the names written with the code, and the markers are then filled in.
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
    let mut written = vec![Written::new(&cx, None, At::Start, |e| e.root())];
    for (k, r) in resumes.iter().enumerate() {
        if r.waiting.is_some() {
            written.push(Written::new(&cx, None, At::Waiting(k), |e| {
                e.waiting_body(k)
            }));
        }
        written.push(Written::new(&cx, None, At::After(k), |e| e.rest(k)));
    }
    let fields = liveness(&cx, &written)?;
    // The code was written as if no state held anything. Where that changed how it was
    // written (a loop's pattern bound again or not), write it again with the fields.
    let holds = written
        .iter()
        .flat_map(|w| &w.decisions)
        .all(|d| d.holds(&fields));
    let state = |at: At| match at {
        At::Start => Ident::new("Start", Span::call_site()),
        At::Waiting(k) => resumes[k].waiting.clone().expect("a waiting state"),
        At::After(k) => resumes[k].after.clone(),
    };
    Ok(written
        .into_iter()
        .map(|w| {
            let (code, exits) = if holds {
                let code = fill(w.code.tokens.clone(), &fields).unwrap_or(w.code.tokens);
                #[cfg(test)]
                assert_eq!(
                    code.to_string(),
                    Written::new(&cx, Some(&fields), w.at, |e| e.arm(w.at))
                        .code
                        .tokens
                        .to_string(),
                    "the markers filled in are the code written with the fields"
                );
                (code, w.exits)
            } else {
                let again = Written::new(&cx, Some(&fields), w.at, |e| e.arm(w.at));
                (again.code.tokens, again.exits)
            };
            Arm {
                at: w.at,
                state: state(w.at),
                fields: match w.at {
                    At::Start => Vec::new(),
                    At::Waiting(k) => fields.waiting(k).to_vec(),
                    At::After(k) => fields.after(k).to_vec(),
                },
                code,
                exits,
            }
        })
        .collect())
}

/// An arm as written, with what its writing recorded.
struct Written {
    at: At,
    code: Code,
    exits: BTreeSet<Exit>,
    decisions: Vec<Decision>,
}

impl Written {
    fn new(cx: &Cx, fields: Option<&Fields>, at: At, write: impl FnOnce(&Emit) -> Code) -> Written {
        let e = Emit {
            cx,
            fields,
            exits: RefCell::default(),
            decisions: RefCell::default(),
        };
        let code = write(&e);
        Written {
            at,
            code,
            exits: e.exits.into_inner(),
            decisions: e.decisions.into_inner(),
        }
    }
}

/// `tokens` with each marker, and the comma after it, replaced by the fields of its
/// state, each followed by a comma; `None` if there is no marker in them. Only the
/// groups around a marker are rebuilt, all of them the macro's own (no marker is ever in
/// a user's group), whose spans are one span: the rest is kept as it was written.
fn fill(tokens: TokenStream, fields: &Fields) -> Option<TokenStream> {
    let mut out = Vec::new();
    let mut changed = false;
    let mut trees = tokens.into_iter();
    while let Some(tree) = trees.next() {
        match tree {
            TokenTree::Group(g) => match fill(g.stream(), fields) {
                Some(stream) => {
                    let mut filled = Group::new(g.delimiter(), stream);
                    filled.set_span(g.span());
                    out.push(TokenTree::Group(filled));
                    changed = true;
                }
                None => out.push(TokenTree::Group(g)),
            },
            TokenTree::Ident(ident) if ident.to_string().starts_with(MARKER) => {
                let locals = match at_of(&ident) {
                    At::Waiting(k) => fields.waiting(k),
                    At::After(k) => fields.after(k),
                    At::Start => unreachable!("no arm constructs the start state"),
                };
                let comma = trees.next();
                assert!(
                    matches!(&comma, Some(TokenTree::Punct(p)) if p.as_char() == ','),
                    "a marker is followed by a comma"
                );
                for l in locals {
                    out.push(TokenTree::Ident(l.ident.clone()));
                    out.push(TokenTree::Punct(Punct::new(',', Spacing::Alone)));
                }
                changed = true;
            }
            other => out.push(other),
        }
    }
    changed.then(|| out.into_iter().collect())
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
/// need. From each arm as `written` (with markers), its names are resolved once: its
/// free names, and for each marker the names bound around it. The sets then grow from
/// empty to the fixpoint (the smallest sets) without writing the code again.
fn liveness(cx: &Cx, written: &[Written]) -> syn::Result<Fields> {
    let n = cx.body.yields.len();
    let mut reads_waiting: Vec<Option<Reads>> = (0..n).map(|_| None).collect();
    let mut reads_after: Vec<Option<Reads>> = (0..n).map(|_| None).collect();
    for w in written {
        match w.at {
            At::Start => {}
            At::Waiting(k) => reads_waiting[k] = Some(reads(&w.code)),
            At::After(k) => reads_after[k] = Some(reads(&w.code)),
        }
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
            let after = reads_after[k]
                .as_ref()
                .expect("every yield point has an after arm");
            next.after[k] = resolve(&after.names(&fields), &y.scope_after);
        }
        if next == fields {
            break;
        }
        fields = next;
    }
    let decisions = written.iter().flat_map(|w| &w.decisions);
    if !decisions.clone().all(|d| d.holds(&fields)) {
        fields = liveness_by_rounds(cx);
    }
    #[cfg(test)]
    assert!(
        fields == liveness_by_rounds(cx),
        "the fields from one writing of the arms are those of writing them until nothing changes"
    );
    check_persisted(&fields)?;
    Ok(fields)
}

/// The fields by writing the arms with the fields so far until they do not change.
fn liveness_by_rounds(cx: &Cx) -> Fields {
    let n = cx.body.yields.len();
    let mut fields = Fields {
        waiting: vec![Vec::new(); n],
        after: vec![Vec::new(); n],
    };
    // Each round can only add locals, and there are finitely many.
    for _ in 0..=(2 * n + 1) {
        let emit = Emit {
            cx,
            fields: Some(&fields),
            exits: RefCell::default(),
            decisions: RefCell::default(),
        };
        let mut next = fields.clone();
        for (k, y) in cx.body.yields.iter().enumerate() {
            if cx.resumes[k].waiting.is_some() {
                next.waiting[k] = resolve(&reads(&emit.waiting_body(k)).free, &y.scope_before);
            }
            next.after[k] = resolve(&reads(&emit.rest(k)).free, &y.scope_after);
        }
        if next == fields {
            break;
        }
        fields = next;
    }
    fields
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

/// The state a marker stands for.
fn at_of(marker: &Ident) -> At {
    let name = marker.to_string();
    match name[MARKER.len()..].split_once('_') {
        Some(("waiting", k)) => At::Waiting(k.parse().expect("a marker's index")),
        Some(("after", k)) => At::After(k.parse().expect("a marker's index")),
        _ => unreachable!("markers are written by `marker`"),
    }
}

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

/// What `code` reads. The macro's own tests also read it back, parsed, and compare: the
/// names written along with the code must be what the code does.
fn reads(code: &Code) -> Reads {
    let (free, markers) = code.names.free(MARKER);
    #[cfg(test)]
    {
        let block: syn::Block = syn::parse2(quote!({ #code })).expect("written code parses");
        let (parsed_free, parsed_markers) = uses::free_names(&block, MARKER);
        // Names of the generated items (`__WfOk`, `__WfState`, …) are never locals.
        let ours = |n: &String| !n.starts_with("__Wf");
        let keep = |names: &BTreeSet<String>| -> BTreeSet<String> {
            names.iter().filter(|n| ours(n)).cloned().collect()
        };
        let marks = |m: &[(String, BTreeSet<String>)]| -> Vec<(String, BTreeSet<String>)> {
            m.iter().map(|(n, b)| (n.clone(), keep(b))).collect()
        };
        assert_eq!(
            (keep(&free), marks(&markers)),
            (keep(&parsed_free), marks(&parsed_markers)),
            "the names written with the code are what it reads:\n{}",
            code.tokens
        );
    }
    let states = markers
        .into_iter()
        .map(|(name, bound)| (at_of(&Ident::new(&name, Span::call_site())), bound))
        .collect();
    Reads { free, states }
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
}

/// Code written for an arm, and what it does with names: the liveness pass reads the
/// names, never the code. Every piece of glue says its names where it is written, with
/// the tokens; the macro's tests check them against the code parsed back (`reads`).
#[derive(Clone, Default)]
struct Code {
    tokens: TokenStream,
    names: Names,
}

impl Code {
    fn new(tokens: TokenStream, names: Names) -> Code {
        Code { tokens, names }
    }
}

impl ToTokens for Code {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        self.tokens.to_tokens(tokens);
    }
}

/// The field initializers of a state constructed, and the names they read.
struct Inits {
    tokens: Vec<TokenStream>,
    names: Names,
}

/// Whether some code reads all of the names asked about, or none of them.
#[derive(Clone, Copy)]
struct Uses {
    all: bool,
    none: bool,
}

impl Emit<'_, '_> {
    /// Whether `code` reads all or none of `names`: that decides how the code around it
    /// is written. Without fields, the decision is recorded, to be checked once they are
    /// known.
    fn reads_names(&self, code: &Code, names: &BTreeSet<String>) -> Uses {
        let code = reads(code);
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
        uses
    }

    /// The field initializers of the state `at` (shorthand: the locals of the same name).
    fn inits(&self, at: At) -> Inits {
        let Some(fields) = self.fields else {
            let marker = marker(at);
            return Inits {
                names: Names::read(&marker),
                tokens: vec![marker.to_token_stream()],
            };
        };
        let locals = match at {
            At::Waiting(k) => fields.waiting(k),
            At::After(k) => fields.after(k),
            At::Start => unreachable!("no arm constructs the start state"),
        };
        Inits {
            tokens: locals.iter().map(|l| l.ident.to_token_stream()).collect(),
            names: locals.iter().map(|l| Names::read(&l.ident)).collect(),
        }
    }

    /// The code of the arm of state `at`.
    fn arm(&self, at: At) -> Code {
        match at {
            At::Start => self.root(),
            At::Waiting(k) => self.waiting_body(k),
            At::After(k) => self.rest(k),
        }
    }

    /// The whole body, from the start.
    fn root(&self) -> Code {
        let (nodes, stops) = self.nodes(&self.cx.body.root.nodes, &[]);
        let end = if stops {
            Code::default()
        } else {
            self.complete(&[])
        };
        Code::new(quote!(#nodes #end), nodes.names.then(end.names))
    }

    /// Everything after yield point `k`, to the end of the body.
    fn rest(&self, k: usize) -> Code {
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
    ) -> Option<(Code, bool)> {
        for (i, node) in block.nodes.iter().enumerate() {
            let head = match node {
                Node::Yield(j) if *j == k => Some((Code::default(), false)),
                Node::If(x) => self.rest_in_if(x, k, rw),
                Node::Match(m) => m
                    .arms
                    .iter()
                    .find_map(|arm| self.rest_in(&arm.body, k, rw, false).map(braced)),
                Node::Loop(l) => self.rest_in_loop(l, k, rw),
                Node::Block(label, b) => self.rest_in(b, k, rw, false).map(|(r, stops)| {
                    let code = quote!(#label { #r };);
                    let left = label.as_ref().is_some_and(|l| breaks_to(&code, &[&l.name]));
                    (Code::new(code, r.names.block()), stops && !left)
                }),
                Node::Yield(_) | Node::Plain(_) => None,
            };
            if let Some((head, stops)) = head {
                if stops {
                    return Some((head, true));
                }
                let (after, stops) = self.nodes(&block.nodes[i + 1..], rw);
                let end = if stops {
                    Code::default()
                } else if root {
                    self.complete(rw)
                } else {
                    block
                        .tail
                        .as_ref()
                        .map(|t| self.user_expr(t, rw))
                        .unwrap_or_default()
                };
                let tokens = quote!(#head #after #end);
                let names = head.names.then(after.names).then(end.names);
                return Some((Code::new(tokens, names), stops));
            }
        }
        None
    }

    fn rest_in_if(&self, x: &If, k: usize, rw: &[Redirect]) -> Option<(Code, bool)> {
        if let Some(r) = self.rest_in(&x.then, k, rw, false) {
            return Some(braced(r));
        }
        match &x.els {
            Some(Else::Block(b)) => self.rest_in(b, k, rw, false).map(braced),
            Some(Else::If(inner)) => self.rest_in_if(inner, k, rw),
            None => None,
        }
    }

    /// The rest of the current iteration, then the loop again.
    fn rest_in_loop(&self, l: &Loop, k: usize, rw: &[Redirect]) -> Option<(Code, bool)> {
        let redirect = Redirect {
            label: l.label.clone(),
            next: Lifetime::new(&format!("'__wf_next{}", l.id), Span::call_site()),
            exit: Lifetime::new(&format!("'__wf_exit{}", l.id), Span::call_site()),
        };
        let mut inner_rw = rw.to_vec();
        inner_rw.push(redirect.clone());
        let (mut inner, inner_stops) = self.rest_in(&l.body, k, &inner_rw, false)?;
        let (next, exit) = (&redirect.next, &redirect.exit);
        // The loop runs again if the rest of this iteration ends or `continue`s.
        let again = !inner_stops || breaks_to(&inner.tokens, &[next]);
        if let LoopKind::For {
            pat, state, item, ..
        } = &l.kind
        {
            let rebind = self.rebind_for(pat, state, item.as_ref(), &inner);
            inner = Code::new(quote!(#rebind #inner), rebind.names.then(inner.names));
        }
        if !again {
            let code = quote!(#exit: { #next: { #inner } };);
            let stops = !breaks_to(&code, &[exit]);
            return Some((Code::new(code, inner.names.block().block()), stops));
        }
        let (again, _) = self.loop_again(l, rw);
        let code = quote!(#exit: { #next: { #inner } #again };);
        // A `while` or `for` ends by itself; a `loop` only by a `break`.
        let stops = matches!(l.kind, LoopKind::Loop) && !breaks_to(&code, &[exit, &l.label]);
        let names = inner.names.block().then(again.names).block();
        Some((Code::new(code, names), stops))
    }

    /// Binds a `for` loop's pattern again from its current item, if `code` reads it.
    fn rebind_for(&self, pat: &syn::Pat, state: &Ident, item: Option<&Type>, code: &Code) -> Code {
        let names: BTreeSet<String> = uses::pat_names(pat).iter().map(|i| i.to_string()).collect();
        if self.reads_names(code, &names).none {
            return Code::default();
        }
        let turbofish = item.map(|t| quote!(::<#t>));
        let tokens = quote! {
            let #pat = match #state.current #turbofish() {
                __WfOk(__wf_item) => __wf_item,
                __WfErr(__wf_fault) => {
                    return __WfOk(__WfStep::Fault(__wf_fault));
                }
            };
        };
        // The match's arms read only what they bind.
        Code::new(tokens, Names::read(state).then(Names::bind_pat(pat)))
    }

    /// The code of `nodes`, up to the first yield point at this level: entering it
    /// returns from the step, and what follows runs from its own state (where the locals
    /// it binds exist). The flag says whether the code stops before the end of `nodes`
    /// (at such a yield point, or in a construct that never falls through).
    fn nodes(&self, nodes: &[Node], rw: &[Redirect]) -> (Code, bool) {
        let mut code = Code::default();
        for node in nodes {
            let (node, stops) = self.node(node, rw);
            code.tokens.extend(node.tokens);
            code.names = code.names.then(node.names);
            if stops {
                return (code, true);
            }
        }
        (code, false)
    }

    /// A block's code, without its braces.
    fn block(&self, block: &Block, rw: &[Redirect]) -> (Code, bool) {
        let (nodes, stops) = self.nodes(&block.nodes, rw);
        let tail = block
            .tail
            .as_ref()
            .filter(|_| !stops)
            .map(|t| self.user_expr(t, rw))
            .unwrap_or_default();
        let tokens = quote!(#nodes #tail);
        (Code::new(tokens, nodes.names.then(tail.names)), stops)
    }

    fn node(&self, node: &Node, rw: &[Redirect]) -> (Code, bool) {
        match node {
            Node::Plain(stmt) => (self.user_stmt(stmt, rw), jumps(stmt)),
            Node::Yield(k) => (self.enter(*k), true),
            Node::If(x) => {
                let (code, stops) = self.if_code(x, rw);
                (Code::new(quote!(#code;), code.names), stops)
            }
            Node::Match(m) => {
                let expr = self.user_expr(&m.expr, rw);
                let mut stops = true;
                let mut names = expr.names.clone();
                let arms: Vec<TokenStream> = m
                    .arms
                    .iter()
                    .map(|arm| {
                        let pat = &arm.pat;
                        let guard = arm.guard.as_ref().map(|g| self.user_expr(g, rw));
                        let (body, arm_stops) = self.block(&arm.body, rw);
                        stops &= arm_stops;
                        let inner = guard.as_ref().map(|g| g.names.clone()).unwrap_or_default();
                        let inner = inner.then(body.names.clone().block());
                        names = std::mem::take(&mut names).then(inner.scoped(uses::pat_names(pat)));
                        let guard = guard.map(|g| quote!(if #g));
                        quote!(#pat #guard => { #body })
                    })
                    .collect();
                (Code::new(quote!(match #expr { #(#arms)* };), names), stops)
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
                        let tokens = quote! {
                            let mut #state = match #wf::codegen::ForIter::#ctor(#iter) {
                                __WfOk(__wf_iter) => __wf_iter,
                                __WfErr(__wf_fault) => {
                                    return __WfOk(__WfStep::Fault(__wf_fault));
                                }
                            };
                        };
                        Code::new(tokens, iter.names.then(Names::bind([state])))
                    }
                    LoopKind::Loop | LoopKind::While(_) => Code::default(),
                };
                let (again, stops) = self.loop_again(l, rw);
                let tokens = quote!(#entry #again);
                (Code::new(tokens, entry.names.then(again.names)), stops)
            }
            Node::Block(label, b) => {
                let (body, stops) = self.block(b, rw);
                let code = quote!(#label { #body };);
                let left = label.as_ref().is_some_and(|l| breaks_to(&code, &[&l.name]));
                (Code::new(code, body.names.block()), stops && !left)
            }
        }
    }

    fn if_code(&self, x: &If, rw: &[Redirect]) -> (Code, bool) {
        let cond = self.user_expr(&x.cond, rw);
        let (then, then_stops) = self.block(&x.then, rw);
        let (els, els_stops) = match &x.els {
            None => (Code::default(), false),
            Some(Else::Block(b)) => {
                let (b, stops) = self.block(b, rw);
                (Code::new(quote!(else { #b }), b.names.block()), stops)
            }
            Some(Else::If(inner)) => {
                let (inner, stops) = self.if_code(inner, rw);
                (Code::new(quote!(else #inner), inner.names), stops)
            }
        };
        let code = quote!(if #cond { #then } #els);
        let names = conditional(&x.cond, cond.names, then.names).then(els.names);
        (Code::new(code, names), then_stops && els_stops)
    }

    /// The loop itself, from the top of an iteration, and whether it never ends (a
    /// `loop` without a `break` in the code written for it).
    fn loop_again(&self, l: &Loop, rw: &[Redirect]) -> (Code, bool) {
        let label = &l.label;
        let (body, _) = self.block(&l.body, rw);
        let code = match &l.kind {
            LoopKind::Loop => Code::new(quote!(#label: loop { #body };), body.names.block()),
            LoopKind::While(c) => {
                let cond = self.user_expr(c, rw);
                let names = conditional(c, cond.names.clone(), body.names.clone());
                Code::new(quote!(#label: while #cond { #body };), names)
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
                let Uses {
                    all: read,
                    none: unread,
                } = self.reads_names(&body, &names);
                // An item nothing here reads is still taken from the loop, but not decoded
                // (`IgnoredAny` reads anything): its type may not show in this arm.
                let skip = unread && item.is_none() && *range == Range::No;
                let (bound, bound_names) = if skip {
                    (quote!(_), Names::default())
                } else {
                    (quote!(#pat), Names::bind_pat(pat))
                };
                let turbofish = match (pat, range, item) {
                    (_, _, Some(item)) => quote!(::<#item>),
                    (syn::Pat::Wild(_), Range::No, None) => quote!(::<#wf::serde::de::IgnoredAny>),
                    _ if skip => quote!(::<#wf::serde::de::IgnoredAny>),
                    _ => quote!(),
                };
                let allow = (!read && !skip).then(|| quote!(#[allow(unused_variables)]));
                let tokens = quote! {
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
                };
                let names = Names::read(state).then(bound_names).then(body.names);
                Code::new(tokens, names.block())
            }
        };
        let never_ends = matches!(l.kind, LoopKind::Loop) && !breaks_to(&code.tokens, &[label]);
        (code, never_ends)
    }

    fn user_stmt(&self, stmt: &Stmt, rw: &[Redirect]) -> Code {
        self.record(|find| find.visit_stmt(stmt));
        // What the statement reads and binds is what it did as the user wrote it: the
        // rewriting changes where a `return`, `break` or `continue` goes, not names.
        let names = Names::of_stmt(stmt);
        let mut stmt = stmt.clone();
        UserCode {
            cx: self.cx,
            redirects: rw,
        }
        .visit_stmt_mut(&mut stmt);
        Code::new(stmt.into_token_stream(), names)
    }

    fn user_expr(&self, expr: &Expr, rw: &[Redirect]) -> Code {
        self.scan(expr);
        let names = Names::of_expr(expr);
        let mut expr = expr.clone();
        UserCode {
            cx: self.cx,
            redirects: rw,
        }
        .visit_expr_mut(&mut expr);
        Code::new(expr.into_token_stream(), names)
    }

    /// The end of the body: its tail returned, or `()` for a workflow without one.
    fn complete(&self, rw: &[Redirect]) -> Code {
        let ident = &self.cx.f.ident;
        let tail = self.cx.body.root.tail.as_ref();
        match tail {
            Some(t) => self.ends_with(t),
            None if !self.cx.fallible() => self.exit(Exit::Succeed),
            None => {}
        }
        let Some(tail) = tail.map(|t| self.user_expr(t, rw)) else {
            return match &self.cx.f.ret {
                // Without a tail, a `Result` workflow must have returned already: adding
                // nothing lets rustc report a missing return exactly as for a plain fn.
                Ret::Fallible { .. } => Code::default(),
                Ret::Plain(_) => Code::new(
                    quote!(return __WfOk(__WfStep::Succeed(()));),
                    Names::default(),
                ),
            };
        };
        let tokens = match &self.cx.f.ret {
            Ret::Fallible { .. } => quote!(return __WfStep::<#ident>::returned(#tail);),
            Ret::Plain(_) => quote!(return __WfOk(__WfStep::Succeed(#tail));),
        };
        Code::new(tokens, tail.names)
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

    /// `return __WfOk(__WfStep::Continue(__WfState::After… { … }))` for yield point `k`.
    fn continue_after(&self, k: usize) -> Code {
        let after = &self.cx.resumes[k].after;
        let fields = self.inits(At::After(k));
        let inits = &fields.tokens;
        let tokens = quote! {
            return __WfOk(__WfStep::Continue(
                __WfState::#after { #(#inits,)* },
            ));
        };
        Code::new(tokens, fields.names)
    }

    /// The code that starts yield point `y` and returns the step it asks for.
    fn enter(&self, k: usize) -> Code {
        let y = &self.cx.body.yields[k];
        let r = &self.cx.resumes[k];
        let node = k;
        self.exit(Exit::Yield(k));
        match &y.op {
            Op::Task { .. } if r.waiting.is_some() => {
                let waiting = r.waiting.as_ref().expect("just checked");
                let fields = self.inits(At::Waiting(k));
                let inits = &fields.tokens;
                let tokens = quote! {
                    return __WfOk(__WfStep::Task {
                        node: #node,
                        state: __WfState::#waiting { #(#inits,)* },
                    });
                };
                Code::new(tokens, fields.names)
            }
            Op::Task { future, await_span } => {
                self.scan(future);
                let aw = quote_spanned!(*await_span=> .await);
                let call = Code::new(quote!(#future #aw), Names::of_expr(future));
                let value = self.task_value(y, node, call);
                let cont = self.continue_after(k);
                let tokens = quote! {
                    __wf_cx.task_scheduled(#node);
                    #value
                    #cont
                };
                let names = Names::read("__wf_cx").then(value.names).then(cont.names);
                Code::new(tokens, names)
            }
            Op::Wait(duration) => {
                self.scan(duration);
                let after = &r.after;
                let fields = self.inits(At::After(k));
                let inits = &fields.tokens;
                let tokens = quote! {
                    return __WfOk(__WfStep::Wait {
                        node: #node,
                        duration: #duration,
                        state: __WfState::#after { #(#inits,)* },
                    });
                };
                Code::new(tokens, Names::of_expr(duration).then(fields.names))
            }
            Op::Poll(p) => self.enter_poll(p, k, r),
            Op::Child(n) => self.enter_nested(n, k, r),
            Op::Callback(c) => self.enter_callback(c, k, r),
        }
    }

    /// A task's value, from `call` (its `….await`, or the result a policy's call gave),
    /// recorded in the history and bound as the statement says.
    fn task_value(&self, y: &Yield, node: usize, call: Code) -> Code {
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
        let encoder = ty.map(|ty| quote!((&__WfProbe::<#ty>::new()).encoder()));
        let result = Names::read("__wf_cx").then(Names::read("__wf_r"));
        let (get, bind) = match (&y.try_token, ty) {
            (Some(q), Some(ty)) => (
                Code::new(
                    quote!(let __wf_r = async { ::core::result::Result::<#ty, #err>::Ok(#call #q) }.await;),
                    call.names.block().then(Names::bind(["__wf_r"])),
                ),
                bind(
                    &y.binding,
                    Code::new(
                        quote!(__wf_cx.task_finished(#node, __wf_r, #encoder)?),
                        result,
                    ),
                ),
            ),
            (Some(q), None) => (
                Code::new(
                    quote!(let __wf_r = async { ::core::result::Result::<_, #err>::Ok(#call #q) }.await;),
                    call.names.block().then(Names::bind(["__wf_r"])),
                ),
                bind(
                    &y.binding,
                    Code::new(quote!(__wf_cx.task_finished_opaque(#node, __wf_r)?), result),
                ),
            ),
            (None, Some(ty)) => (
                Code::new(
                    quote!(let __wf_r: #ty = #call;),
                    call.names.then(Names::bind(["__wf_r"])),
                ),
                bind(
                    &y.binding,
                    Code::new(quote!(__wf_cx.task_value(#node, __wf_r, #encoder)), result),
                ),
            ),
            (None, None) => (
                Code::new(
                    quote!(let __wf_r = #call; __wf_cx.task_done(#node);),
                    call.names
                        .then(Names::bind(["__wf_r"]))
                        .then(Names::read("__wf_cx")),
                ),
                bind(&y.binding, Code::new(quote!(__wf_r), Names::read("__wf_r"))),
            ),
        };
        Code::new(quote!(#get #bind), get.names.then(bind.names))
    }

    /// The call of a task or poll with a policy: with its timeout, and ending the step
    /// with a retry when its error is retried. Its value is `__wf_call`.
    fn policy_call(&self, y: &Yield, node: usize, call: &Expr) -> Code {
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
        // A call's error without `WorkflowError` is reported on the call, once.
        let named = {
            let span = call_span(call);
            let wf = respan(wf.clone(), span);
            quote_spanned!(span=> #wf::codegen::error_name)
        };
        let called = quote_spanned!(call_span(call)=>
            __wf_cx.#method(#node, #fut, #named #timed_out).await
        );
        let tokens = quote! {
            let __wf_call = match #called {
                __WfOk(__wf_call) => __wf_call,
                __WfErr(__wf_stop) => {
                    return __WfOk(__WfStep::from(__wf_stop));
                }
            };
        };
        let names = Names::read("__wf_cx")
            .then(Names::of_expr(call))
            .then(Names::bind(["__wf_call"]));
        Code::new(tokens, names)
    }

    fn enter_poll(&self, p: &Poll, k: usize, r: &Resume) -> Code {
        let wf = self.cx.wf;
        let node = k;
        let given = [
            Some(&p.every),
            p.timeout.as_ref(),
            p.max_attempts.as_ref(),
            p.max_errors.as_ref(),
        ];
        let mut names = Names::read("__wf_cx");
        for e in given.into_iter().flatten() {
            self.scan(e);
            names = names.then(Names::of_expr(e));
        }
        let waiting = r.waiting.as_ref().expect("polls have a waiting state");
        let fields = self.inits(At::Waiting(k));
        let inits = &fields.tokens;
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
        let tokens = quote! {
            let __wf_poll = #wf::codegen::PollState::begin(__wf_cx, #wf::codegen::PollConfig {
                every: #every,
                timeout: #timeout,
                max_attempts: #max_attempts,
                max_errors: #max_errors,
            });
            return __WfOk(__WfStep::Wait {
                node: #node,
                duration: __wf_poll.every(),
                state: __WfState::#waiting { #(#inits,)* __wf_poll },
            });
        };
        let names = names
            .then(Names::bind(["__wf_poll"]))
            .then(Names::read("__wf_poll"))
            .then(fields.names);
        Code::new(tokens, names)
    }

    /// Stops at a callback with its limits, evaluated here (they may read locals): the
    /// driver makes the callback and checkpoints it before the next step sends its token.
    fn enter_callback(&self, c: &Callback, k: usize, r: &Resume) -> Code {
        let node = k;
        self.scan(&c.timeout);
        if let Some(h) = &c.heartbeat {
            self.scan(h);
        }
        let waiting = r.waiting.as_ref().expect("callbacks have a waiting state");
        let fields = self.inits(At::Waiting(k));
        let inits = &fields.tokens;
        let timeout = &c.timeout;
        let heartbeat = match &c.heartbeat {
            Some(h) => quote!(::core::option::Option::Some(#h)),
            None => quote!(__WfNone),
        };
        // Evaluated before the state takes the locals they may read.
        let tokens = quote! {
            let __wf_timeout: ::core::time::Duration = #timeout;
            let __wf_heartbeat: ::core::option::Option<::core::time::Duration> = #heartbeat;
            return __WfOk(__WfStep::Callback {
                node: #node,
                state: __WfState::#waiting { #(#inits,)* },
                timeout: __wf_timeout,
                heartbeat: __wf_heartbeat,
            });
        };
        let heartbeat = c.heartbeat.as_ref().map(Names::of_expr).unwrap_or_default();
        let names = Names::of_expr(timeout)
            .then(Names::bind(["__wf_timeout"]))
            .then(heartbeat)
            .then(Names::bind(["__wf_heartbeat"]))
            .then(fields.names)
            .then(Names::read("__wf_timeout"))
            .then(Names::read("__wf_heartbeat"));
        Code::new(tokens, names)
    }

    fn enter_nested(&self, n: &Nested, k: usize, r: &Resume) -> Code {
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
        let inits = &fields.tokens;
        let push = |c: &Call| {
            let p = child(wf, &c.workflow);
            // Spanned on the call: arguments that do not make the child's input (a wrong
            // count builds the wrong tuple) are reported there.
            let input = match c.args.as_slice() {
                [] => quote_spanned!(c.span=> ()),
                [one] => quote!(#one),
                many => quote_spanned!(c.span=> (#(#many),*)),
            };
            let names = Names::read("__wf_batch")
                .then(path_names(&c.workflow))
                .then(c.args.iter().map(Names::of_expr).collect());
            Code::new(quote_spanned!(c.span=> __wf_batch.push(#p, #input);), names)
        };
        let (max, pushes) = match n {
            Nested::One(c) => (quote!(__WfNone), push(c)),
            Nested::Parallel(cs) => {
                let pushes: Vec<Code> = cs.iter().map(push).collect();
                let names = pushes.iter().map(|p| p.names.clone()).collect();
                (quote!(__WfNone), Code::new(quote!(#(#pushes)*), names))
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
                let names = Names::of_expr(iter)
                    .then(push.names.clone().block().scoped(uses::pat_names(pat)));
                (max, Code::new(quote!(for #pat in #iter { #push }), names))
            }
        };
        let tokens = quote! {
            let mut __wf_batch = #wf::codegen::ChildBatch::new(#node, #max);
            #pushes
            return __WfOk(__WfStep::Children {
                state: __WfState::#waiting { #(#inits,)* },
                batch: __wf_batch,
            });
        };
        let names = Names::bind(["__wf_batch"])
            .then(pushes.names)
            .then(fields.names)
            .then(Names::read("__wf_batch"));
        Code::new(tokens, names)
    }

    /// The body of the arm that resumes a waiting state: one poll attempt, the
    /// children's results, a task's call, a callback's send or value.
    fn waiting_body(&self, k: usize) -> Code {
        let y = &self.cx.body.yields[k];
        let r = &self.cx.resumes[k];
        let Some(waiting) = &r.waiting else {
            return Code::default();
        };
        let node = k;
        let q = &y.try_token;
        if q.is_some() {
            self.exit(Exit::Fail);
        }
        // The value, spanned on the user's yield expression: a type error about it is
        // reported there (with rustc's suggestion, such as adding the `?`).
        let value = Ident::new("__wf_r", y.span);
        let bind = bind(
            &y.binding,
            Code::new(quote!(#value #q), Names::read("__wf_r")),
        );
        let cont = self.continue_after(k);
        let done = Code::new(quote!(#bind #cont), bind.names.then(cont.names.clone()));
        let fields = self.inits(At::Waiting(k));
        let body = self.waiting_code(y, node, waiting, fields, done, cont);
        let rebinds: Vec<Code> = y
            .fors
            .iter()
            .map(|f| self.rebind_for(&f.pat, &f.state, f.item.as_ref(), &body))
            .collect();
        let names = rebinds
            .iter()
            .map(|r| r.names.clone())
            .collect::<Names>()
            .then(body.names.clone());
        Code::new(quote!(#(#rebinds)* #body), names)
    }

    fn waiting_code(
        &self,
        y: &Yield,
        node: usize,
        waiting: &Ident,
        fields: Inits,
        done: Code,
        cont_after: Code,
    ) -> Code {
        let wf = self.cx.wf;
        let inits = &fields.tokens;
        match &y.op {
            Op::Poll(p) => {
                let call = &p.call;
                let ready = &p.ready;
                self.scan(call);
                self.scan(ready);
                let (before, answer) = if y.policy.is_some() {
                    let before = self.policy_call(y, node, call);
                    (
                        before,
                        Code::new(quote!(__wf_call), Names::read("__wf_call")),
                    )
                } else {
                    let answer = quote_spanned!(call_span(call)=> #call.await);
                    (Code::default(), Code::new(answer, Names::of_expr(call)))
                };
                let attempt = quote_spanned! {call_span(call)=>
                    __wf_poll.attempt(__wf_cx, #node, #answer, #ready)
                };
                let tokens = quote! {
                    #before
                    match #attempt {
                        #wf::codegen::PollNext::Wait(__wf_every) => {
                            return __WfOk(__WfStep::Wait {
                                node: #node,
                                duration: __wf_every,
                                state: __WfState::#waiting { #(#inits,)* __wf_poll },
                            });
                        }
                        #wf::codegen::PollNext::Done(__wf_r) => { #done }
                    }
                };
                let wait = Names::read("__wf_every")
                    .then(fields.names)
                    .then(Names::read("__wf_poll"));
                let names = before
                    .names
                    .then(Names::read("__wf_poll"))
                    .then(Names::read("__wf_cx"))
                    .then(answer.names)
                    .then(Names::of_expr(ready))
                    .then(wait.block().scoped(["__wf_every"]))
                    .then(done.names.block().scoped(["__wf_r"]));
                Code::new(tokens, names)
            }
            Op::Child(n) => {
                let decode = self.decode(n);
                let retry = y.policy.as_ref().filter(|p| p.retry.is_some()).map(|_| {
                    let tokens = quote! {
                        let __wf_r = match __wf_cx.nested(#node, __wf_r) {
                            __WfOk(__wf_r) => __wf_r,
                            __WfErr(__wf_stop) => {
                                return __WfOk(__WfStep::from(__wf_stop));
                            }
                        };
                    };
                    let names = Names::read("__wf_cx")
                        .then(Names::read("__wf_r"))
                        .then(Names::bind(["__wf_r"]));
                    Code::new(tokens, names)
                });
                let retry = retry.unwrap_or_default();
                let tokens = quote! {
                    let mut __wf_o = match __wf_cx.take_children(#node) {
                        __WfOk(__wf_o) => __wf_o,
                        __WfErr(__wf_fault) => {
                            return __WfOk(__WfStep::Fault(__wf_fault));
                        }
                    };
                    let __wf_r = #decode;
                    #retry
                    #done
                };
                let names = Names::read("__wf_cx")
                    .then(Names::bind(["__wf_o"]))
                    .then(decode.names)
                    .then(Names::bind(["__wf_r"]))
                    .then(retry.names)
                    .then(done.names);
                Code::new(tokens, names)
            }
            Op::Task { future, .. } => {
                self.scan(future);
                let call = self.policy_call(y, node, future);
                let value = self.task_value(
                    y,
                    node,
                    Code::new(quote!(__wf_call), Names::read("__wf_call")),
                );
                let tokens = quote! {
                    __wf_cx.task_scheduled(#node);
                    #call
                    #value
                    #cont_after
                };
                let names = Names::read("__wf_cx")
                    .then(call.names)
                    .then(value.names)
                    .then(cont_after.names);
                Code::new(tokens, names)
            }
            Op::Callback(c) => {
                let send = &c.send;
                let send_expr = Expr::Closure(send.clone());
                self.scan(&send_expr);
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
                let tokens = quote! {
                    match __wf_cx.take_callback(#node) {
                        __WfErr(__wf_fault) => {
                            return __WfOk(__WfStep::Fault(__wf_fault));
                        }
                        __WfOk(#wf::codegen::CallbackStep::Send(__wf_token)) => {
                            let __wf_sent = #sent;
                            return __WfOk(__WfStep::CallbackSent {
                                node: #node,
                                state: __WfState::#waiting { #(#inits,)* },
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
                };
                let send = Names::of_expr(&send_expr)
                    .then(Names::read("__wf_token"))
                    .then(Names::bind(["__wf_sent"]))
                    .then(fields.names)
                    .then(Names::read("__wf_sent"));
                let resolved = Names::read("__wf_resolved")
                    .then(Names::bind(["__wf_r"]))
                    .then(done.names);
                let names = Names::read("__wf_cx")
                    .then(send.block().scoped(["__wf_token"]))
                    .then(resolved.block().scoped(["__wf_resolved"]));
                Code::new(tokens, names)
            }
            Op::Wait(_) => unreachable!("sleeps do not wait in a state of their own"),
        }
    }

    /// The children's results, as the value of a `call_nested!`: it reads the outcome
    /// (`__wf_o`) and the children's workflows.
    fn decode(&self, n: &Nested) -> Code {
        let wf = self.cx.wf;
        let names = |calls: &[&Call]| -> Names {
            let children: Names = calls.iter().map(|c| path_names(&c.workflow)).collect();
            Names::read("__wf_o").then(children)
        };
        match n {
            Nested::One(c) => {
                let p = child(wf, &c.workflow);
                Code::new(quote!(__wf_o.decode(#p, 0)), names(&[c]))
            }
            Nested::Map { call, .. } => {
                let p = child(wf, &call.workflow);
                Code::new(quote!(__wf_o.decode_all(#p)), names(&[call]))
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
                let tokens = quote! {{
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
                }};
                // Everything else it reads, it binds first.
                let calls: Vec<&Call> = cs.iter().collect();
                Code::new(tokens, names(&calls).block())
            }
        }
    }
}

/// `{ code };`: a block of its own, as a statement.
fn braced((code, stops): (Code, bool)) -> (Code, bool) {
    (Code::new(quote!({ #code };), code.names.block()), stops)
}

/// An `if`'s or a `while`'s names: an `if let` binds its pattern in the body only.
fn conditional(cond: &Expr, cond_names: Names, body: Names) -> Names {
    match cond {
        Expr::Let(l) => Names::of_expr(&l.expr).then(body.block().scoped(uses::pat_names(&l.pat))),
        _ => cond_names.then(body.block()),
    }
}

/// A path used as a value (a child workflow): a single name is read.
fn path_names(path: &syn::Path) -> Names {
    path.get_ident().map(Names::read).unwrap_or_default()
}

/// The statement that puts a yield point's value where the user asked.
fn bind(b: &Binding, value: Code) -> Code {
    match b {
        Binding::Discard => Code::new(quote!(let _ = #value;), value.names),
        Binding::Let { pat, ty } => {
            let tokens = match ty {
                Some(ty) => quote!(let #pat: #ty = #value;),
                None => quote!(let #pat = #value;),
            };
            Code::new(tokens, value.names.then(Names::bind_pat(pat)))
        }
        Binding::Assign { place, op } => {
            let tokens = match op {
                Some(op) => quote!(#place #op #value;),
                None => quote!(#place = #value;),
            };
            Code::new(tokens, Names::of_expr(place).then(value.names))
        }
    }
}

/// A loop resumed in the middle of an iteration: its `break`s leave `exit`, its
/// `continue`s end the current iteration (`next`) and fall into the re-entered loop.
#[derive(Clone)]
pub(crate) struct Redirect {
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
