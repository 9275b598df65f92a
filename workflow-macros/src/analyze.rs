//! Stage 2: find the yield points of the body and what must be persisted across them.
//!
//! A yield point is a statement of the body whose value comes from a task's `.await`,
//! `poll_until!`, `call_nested!` or `sleep!`. Everything else is plain code, checked here
//! for yield points in places this version does not lower (inside closures, branches,
//! loops or larger expressions), which are reported with a hint instead of miscompiled.

use std::collections::{BTreeSet, HashSet};

use proc_macro2::{Span, TokenStream, TokenTree};
use syn::spanned::Spanned;
use syn::visit::{self, Visit};
use syn::{parse_quote, Expr, Ident, Item, Macro, Pat, Stmt, Token, Type};

use crate::errors::Errors;
use crate::parse::{Ret, WorkflowFn};
use crate::yields::{self, MacroKind, Nested, Poll};

/// The analyzed body.
pub(crate) struct Body {
    /// Items declared in the body (`use`, `fn`, …), hoisted so every resume point sees them.
    pub(crate) items: Vec<Item>,
    pub(crate) parts: Vec<Part>,
    /// The tail expression (the return value), if the body has one.
    pub(crate) tail: Option<Expr>,
}

pub(crate) enum Part {
    Plain(Stmt),
    Yield(Yield),
}

pub(crate) struct Yield {
    pub(crate) binding: Binding,
    pub(crate) op: Op,
    pub(crate) try_token: Option<Token![?]>,
    /// Locals persisted once the yield completes (fields of its "after" state).
    pub(crate) live_after: Vec<Local>,
    /// Locals held while it waits (fields of its waiting state, for polls and children).
    pub(crate) live_waiting: Vec<Local>,
}

pub(crate) enum Binding {
    Discard,
    Let { pat: Pat, ty: Option<Type> },
}

pub(crate) enum Op {
    Task { future: Expr, await_span: Span },
    Sleep(Expr),
    Poll(Box<Poll>),
    Nested(Box<Nested>),
}

/// A local variable: a parameter or a `let` binding at the top level of the body.
#[derive(Clone)]
pub(crate) struct Local {
    id: usize,
    pub(crate) ident: Ident,
    pub(crate) ty: Option<Type>,
    pub(crate) mutable: bool,
}

impl Local {
    pub(crate) fn name(&self) -> String {
        self.ident.to_string()
    }
}

/// Name of the synthetic local that holds a yielding tail expression's value.
pub(crate) const RET: &str = "__wf_ret";

pub(crate) fn body(f: &WorkflowFn, errors: &mut Errors) -> Body {
    let mut items = Vec::new();
    let mut parts = Vec::new();
    let mut tail = None;
    let stmts = &f.body.stmts;
    for (i, stmt) in stmts.iter().enumerate() {
        let last = i + 1 == stmts.len();
        match stmt {
            Stmt::Item(item) => items.push(item.clone()),
            Stmt::Expr(expr, None) if last => match yield_expr(expr, errors) {
                Parsed::Yield((op, try_token)) => {
                    // `…​.await` as the tail: bind it to a local of the return type, persist
                    // it like any other yield result, and return it.
                    let ret = Ident::new(RET, Span::call_site());
                    parts.push(Part::Yield(Yield {
                        binding: Binding::Let {
                            pat: parse_quote!(#ret),
                            ty: Some(f.ret.full().clone()),
                        },
                        op,
                        try_token,
                        live_after: Vec::new(),
                        live_waiting: Vec::new(),
                    }));
                    tail = Some(parse_quote!(#ret));
                }
                Parsed::Plain => {
                    scrub_expr(expr, errors);
                    tail = Some(expr.clone());
                }
                Parsed::Invalid => {}
            },
            _ => match yield_stmt(stmt, errors) {
                Parsed::Yield(y) => parts.push(Part::Yield(y)),
                Parsed::Plain => {
                    scrub_stmt(stmt, errors);
                    parts.push(Part::Plain(stmt.clone()));
                }
                Parsed::Invalid => {}
            },
        }
    }
    if let Ret::Plain(_) = f.ret {
        for part in &parts {
            if let Part::Yield(Yield {
                try_token: Some(q), ..
            }) = part
            {
                errors.spanned(q, "`?` needs the workflow to return `Result<T, E>`");
            }
        }
    }
    let mut body = Body { items, parts, tail };
    liveness(f, &mut body, errors);
    body
}

/// How a statement or expression was classified.
enum Parsed<T> {
    Yield(T),
    Plain,
    /// A yield point whose error is reported; it is neither lowered nor scrubbed again.
    Invalid,
}

/// A statement that is a yield point, or plain code.
fn yield_stmt(stmt: &Stmt, errors: &mut Errors) -> Parsed<Yield> {
    let (binding, expr) = match stmt {
        Stmt::Local(local) => {
            let Some(init) = local.init.as_ref() else {
                return Parsed::Plain;
            };
            let (pat, ty) = match &local.pat {
                Pat::Type(pt) => ((*pt.pat).clone(), Some((*pt.ty).clone())),
                pat => (pat.clone(), None),
            };
            if let Some((else_token, _)) = &init.diverge {
                if yield_expr_kind(&init.expr) {
                    errors.spanned(else_token, "`let … else` is not supported on a yield point; bind the value, then `match` on it");
                    return Parsed::Invalid;
                }
            }
            (Binding::Let { pat, ty }, &*init.expr)
        }
        Stmt::Expr(expr, Some(_)) => (Binding::Discard, expr),
        Stmt::Macro(m) => {
            let Some(kind) = MacroKind::of(&m.mac) else {
                return Parsed::Plain;
            };
            let Some(op) = macro_op(kind, &m.mac, errors) else {
                return Parsed::Invalid;
            };
            return Parsed::Yield(Yield {
                binding: Binding::Discard,
                op,
                try_token: None,
                live_after: Vec::new(),
                live_waiting: Vec::new(),
            });
        }
        _ => return Parsed::Plain,
    };
    let (op, try_token) = match yield_expr(expr, errors) {
        Parsed::Yield(y) => y,
        Parsed::Plain => return Parsed::Plain,
        Parsed::Invalid => return Parsed::Invalid,
    };
    if let (Op::Sleep(_), Binding::Let { pat, .. }) = (&op, &binding) {
        errors.spanned(
            pat,
            "`sleep!` has no value to bind; write `sleep!(duration);`",
        );
    }
    Parsed::Yield(Yield {
        binding,
        op,
        try_token,
        live_after: Vec::new(),
        live_waiting: Vec::new(),
    })
}

fn yield_expr_kind(expr: &Expr) -> bool {
    let expr = match expr {
        Expr::Try(t) => &*t.expr,
        e => e,
    };
    matches!(expr, Expr::Await(_))
        || matches!(expr, Expr::Macro(m) if MacroKind::of(&m.mac).is_some())
}

/// `X.await`, `X.await?`, `poll_until!(…)`, `poll_until!(…)?`, … as an operation.
fn yield_expr(expr: &Expr, errors: &mut Errors) -> Parsed<(Op, Option<Token![?]>)> {
    let (inner, try_token) = match expr {
        Expr::Try(t) => (&*t.expr, Some(t.question_token)),
        e => (e, None),
    };
    let op = match inner {
        Expr::Await(a) => {
            scrub_nested(&a.base, errors);
            Op::Task {
                future: (*a.base).clone(),
                await_span: a.await_token.span,
            }
        }
        Expr::Macro(m) => {
            let Some(kind) = MacroKind::of(&m.mac) else {
                return Parsed::Plain;
            };
            match macro_op(kind, &m.mac, errors) {
                Some(op) => op,
                None => return Parsed::Invalid,
            }
        }
        _ => return Parsed::Plain,
    };
    if let (Op::Sleep(_), Some(q)) = (&op, &try_token) {
        errors.spanned(q, "`sleep!` cannot fail; remove the `?`");
    }
    Parsed::Yield((op, try_token))
}

/// The operation of one of our macros; `None` once its error is reported.
fn macro_op(kind: MacroKind, mac: &Macro, errors: &mut Errors) -> Option<Op> {
    let parsed = match kind {
        MacroKind::Poll => yields::poll(mac).map(|p| Op::Poll(Box::new(p))),
        MacroKind::Nested => yields::nested(mac).map(|n| Op::Nested(Box::new(n))),
        MacroKind::Sleep => yields::sleep(mac).map(Op::Sleep),
    };
    match parsed {
        Ok(op) => {
            match &op {
                Op::Poll(p) => {
                    for e in [&p.call, &p.ready, &p.every] {
                        scrub_nested(e, errors);
                    }
                    for e in [&p.timeout, &p.max_attempts, &p.max_errors]
                        .into_iter()
                        .flatten()
                    {
                        scrub_nested(e, errors);
                    }
                }
                Op::Nested(n) => {
                    for call in n.calls() {
                        call.args.iter().for_each(|a| scrub_nested(a, errors));
                    }
                    if let Nested::Map { iter, .. } = &**n {
                        scrub_nested(iter, errors);
                    }
                }
                Op::Sleep(d) => scrub_nested(d, errors),
                Op::Task { .. } => {}
            }
            Some(op)
        }
        Err(e) => {
            errors.push(e);
            None
        }
    }
}

// ---------------------------------------------------------------------------------------
// Yield points where this version cannot lower them.

fn scrub_stmt(stmt: &Stmt, errors: &mut Errors) {
    Scrub::new(errors, None).visit_stmt(stmt);
}

fn scrub_expr(expr: &Expr, errors: &mut Errors) {
    Scrub::new(errors, None).visit_expr(expr);
}

/// Inside the operands of a yield point: any other yield point is nested in it.
fn scrub_nested(expr: &Expr, errors: &mut Errors) {
    Scrub::new(errors, Some("inside another yield point")).visit_expr(expr);
}

struct Scrub<'a> {
    errors: &'a mut Errors,
    /// Innermost construct around the current expression.
    context: Vec<&'static str>,
    /// Inside a closure or async block: `.await` there belongs to that future, not to
    /// the workflow.
    opaque: usize,
}

impl<'a> Scrub<'a> {
    fn new(errors: &'a mut Errors, root: Option<&'static str>) -> Self {
        Scrub {
            errors,
            context: root.into_iter().collect(),
            opaque: 0,
        }
    }

    fn within(&mut self, what: &'static str, f: impl FnOnce(&mut Self)) {
        self.context.push(what);
        f(self);
        self.context.pop();
    }

    fn report(&mut self, span: Span, what: &str) {
        let message = match self.context.last().copied() {
            Some(c @ ("a closure" | "an async block")) => format!(
                "{what} cannot be used inside {c}: yield points must be statements of the workflow body"
            ),
            Some("inside another yield point") => format!(
                "{what} cannot be nested inside another yield point; bind it first with its own `let value: Type = …;` statement"
            ),
            Some(c) => format!(
                "{what} inside {c} is not supported yet; make it a statement of the workflow body"
            ),
            None => format!(
                "{what} inside a larger expression is not supported; bind it first: `let value: Type = …;`, then use `value`"
            ),
        };
        self.errors.at(span, message);
    }
}

impl<'ast> Visit<'ast> for Scrub<'_> {
    fn visit_expr_await(&mut self, e: &'ast syn::ExprAwait) {
        if self.opaque == 0 {
            self.report(e.await_token.span, "`.await`");
        }
        visit::visit_expr_await(self, e);
    }
    fn visit_macro(&mut self, m: &'ast Macro) {
        if let Some(kind) = MacroKind::of(m) {
            self.report(m.path.span(), &format!("`{}`", kind.display()));
        }
    }
    fn visit_expr_closure(&mut self, e: &'ast syn::ExprClosure) {
        self.opaque += 1;
        self.within("a closure", |s| visit::visit_expr_closure(s, e));
        self.opaque -= 1;
    }
    fn visit_expr_async(&mut self, e: &'ast syn::ExprAsync) {
        self.opaque += 1;
        self.within("an async block", |s| visit::visit_expr_async(s, e));
        self.opaque -= 1;
    }
    fn visit_expr_if(&mut self, e: &'ast syn::ExprIf) {
        self.within("`if`", |s| visit::visit_expr_if(s, e));
    }
    fn visit_expr_match(&mut self, e: &'ast syn::ExprMatch) {
        self.within("`match`", |s| visit::visit_expr_match(s, e));
    }
    fn visit_expr_loop(&mut self, e: &'ast syn::ExprLoop) {
        self.within("`loop`", |s| visit::visit_expr_loop(s, e));
    }
    fn visit_expr_while(&mut self, e: &'ast syn::ExprWhile) {
        self.within("`while`", |s| visit::visit_expr_while(s, e));
    }
    fn visit_expr_for_loop(&mut self, e: &'ast syn::ExprForLoop) {
        self.within("`for`", |s| visit::visit_expr_for_loop(s, e));
    }
    fn visit_expr_block(&mut self, e: &'ast syn::ExprBlock) {
        self.within("a block", |s| visit::visit_expr_block(s, e));
    }
    // A nested item is its own function: its `.await`s and macros are not ours.
    fn visit_item(&mut self, _: &'ast Item) {}
}

// ---------------------------------------------------------------------------------------
// Liveness: which locals each yield point must persist.

fn liveness(f: &WorkflowFn, body: &mut Body, errors: &mut Errors) {
    let mut next_id = 0;
    let mut new_local = |ident: Ident, ty: Option<Type>, mutable: bool| {
        next_id += 1;
        Local {
            id: next_id,
            ident,
            ty,
            mutable,
        }
    };
    let params: Vec<Local> = f
        .inputs
        .iter()
        .map(|p| new_local(p.ident.clone(), Some(p.ty.clone()), p.mutability.is_some()))
        .collect();
    let defs: Vec<Vec<Local>> = body
        .parts
        .iter()
        .map(|part| {
            let mut out = Vec::new();
            match part {
                Part::Plain(Stmt::Local(l)) => {
                    let (pat, ty) = match &l.pat {
                        Pat::Type(pt) => (&*pt.pat, Some(&*pt.ty)),
                        pat => (pat, None),
                    };
                    bind(pat, ty, &mut new_local, &mut out);
                }
                Part::Yield(Yield {
                    binding: Binding::Let { pat, ty },
                    ..
                }) => bind(pat, ty.as_ref(), &mut new_local, &mut out),
                _ => {}
            }
            out
        })
        .collect();
    let uses: Vec<BTreeSet<String>> = body.parts.iter().map(part_uses).collect();
    let mut op_uses: Vec<BTreeSet<String>> = body
        .parts
        .iter()
        .map(|part| match part {
            Part::Yield(Yield {
                op: Op::Poll(p), ..
            }) => {
                let mut u = Uses::default();
                u.visit_expr(&p.call);
                u.visit_expr(&p.ready);
                u.names
            }
            _ => BTreeSet::new(),
        })
        .collect();

    // Backward: the names used after each part.
    let mut live: BTreeSet<String> = body.tail.as_ref().map(expr_uses).unwrap_or_default();
    let mut live_after = vec![BTreeSet::new(); body.parts.len()];
    for i in (0..body.parts.len()).rev() {
        live_after[i] = live.clone();
        for d in &defs[i] {
            live.remove(&d.name());
        }
        live.extend(uses[i].iter().cloned());
    }

    // Forward: resolve the names against the locals in scope, check the annotations.
    let mut scope = params;
    let mut reported = HashSet::new();
    for (i, part) in body.parts.iter_mut().enumerate() {
        let before = scope.clone();
        scope.extend(defs[i].iter().cloned());
        let Part::Yield(y) = part else { continue };
        let own: BTreeSet<String> = defs[i].iter().map(Local::name).collect();
        let mut waiting: BTreeSet<String> = live_after[i].difference(&own).cloned().collect();
        waiting.append(&mut op_uses[i]);
        y.live_after = resolve(&live_after[i], &scope);
        y.live_waiting = match y.op {
            Op::Poll(_) | Op::Nested(_) => resolve(&waiting, &before),
            Op::Task { .. } | Op::Sleep(_) => Vec::new(),
        };
        for local in y.live_after.iter().chain(&y.live_waiting) {
            if local.ty.is_none() && reported.insert(local.id) {
                errors.spanned(
                    &local.ident,
                    format!(
                        "`{0}` is used after a yield point, so it is persisted there and needs a type: write `let {0}: Type = …;`",
                        local.ident
                    ),
                );
            }
        }
    }
}

/// The locals `pat` binds; types are known for plain names and for tuples of them.
fn bind(
    pat: &Pat,
    ty: Option<&Type>,
    new_local: &mut impl FnMut(Ident, Option<Type>, bool) -> Local,
    out: &mut Vec<Local>,
) {
    match (pat, ty) {
        (Pat::Ident(p), ty) if p.subpat.is_none() => {
            let ty = if p.by_ref.is_some() {
                None
            } else {
                ty.cloned()
            };
            out.push(new_local(p.ident.clone(), ty, p.mutability.is_some()));
        }
        (Pat::Tuple(pt), Some(Type::Tuple(tt))) if pt.elems.len() == tt.elems.len() => {
            for (p, t) in pt.elems.iter().zip(&tt.elems) {
                bind(p, Some(t), new_local, out);
            }
        }
        (Pat::Paren(p), ty) => bind(&p.pat, ty, new_local, out),
        (pat, _) => {
            // Any other pattern: its names have no type of their own.
            let mut names = PatIdents::default();
            names.visit_pat(pat);
            for ident in names.0 {
                out.push(new_local(ident, None, false));
            }
        }
    }
}

#[derive(Default)]
struct PatIdents(Vec<Ident>);

impl<'ast> Visit<'ast> for PatIdents {
    fn visit_pat_ident(&mut self, p: &'ast syn::PatIdent) {
        self.0.push(p.ident.clone());
        visit::visit_pat_ident(self, p);
    }
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

fn part_uses(part: &Part) -> BTreeSet<String> {
    let mut u = Uses::default();
    match part {
        Part::Plain(stmt) => u.visit_stmt(stmt),
        Part::Yield(y) => match &y.op {
            Op::Task { future, .. } => u.visit_expr(future),
            Op::Sleep(d) => u.visit_expr(d),
            Op::Poll(p) => {
                for e in [&p.call, &p.ready, &p.every] {
                    u.visit_expr(e);
                }
                for e in [&p.timeout, &p.max_attempts, &p.max_errors]
                    .into_iter()
                    .flatten()
                {
                    u.visit_expr(e);
                }
            }
            Op::Nested(n) => {
                if let Nested::Map { iter, .. } = &**n {
                    u.visit_expr(iter);
                }
                for call in n.calls() {
                    call.args.iter().for_each(|a| u.visit_expr(a));
                }
            }
        },
    }
    u.names
}

fn expr_uses(expr: &Expr) -> BTreeSet<String> {
    let mut u = Uses::default();
    u.visit_expr(expr);
    u.names
}

/// Names a piece of code may read. Over-approximates (a name used inside a macro, or
/// shadowed by a closure parameter, still counts), which can only persist more.
#[derive(Default)]
struct Uses {
    names: BTreeSet<String>,
}

impl<'ast> Visit<'ast> for Uses {
    fn visit_expr_path(&mut self, e: &'ast syn::ExprPath) {
        if e.qself.is_none() {
            if let Some(ident) = e.path.get_ident() {
                self.names.insert(ident.to_string());
            }
        }
        visit::visit_expr_path(self, e);
    }
    fn visit_macro(&mut self, m: &'ast Macro) {
        macro_uses(m.tokens.clone(), &mut self.names);
    }
    fn visit_item(&mut self, _: &'ast Item) {}
}

/// Macro bodies are opaque tokens: count every identifier not after a `.` (a field or
/// method), and the `{name}` captures of format strings.
fn macro_uses(tokens: TokenStream, names: &mut BTreeSet<String>) {
    let mut after_dot = false;
    for tt in tokens {
        match tt {
            TokenTree::Ident(i) => {
                if !after_dot {
                    names.insert(i.to_string());
                }
                after_dot = false;
            }
            TokenTree::Punct(p) => after_dot = p.as_char() == '.',
            TokenTree::Group(g) => {
                macro_uses(g.stream(), names);
                after_dot = false;
            }
            TokenTree::Literal(lit) => {
                format_captures(&lit.to_string(), names);
                after_dot = false;
            }
        }
    }
}

fn format_captures(lit: &str, names: &mut BTreeSet<String>) {
    let mut rest = lit;
    while let Some(start) = rest.find('{') {
        rest = &rest[start + 1..];
        if rest.starts_with('{') {
            rest = &rest[1..];
            continue;
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if name
            .chars()
            .next()
            .is_some_and(|c| c.is_alphabetic() || c == '_')
        {
            names.insert(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn analyze(src: &str) -> syn::Result<Body> {
        let item: syn::ItemFn = syn::parse_str(src)?;
        let f = crate::parse::function(item)?;
        let mut errors = Errors::default();
        let body = body(&f, &mut errors);
        errors.check().map(|()| body)
    }

    fn yields(body: &Body) -> Vec<&Yield> {
        body.parts
            .iter()
            .filter_map(|p| match p {
                Part::Yield(y) => Some(y),
                Part::Plain(_) => None,
            })
            .collect()
    }

    fn names(locals: &[Local]) -> Vec<String> {
        locals.iter().map(Local::name).collect()
    }

    #[test]
    fn persists_only_what_is_used_later() {
        let body = analyze(
            "async fn f(svc: &Svc, req: Req) -> Result<Out, E> {
                let scratch = 1 + 2;
                let job: JobId = svc.start(&req, scratch).await?;
                let done: Polled<S> = poll_until!(svc.status(&job), |s| s.done, every = 1.secs(), timeout = 5.secs())?;
                Ok(Out::new(job, done))
            }",
        )
        .unwrap();
        let ys = yields(&body);
        assert_eq!(ys.len(), 2);
        assert_eq!(names(&ys[0].live_after), ["job"]);
        assert_eq!(names(&ys[1].live_waiting), ["job"]);
        assert_eq!(names(&ys[1].live_after), ["job", "done"]);
    }

    #[test]
    fn shadowing_resolves_to_the_latest_binding() {
        let body = analyze(
            "async fn f(x: u32) -> u64 {
                let a: u32 = step(x).await;
                let x: u64 = widen(a).await;
                x
            }",
        )
        .unwrap();
        let ys = yields(&body);
        assert_eq!(names(&ys[0].live_after), ["a"]);
        assert_eq!(names(&ys[1].live_after), ["x"]);
        assert_eq!(
            ys[1].live_after[0]
                .ty
                .as_ref()
                .map(|t| quote::quote!(#t).to_string()),
            Some("u64".to_owned())
        );
    }

    #[test]
    fn format_string_captures_count_as_uses() {
        let body = analyze(
            "async fn f(name: String) {
                sleep!(1.secs());
                println!(\"{name}\");
            }",
        )
        .unwrap();
        assert_eq!(names(&yields(&body)[0].live_after), ["name"]);
    }

    #[test]
    fn unannotated_local_across_a_yield_is_an_error() {
        let err = analyze(
            "async fn f() -> u32 {
                let n = 3;
                sleep!(1.secs());
                n
            }",
        )
        .err()
        .expect("must be rejected");
        assert!(
            err.to_string().contains("`n` is used after a yield point"),
            "{err}"
        );
    }

    #[test]
    fn tuple_bindings_take_their_element_types() {
        let body = analyze(
            "async fn f() -> u32 {
                let (a, b): (u32, String) = pair().await;
                sleep!(1.secs());
                a + b.len() as u32
            }",
        )
        .unwrap();
        assert_eq!(names(&yields(&body)[1].live_after), ["a", "b"]);
    }

    #[test]
    fn every_misplaced_yield_is_reported_in_one_compile() {
        let err = analyze(
            "async fn f() -> u32 {
                let a = g(h().await);
                if a > 1 { sleep!(1.secs()); }
                let c = || call_nested!(w(1));
                0
            }",
        )
        .err()
        .expect("must be rejected");
        let messages: Vec<String> = err.into_iter().map(|e| e.to_string()).collect();
        assert_eq!(messages.len(), 3, "{messages:#?}");
        assert!(messages[0].contains("larger expression"));
        assert!(messages[1].contains("inside `if` is not supported yet"));
        assert!(messages[2].contains("inside a closure"));
    }
}
