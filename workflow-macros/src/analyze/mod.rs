//! Stage 2: the body as a tree of yield points and the control flow around them.
//!
//! A yield point is a statement whose value comes from a task's `.await`,
//! `poll_until!`, `call_nested!` or `sleep!`. `if`, `match`, loops and blocks that contain
//! one become nodes of the tree (the lowering needs their structure to resume inside
//! them); everything else stays plain code, checked for yield points in places that
//! cannot be lowered. Alongside, the analysis records which locals are in scope at each
//! yield point, with their declared types: the candidates for persistence.

mod scrub;
pub(crate) mod uses;

use proc_macro2::{Span, TokenStream};
use quote::format_ident;
use syn::spanned::Spanned;
use syn::visit_mut::{self, VisitMut};
use syn::{parse_quote, Expr, Ident, Item, Lifetime, Macro, Pat, Stmt, Token, Type};

use crate::errors::Errors;
use crate::parse::{Ret, WorkflowFn};
use crate::policy::{self, PolicySpec};
use crate::yields::{self, Callback, MacroKind, Nested, Poll};

/// The analyzed body.
pub(crate) struct Body {
    /// Items declared in the body (`use`, `fn`, …), hoisted so every resume point sees them.
    pub(crate) items: Vec<Item>,
    pub(crate) root: Block,
    /// Every yield point, in source order; [`Node::Yield`] refers to them by index.
    pub(crate) yields: Vec<Yield>,
}

/// A block that contains yield points.
pub(crate) struct Block {
    pub(crate) nodes: Vec<Node>,
    /// The value of the block, if it has one (plain code).
    pub(crate) tail: Option<Expr>,
}

pub(crate) enum Node {
    Plain(Stmt),
    Yield(usize),
    If(Box<If>),
    Match(Box<Match>),
    Loop(Box<Loop>),
    Block(Option<syn::Label>, Block),
}

pub(crate) struct If {
    /// A boolean expression or `let PAT = EXPR`.
    pub(crate) cond: Expr,
    pub(crate) then: Block,
    pub(crate) els: Option<Else>,
}

pub(crate) enum Else {
    Block(Block),
    If(Box<If>),
}

pub(crate) struct Match {
    pub(crate) expr: Expr,
    pub(crate) arms: Vec<Arm>,
}

pub(crate) struct Arm {
    pub(crate) pat: Pat,
    pub(crate) guard: Option<Expr>,
    pub(crate) body: Block,
}

pub(crate) struct Loop {
    /// Distinct per loop that yields, for the labels of resumed code.
    pub(crate) id: usize,
    /// The user's label, or one of ours: every `break`/`continue` aimed at this loop is
    /// labelled, so resumed code can redirect them.
    pub(crate) label: Lifetime,
    pub(crate) kind: LoopKind,
    pub(crate) body: Block,
}

pub(crate) enum LoopKind {
    Loop,
    /// `while COND` or `while let PAT = EXPR`.
    While(Expr),
    /// `for PAT in ITER`; the remaining items are persisted in `state` (a `ForIter`).
    For {
        pat: Pat,
        iter: Expr,
        range: Range,
        state: Ident,
        /// The item type, when the code shows it: resumed code decodes items without
        /// the iterator expression to infer it from.
        item: Option<Type>,
    },
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Range {
    No,
    HalfOpen,
    Closed,
}

pub(crate) struct Yield {
    pub(crate) binding: Binding,
    pub(crate) op: Op,
    pub(crate) try_token: Option<Token![?]>,
    /// The user's yield expression (`poll_until!(…)`, `call_nested!(…)`, `x.await`), without
    /// its `?`: the span of the generated code that stands for its value, so that a type
    /// error about that value (a missing `?`, a wrong annotation, an error that does not
    /// convert) is reported on the user's line.
    pub(crate) span: Span,
    /// Locals in scope before the yield point: what its waiting state may hold.
    pub(crate) scope_before: Vec<Local>,
    /// Locals in scope after it (its binding included): what its "after" state may hold.
    pub(crate) scope_after: Vec<Local>,
    /// The `for` loops around it, outermost first: resumed code binds their patterns
    /// again from their states.
    pub(crate) fors: Vec<ForLoop>,
    /// `#[retry]` / `#[timeout]` on its statement.
    pub(crate) policy: Option<PolicySpec>,
}

/// What resumed code needs to bind a `for` loop's pattern again.
#[derive(Clone)]
pub(crate) struct ForLoop {
    pub(crate) pat: Pat,
    pub(crate) state: Ident,
    pub(crate) item: Option<Type>,
    /// Locals with an id above this one are declared inside the loop.
    pub(crate) locals_before: usize,
}

pub(crate) enum Binding {
    Discard,
    Let {
        pat: Pat,
        ty: Option<Type>,
    },
    /// `place = …` or `place += …` (any compound assignment).
    Assign {
        place: Expr,
        op: Option<syn::BinOp>,
    },
}

pub(crate) enum Op {
    /// `x.await`.
    Task { future: Expr, await_span: Span },
    /// `sleep!(d)`.
    Wait(Expr),
    /// `poll_until!(…)`.
    Poll(Box<Poll>),
    /// `call_nested!(…)`: a batch of children.
    Child(Box<Nested>),
    /// `wait_for_callback!(…)`: a token handed out, then a wait for its completion.
    Callback(Box<Callback>),
}

/// A local variable: a parameter, a `let`, or a name bound by a pattern.
#[derive(Clone)]
#[cfg_attr(test, derive(Debug))]
pub(crate) struct Local {
    pub(crate) id: usize,
    pub(crate) ident: Ident,
    pub(crate) ty: Option<Type>,
    pub(crate) mutable: bool,
    /// Bound by a `match`/`if let`/`for` pattern (so the fix is a typed re-binding).
    pub(crate) from_pattern: bool,
    /// Of a type of the runtime's own (a `for` loop's iteration): persisted without the
    /// checks and probes a user's type goes through.
    pub(crate) runtime: bool,
}

impl Local {
    pub(crate) fn name(&self) -> String {
        self.ident.to_string()
    }
}

/// Name of the synthetic local that holds a yielding tail expression's value.
pub(crate) const RET: &str = "__wf_ret";

pub(crate) fn body(f: &WorkflowFn, wf: &TokenStream, errors: &mut Errors) -> Body {
    let mut a = Analyzer {
        errors,
        wf,
        items: Vec::new(),
        yields: Vec::new(),
        loops: 0,
        scope: Vec::new(),
        fors: Vec::new(),
        next_id: 0,
        synthetic: 0,
        policy: None,
    };
    for p in &f.inputs {
        let local = a.local(
            p.ident.clone(),
            Some(p.ty.clone()),
            p.mutability.is_some(),
            false,
        );
        a.scope.push(local);
    }
    let ret_ty = f.ret.full().clone();
    let root = a.block(&f.body.stmts, Tail::Return(ret_ty));
    if let Ret::Plain(_) = f.ret {
        for y in &a.yields {
            if let Some(q) = &y.try_token {
                a.errors
                    .spanned(q, "`?` needs the workflow to return `Result<T, E>`");
            }
        }
    }
    Body {
        items: a.items,
        root,
        yields: a.yields,
    }
}

/// What the value of a block is for.
#[derive(Clone)]
enum Tail {
    /// Nothing: statement position.
    Ignore,
    /// The function's return value, of this type.
    Return(Type),
    /// Assign `Some(value)` to this holder (a value-producing branch or loop that yields).
    Hold(Ident, Type),
}

struct Analyzer<'a> {
    errors: &'a mut Errors,
    wf: &'a TokenStream,
    items: Vec<Item>,
    yields: Vec<Yield>,
    /// Loops that yield, so far.
    loops: usize,
    scope: Vec<Local>,
    /// The `for` loops around the current statement.
    fors: Vec<ForLoop>,
    next_id: usize,
    synthetic: usize,
    /// The policy attributes of the statement being analyzed, until its yield point
    /// takes them.
    policy: Option<PolicySpec>,
}

impl Analyzer<'_> {
    fn local(
        &mut self,
        ident: Ident,
        ty: Option<Type>,
        mutable: bool,
        from_pattern: bool,
    ) -> Local {
        self.next_id += 1;
        Local {
            id: self.next_id,
            ident,
            ty,
            mutable,
            from_pattern,
            runtime: false,
        }
    }

    fn fresh(&mut self, prefix: &str) -> Ident {
        self.synthetic += 1;
        format_ident!("__wf_{}{}", prefix, self.synthetic)
    }

    /// Runs `f` in a nested scope: locals it declares are dropped afterwards.
    fn scoped<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> T {
        let len = self.scope.len();
        let out = f(self);
        self.scope.truncate(len);
        out
    }

    fn bind_pattern(&mut self, pat: &Pat, ty: Option<&Type>, from_pattern: bool) {
        let mut out = Vec::new();
        self.bind(pat, ty, from_pattern, &mut out);
        self.scope.extend(out);
    }

    /// The locals `pat` binds; types are known for plain names and for tuples of them.
    fn bind(&mut self, pat: &Pat, ty: Option<&Type>, from_pattern: bool, out: &mut Vec<Local>) {
        match (pat, ty) {
            (Pat::Ident(p), ty) if p.subpat.is_none() => {
                let ty = if p.by_ref.is_some() {
                    None
                } else {
                    ty.cloned()
                };
                let local = self.local(p.ident.clone(), ty, p.mutability.is_some(), from_pattern);
                out.push(local);
            }
            (Pat::Tuple(pt), Some(Type::Tuple(tt))) if pt.elems.len() == tt.elems.len() => {
                for (p, t) in pt.elems.iter().zip(&tt.elems) {
                    self.bind(p, Some(t), from_pattern, out);
                }
            }
            (Pat::Paren(p), ty) => self.bind(&p.pat, ty, from_pattern, out),
            (Pat::Type(pt), _) => self.bind(&pt.pat, Some(&pt.ty), from_pattern, out),
            (pat, _) => {
                for ident in uses::pat_names(pat) {
                    let local = self.local(ident, None, false, true);
                    out.push(local);
                }
            }
        }
    }

    fn block(&mut self, stmts: &[Stmt], tail: Tail) -> Block {
        let mut nodes = Vec::new();
        let mut value = None;
        let mut has_tail = false;
        // The statement around this block keeps its policy: the block's own statements
        // cannot take it.
        let outer = self.policy.take();
        for (i, stmt) in stmts.iter().enumerate() {
            let last = i + 1 == stmts.len();
            // `#[retry]` / `#[timeout]` are the macro's: taken off the statement here.
            let mut own = stmt.clone();
            let policy = policy_attrs(&mut own).and_then(|attrs| policy::take(attrs, self.errors));
            let stmt = if policy.is_some() { &own } else { stmt };
            self.policy = policy;
            self.block_stmt(stmt, last, &tail, &mut nodes, &mut value, &mut has_tail);
            if let Some(p) = self.policy.take() {
                self.errors.at(
                    p.span,
                    "`#[retry]` and `#[timeout]` go on a statement that is a yield point: a task `….await`, a `poll_until!` or a `call_nested!`",
                );
            }
        }
        self.policy = outer;
        if !has_tail {
            self.no_tail(stmts, &tail, &mut nodes);
        }
        Block { nodes, tail: value }
    }

    fn block_stmt(
        &mut self,
        stmt: &Stmt,
        last: bool,
        tail: &Tail,
        nodes: &mut Vec<Node>,
        value: &mut Option<Expr>,
        has_tail: &mut bool,
    ) {
        match stmt {
            Stmt::Item(item) => {
                scrub::item(item, self.errors);
                self.items.push(item.clone());
            }
            Stmt::Expr(expr, None) if last => {
                *has_tail = true;
                *value = self.tail(expr, tail, nodes);
            }
            Stmt::Local(local) => self.local_stmt(local, stmt, nodes),
            Stmt::Expr(expr, Some(_)) => {
                let (expr, binding) = assignment(expr);
                if !self.expr_stmt(expr, binding, nodes) {
                    scrub::stmt(stmt, self.errors);
                    nodes.push(Node::Plain(stmt.clone()));
                }
            }
            Stmt::Expr(expr, None) => {
                // A block-like expression statement (`if …{}` without `;`).
                if !self.expr_stmt(expr, Binding::Discard, nodes) {
                    scrub::stmt(stmt, self.errors);
                    nodes.push(Node::Plain(stmt.clone()));
                }
            }
            Stmt::Macro(m) => match MacroKind::of(&m.mac) {
                Some(kind) => {
                    if let Some(op) = self.macro_op(kind, &m.mac) {
                        let span = m.mac.span();
                        self.push_yield(Binding::Discard, op, None, span, nodes);
                    }
                }
                None => {
                    scrub::stmt(stmt, self.errors);
                    nodes.push(Node::Plain(stmt.clone()));
                }
            },
        }
    }

    /// A block without a tail expression in a value position has the value `()`, unless
    /// it ends by diverging.
    fn no_tail(&mut self, stmts: &[Stmt], tail: &Tail, nodes: &mut Vec<Node>) {
        let Tail::Hold(holder, _) = tail else { return };
        if stmts.last().is_some_and(diverges) {
            return;
        }
        nodes.push(Node::Plain(parse_quote!(#holder = __WfSome(());)));
    }

    /// The block's tail expression: returned as its value, or lowered when it yields.
    fn tail(&mut self, expr: &Expr, tail: &Tail, nodes: &mut Vec<Node>) -> Option<Expr> {
        if !scrub::has_yield(expr) {
            return match tail {
                Tail::Hold(holder, _) => {
                    nodes.push(Node::Plain(
                        parse_quote!(#holder = ::core::option::Option::Some(#expr);),
                    ));
                    None
                }
                Tail::Ignore | Tail::Return(_) => Some(expr.clone()),
            };
        }
        // `for`, `while` and an `if` without `else` have the value `()`: as a tail they are
        // statements (a workflow returning `()`, or a branch whose value is `()`).
        let unit = matches!(expr, Expr::ForLoop(_) | Expr::While(_))
            || matches!(expr, Expr::If(i) if i.else_branch.is_none());
        if unit && !matches!(tail, Tail::Ignore) {
            if !self.expr_stmt(expr, Binding::Discard, nodes) {
                scrub::expr(expr, None, self.errors);
            }
            if let Tail::Hold(holder, _) = tail {
                nodes.push(Node::Plain(parse_quote!(#holder = __WfSome(());)));
            }
            return None;
        }
        let ty = match tail {
            Tail::Ignore => {
                // The value of a statement-position construct is dropped.
                if !self.expr_stmt(expr, Binding::Discard, nodes) {
                    scrub::expr(expr, None, self.errors);
                }
                return None;
            }
            Tail::Return(ty) | Tail::Hold(_, ty) => ty.clone(),
        };
        // `EXPR` (yielding) → `let __wf_ret: T = EXPR;` then the value `__wf_ret`.
        let value = if matches!(tail, Tail::Return(_)) {
            Ident::new(RET, Span::call_site())
        } else {
            self.fresh("value")
        };
        let binding = Binding::Let {
            pat: parse_quote!(#value),
            ty: Some(ty.clone()),
        };
        if let Some((op, q, span)) = self.yield_expr(expr) {
            self.push_yield(binding, op, q, span, nodes);
        } else if !self.construct(expr, Some((value.clone(), ty)), nodes) {
            scrub::expr(expr, None, self.errors);
            return None;
        }
        match tail {
            Tail::Hold(holder, _) => {
                nodes.push(Node::Plain(
                    parse_quote!(#holder = ::core::option::Option::Some(#value);),
                ));
                None
            }
            _ => Some(parse_quote!(#value)),
        }
    }

    fn local_stmt(&mut self, local: &syn::Local, stmt: &Stmt, nodes: &mut Vec<Node>) {
        let (pat, ty) = match &local.pat {
            Pat::Type(pt) => ((*pt.pat).clone(), Some((*pt.ty).clone())),
            pat => (pat.clone(), None),
        };
        let Some(init) = local.init.as_ref().filter(|i| scrub::has_yield(&i.expr)) else {
            scrub::stmt(stmt, self.errors);
            nodes.push(Node::Plain(stmt.clone()));
            self.bind_pattern(&pat, ty.as_ref(), false);
            return;
        };
        if let Some((else_token, _)) = &init.diverge {
            self.errors.spanned(
                else_token,
                "`let … else` is not supported on a yield point; bind the value, then `match` on it",
            );
            return;
        }
        let binding = Binding::Let {
            pat: pat.clone(),
            ty: ty.clone(),
        };
        if self.expr_stmt(&init.expr, binding, nodes) {
            return;
        }
        // `let x: T = if/match/loop { … }` with yields inside.
        if is_construct(&init.expr) {
            let Some(ty) = ty else {
                self.errors.spanned(&pat, "the value of a branch or loop that contains a yield point is persisted: annotate the binding, `let value: Type = …;`");
                return;
            };
            let value = self.fresh("value");
            self.construct(&init.expr, Some((value.clone(), ty.clone())), nodes);
            nodes.push(Node::Plain(parse_quote!(let #pat: #ty = #value;)));
            self.bind_pattern(&pat, Some(&ty), false);
            return;
        }
        scrub::stmt(stmt, self.errors);
    }

    /// A statement that is a yield point or a construct containing one; `false` if it is
    /// neither (plain code, left to the caller).
    fn expr_stmt(&mut self, expr: &Expr, binding: Binding, nodes: &mut Vec<Node>) -> bool {
        if let Some((op, q, span)) = self.yield_expr(expr) {
            if let (true, Binding::Let { pat, .. }) = (is_sleep(expr), &binding) {
                self.errors.spanned(
                    pat,
                    "`sleep!` has no value to bind; write `sleep!(duration);`",
                );
            }
            self.push_yield(binding, op, q, span, nodes);
            return true;
        }
        if matches!(binding, Binding::Discard) && is_construct(expr) && scrub::has_yield(expr) {
            return self.construct(expr, None, nodes);
        }
        false
    }

    fn push_yield(
        &mut self,
        binding: Binding,
        op: Op,
        try_token: Option<Token![?]>,
        span: Span,
        nodes: &mut Vec<Node>,
    ) {
        if let Op::Callback(_) = &op {
            check_callback_binding(&binding, self.errors);
        }
        let scope_before = self.scope.clone();
        if let Binding::Let { pat, ty } = &binding {
            let (pat, ty) = (pat.clone(), ty.clone());
            self.bind_pattern(&pat, ty.as_ref(), false);
        }
        nodes.push(Node::Yield(self.yields.len()));
        self.yields.push(Yield {
            binding,
            op,
            try_token,
            span,
            scope_before,
            scope_after: self.scope.clone(),
            fors: self.fors.clone(),
            policy: self.policy.take(),
        });
    }

    /// `X.await`, `X.await?`, `poll_until!(…)`, `poll_until!(…)?`, … as an operation.
    /// `None` for anything else; an invalid macro call is reported and also gives `None`,
    /// after marking the expression handled so it is not reported twice.
    fn yield_expr(&mut self, expr: &Expr) -> Option<(Op, Option<Token![?]>, Span)> {
        let (inner, try_token) = match expr {
            Expr::Try(t) => (&*t.expr, Some(t.question_token)),
            e => (e, None),
        };
        let op = match inner {
            Expr::Await(a) => {
                scrub::nested(&a.base, self.errors);
                Op::Task {
                    future: (*a.base).clone(),
                    await_span: a.await_token.span,
                }
            }
            Expr::Macro(m) => {
                let kind = MacroKind::of(&m.mac)?;
                // On error a harmless stand-in keeps the statement out of plain code.
                self.macro_op(kind, &m.mac)
                    .unwrap_or_else(|| Op::Wait(parse_quote!(::core::time::Duration::ZERO)))
            }
            _ => return None,
        };
        if let (true, Some(q)) = (is_sleep(inner), &try_token) {
            self.errors
                .spanned(q, "`sleep!` cannot fail; remove the `?`");
        }
        Some((op, try_token, inner.span()))
    }

    /// The operation of one of our macros; `None` once its error is reported.
    fn macro_op(&mut self, kind: MacroKind, mac: &Macro) -> Option<Op> {
        let parsed = match kind {
            MacroKind::Poll => yields::poll(mac).map(|p| Op::Poll(Box::new(p))),
            MacroKind::Nested => yields::nested(mac).map(|n| Op::Child(Box::new(n))),
            MacroKind::Sleep => yields::sleep(mac).map(Op::Wait),
            MacroKind::Callback => yields::callback(mac).map(|c| Op::Callback(Box::new(c))),
        };
        match parsed {
            Ok(op) => {
                match &op {
                    Op::Poll(p) => {
                        for e in [&p.call, &p.ready, &p.every] {
                            scrub::nested(e, self.errors);
                        }
                        for e in [&p.timeout, &p.max_attempts, &p.max_errors]
                            .into_iter()
                            .flatten()
                        {
                            scrub::nested(e, self.errors);
                        }
                    }
                    Op::Child(n) => {
                        for call in n.calls() {
                            call.args.iter().for_each(|a| scrub::nested(a, self.errors));
                        }
                        if let Nested::Map { iter, .. } = &**n {
                            scrub::nested(iter, self.errors);
                        }
                    }
                    Op::Wait(d) => scrub::nested(d, self.errors),
                    Op::Callback(c) => {
                        scrub::nested(&Expr::Closure(c.send.clone()), self.errors);
                        for e in [Some(&c.timeout), c.heartbeat.as_ref()]
                            .into_iter()
                            .flatten()
                        {
                            scrub::nested(e, self.errors);
                        }
                    }
                    Op::Task { .. } => {}
                }
                Some(op)
            }
            Err(e) => {
                self.errors.push(e);
                None
            }
        }
    }

    /// An `if`, `match`, loop or block containing yield points, as a node. `value` is the
    /// holder its value goes to, when it has one. `false` if `expr` is no such construct.
    fn construct(
        &mut self,
        expr: &Expr,
        value: Option<(Ident, Type)>,
        nodes: &mut Vec<Node>,
    ) -> bool {
        let tail = match &value {
            Some((v, ty)) => {
                let holder = self.fresh("hold");
                let holder_ty: Type = parse_quote!(::core::option::Option<#ty>);
                nodes.push(Node::Plain(
                    parse_quote!(let mut #holder: #holder_ty = __WfNone;),
                ));
                let local = self.local(holder.clone(), Some(holder_ty), true, false);
                self.scope.push(local);
                Some((holder, ty.clone(), v.clone()))
            }
            None => None,
        };
        let block_tail = match &tail {
            Some((holder, ty, _)) => Tail::Hold(holder.clone(), ty.clone()),
            None => Tail::Ignore,
        };
        let node = match expr {
            Expr::If(e) => Node::If(Box::new(self.if_node(e, &block_tail))),
            Expr::Match(e) => {
                scrub::expr(&e.expr, Some("the scrutinee of a `match`"), self.errors);
                let arms = e
                    .arms
                    .iter()
                    .map(|arm| {
                        if let Some((_, g)) = &arm.guard {
                            scrub::expr(g, Some("a `match` guard"), self.errors);
                        }
                        let body = self.scoped(|a| {
                            a.bind_pattern(&arm.pat, None, true);
                            a.branch(&arm.body, &block_tail)
                        });
                        Arm {
                            pat: arm.pat.clone(),
                            guard: arm.guard.as_ref().map(|(_, g)| (**g).clone()),
                            body,
                        }
                    })
                    .collect();
                Node::Match(Box::new(Match {
                    expr: (*e.expr).clone(),
                    arms,
                }))
            }
            Expr::Block(e) if e.attrs.is_empty() => {
                let mut block = e.block.clone();
                if let (Some(label), Some((holder, _, _))) = (&e.label, &tail) {
                    // `break 'b value` leaves a value block: it goes to the holder, as a
                    // `break value` of a loop does (an unlabelled `break` is never the
                    // block's, hence the depth of 1).
                    LabelLoop {
                        label: &label.name,
                        holder: Some(holder),
                        user_label: None,
                        depth: 1,
                    }
                    .visit_block_mut(&mut block);
                }
                let body = self.scoped(|a| a.block(&block.stmts, block_tail.clone()));
                Node::Block(e.label.clone(), body)
            }
            Expr::Loop(_) | Expr::While(_) | Expr::ForLoop(_) => {
                let holder = tail.as_ref().map(|(h, _, _)| h.clone());
                match self.loop_node(expr, holder) {
                    Some(l) => Node::Loop(Box::new(l)),
                    None => return true,
                }
            }
            _ => return false,
        };
        nodes.push(node);
        if let Some((holder, ty, value)) = tail {
            nodes.push(Node::Plain(parse_quote! {
                let #value: #ty = match #holder {
                    __WfSome(__wf_value) => __wf_value,
                    __WfNone => ::core::unreachable!("every way out of the construct assigns its value"),
                };
            }));
            let local = self.local(value, Some(ty), false, false);
            self.scope.push(local);
        }
        true
    }

    /// A branch body: a block expression (`{ … }`) or, in a `match` arm, any expression.
    fn branch(&mut self, body: &Expr, tail: &Tail) -> Block {
        match body {
            Expr::Block(b) if b.label.is_none() && b.attrs.is_empty() => {
                self.block(&b.block.stmts, tail.clone())
            }
            e => self.block(&[Stmt::Expr(e.clone(), None)], tail.clone()),
        }
    }

    fn if_node(&mut self, e: &syn::ExprIf, tail: &Tail) -> If {
        let then = self.scoped(|a| {
            match &*e.cond {
                Expr::Let(l) => {
                    scrub::expr(&l.expr, Some("the condition of an `if let`"), a.errors);
                    a.bind_pattern(&l.pat, None, true);
                }
                cond => scrub::expr(cond, Some("the condition of an `if`"), a.errors),
            }
            a.block(&e.then_branch.stmts, tail.clone())
        });
        let els = match &e.else_branch {
            None => {
                if let Tail::Hold(..) = tail {
                    self.errors
                        .spanned(e.if_token, "an `if` whose value is used needs an `else`");
                }
                None
            }
            Some((_, els)) => match &**els {
                Expr::If(inner) => Some(Else::If(Box::new(self.if_node(inner, tail)))),
                Expr::Block(b) => Some(Else::Block(
                    self.scoped(|a| a.block(&b.block.stmts, tail.clone())),
                )),
                other => {
                    self.errors.spanned(other, "expected a block after `else`");
                    None
                }
            },
        };
        If {
            cond: (*e.cond).clone(),
            then,
            els,
        }
    }

    fn loop_node(&mut self, expr: &Expr, holder: Option<Ident>) -> Option<Loop> {
        let (user_label, body) = match expr {
            Expr::Loop(l) => (l.label.as_ref(), &l.body),
            Expr::While(w) => (w.label.as_ref(), &w.body),
            Expr::ForLoop(f) => (f.label.as_ref(), &f.body),
            _ => return None,
        };
        let label = match user_label {
            Some(l) => l.name.clone(),
            None => {
                let name = self.fresh("loop");
                Lifetime::new(&format!("'{name}"), Span::call_site())
            }
        };
        if holder.is_some() && !matches!(expr, Expr::Loop(_)) {
            self.errors.spanned(
                expr,
                "only a `loop` has a value; bind the result inside the loop instead",
            );
            return None;
        }
        // Aim every `break`/`continue` of this loop at its label (and a `break value`
        // at the holder), so resumed code can redirect them.
        let mut body = body.clone();
        LabelLoop {
            label: &label,
            holder: holder.as_ref(),
            user_label: user_label.map(|l| &l.name),
            depth: 0,
        }
        .visit_block_mut(&mut body);
        let kind = match expr {
            Expr::Loop(_) => LoopKind::Loop,
            Expr::While(w) => {
                scrub::while_condition(&w.cond, self.errors);
                LoopKind::While((*w.cond).clone())
            }
            Expr::ForLoop(f) => {
                scrub::expr(&f.expr, Some("the iterator of a `for`"), self.errors);
                let range = match &*f.expr {
                    Expr::Range(r) if r.start.is_some() && r.end.is_some() => match r.limits {
                        syn::RangeLimits::HalfOpen(_) => Range::HalfOpen,
                        syn::RangeLimits::Closed(_) => Range::Closed,
                    },
                    Expr::Range(r) => {
                        self.errors.spanned(r, "a `for` loop that yields iterates over a bounded range (`a..b` or `a..=b`): its position is persisted");
                        Range::No
                    }
                    iter => {
                        check_owned_iter(iter, self.errors);
                        Range::No
                    }
                };
                let item = self.item_type(&f.expr, range);
                if item.is_none() {
                    check_typed_literals(&f.expr, self.errors);
                }
                let state = self.fresh("for");
                let wf = self.wf;
                let local = Local {
                    runtime: true,
                    ..self.local(
                        state.clone(),
                        Some(parse_quote!(#wf::codegen::ForIter)),
                        true,
                        false,
                    )
                };
                self.scope.push(local);
                LoopKind::For {
                    pat: (*f.pat).clone(),
                    iter: (*f.expr).clone(),
                    range,
                    state,
                    item,
                }
            }
            _ => return None,
        };
        let id = self.loops;
        self.loops += 1;
        let body = self.scoped(|a| {
            // A `for` pattern is not persisted: resumed code binds it again from the
            // loop's state (its current item).
            if let LoopKind::While(Expr::Let(l)) = &kind {
                a.bind_pattern(&l.pat, None, true);
            }
            if let LoopKind::For {
                pat, state, item, ..
            } = &kind
            {
                let names: Vec<String> =
                    uses::pat_names(pat).iter().map(|i| i.to_string()).collect();
                a.scope.retain(|l| !names.contains(&l.name()));
                let locals_before = a.next_id;
                a.fors.push(ForLoop {
                    pat: pat.clone(),
                    state: state.clone(),
                    item: item.clone(),
                    locals_before,
                });
            }
            let block = a.block(&body.stmts, Tail::Ignore);
            if let LoopKind::For { .. } = &kind {
                a.fors.pop();
            }
            block
        });
        Some(Loop {
            id,
            label,
            kind,
            body,
        })
    }

    /// The type of the items of a `for` loop's iterator, when the code shows it: a
    /// suffixed or typed range bound, or a local collection with a declared type.
    fn item_type(&self, iter: &Expr, range: Range) -> Option<Type> {
        if range != Range::No {
            let Expr::Range(r) = iter else { return None };
            let bounds = [r.start.as_deref(), r.end.as_deref()];
            if let Some(ty) = bounds
                .into_iter()
                .flatten()
                .find_map(|b| self.value_type(b))
            {
                return Some(ty);
            }
            // Two unsuffixed literals: Rust's default integer.
            let literal = |b: Option<&Expr>| matches!(b, Some(Expr::Lit(_)));
            return (literal(bounds[0]) && literal(bounds[1])).then(|| parse_quote!(i32));
        }
        self.collection_item(iter)
    }

    /// The type of a value, where the code shows it: a typed local, a suffixed literal,
    /// a cast, or arithmetic on one of those (`n + 1`, `(a % 3)`, `len as u32`).
    fn value_type(&self, e: &Expr) -> Option<Type> {
        match e {
            Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Int(i),
                ..
            }) if !i.suffix().is_empty() => syn::parse_str(i.suffix()).ok(),
            Expr::Path(_) => self.local_type(e),
            Expr::Cast(c) => Some((*c.ty).clone()),
            Expr::Paren(p) => self.value_type(&p.expr),
            Expr::Group(g) => self.value_type(&g.expr),
            Expr::Unary(u) if matches!(u.op, syn::UnOp::Neg(_)) => self.value_type(&u.expr),
            Expr::Binary(b) => {
                use syn::BinOp::*;
                match b.op {
                    Add(_) | Sub(_) | Mul(_) | Div(_) | Rem(_) | BitAnd(_) | BitOr(_)
                    | BitXor(_) => self
                        .value_type(&b.left)
                        .or_else(|| self.value_type(&b.right)),
                    Shl(_) | Shr(_) => self.value_type(&b.left),
                    _ => None,
                }
            }
            Expr::MethodCall(m)
                if m.args.is_empty() && (m.method == "len" || m.method == "count") =>
            {
                Some(parse_quote!(usize))
            }
            _ => None,
        }
    }

    /// The item type of a collection expression: a typed local (`items`), a clone or
    /// `into_iter()` of one, or `vec![…]` / `[…]` of values whose type shows.
    fn collection_item(&self, e: &Expr) -> Option<Type> {
        match e {
            Expr::Path(_) => element_type(&self.local_type(e)?),
            Expr::Paren(p) => self.collection_item(&p.expr),
            Expr::MethodCall(m)
                if m.args.is_empty()
                    && (m.method == "clone" || m.method == "into_iter" || m.method == "to_vec") =>
            {
                self.collection_item(&m.receiver)
            }
            Expr::Array(a) => a.elems.iter().find_map(|v| self.value_type(v)),
            Expr::Macro(m) if m.mac.path.is_ident("vec") => {
                let items = m
                    .mac
                    .parse_body_with(
                        syn::punctuated::Punctuated::<Expr, Token![,]>::parse_terminated,
                    )
                    .ok()?;
                items.iter().find_map(|v| self.value_type(v))
            }
            _ => None,
        }
    }

    /// The declared type of the local a path names: a `let` or a parameter, or the
    /// pattern of an enclosing `for` whose item type is known (unless a local declared
    /// inside that loop shadows it).
    fn local_type(&self, e: &Expr) -> Option<Type> {
        let Expr::Path(p) = e else { return None };
        let ident = p.path.get_ident()?;
        let local = self.scope.iter().rev().find(|l| &l.ident == ident);
        let pattern =
            self.fors.iter().rev().find(
                |f| matches!(&f.pat, Pat::Ident(i) if &i.ident == ident && i.subpat.is_none()),
            );
        match (local, pattern) {
            (Some(l), Some(f)) if l.id <= f.locals_before => f.item.clone(),
            (Some(l), _) => l.ty.clone(),
            (None, Some(f)) => f.item.clone(),
            (None, None) => None,
        }
    }
}

/// The value of a `wait_for_callback!` is checked, when its token is completed, against
/// the type it is bound with: that type must show (`_` discards any value).
fn check_callback_binding(binding: &Binding, errors: &mut Errors) {
    match binding {
        Binding::Let { pat, ty: None } => errors.spanned(
            pat,
            "the value a callback is completed with is checked against the type it is bound with: annotate it, `let value: Type = wait_for_callback!(…)?;`",
        ),
        Binding::Assign { place, .. } => errors.spanned(
            place,
            "bind the value of `wait_for_callback!` with a typed `let` (`let value: Type = wait_for_callback!(…)?;`): the value a callback is completed with is checked against that type",
        ),
        Binding::Let { ty: Some(_), .. } | Binding::Discard => {}
    }
}

fn is_sleep(expr: &Expr) -> bool {
    let expr = match expr {
        Expr::Try(t) => &*t.expr,
        e => e,
    };
    matches!(expr, Expr::Macro(m) if MacroKind::of(&m.mac) == Some(MacroKind::Sleep))
}

/// The item type of a collection type: `Vec<T>` → `T`, `HashMap<K, V>` → `(K, V)`, ….
fn element_type(ty: &Type) -> Option<Type> {
    match ty {
        Type::Array(a) => Some((*a.elem).clone()),
        Type::Path(p) => {
            let last = p.path.segments.last()?;
            let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
                return None;
            };
            let types: Vec<&Type> = args
                .args
                .iter()
                .filter_map(|a| match a {
                    syn::GenericArgument::Type(t) => Some(t),
                    _ => None,
                })
                .collect();
            match (last.ident.to_string().as_str(), types.as_slice()) {
                (
                    "Vec" | "VecDeque" | "BTreeSet" | "HashSet" | "Option" | "BinaryHeap"
                    | "LinkedList",
                    [t],
                ) => Some((*t).clone()),
                ("HashMap" | "BTreeMap", [k, v]) => Some(parse_quote!((#k, #v))),
                _ => None,
            }
        }
        _ => None,
    }
}

/// `place = YIELD` / `place += YIELD` as the yield and where its value goes.
fn assignment(expr: &Expr) -> (&Expr, Binding) {
    match expr {
        Expr::Assign(a) if scrub::has_yield(&a.right) && !scrub::has_yield(&a.left) => (
            &a.right,
            Binding::Assign {
                place: (*a.left).clone(),
                op: None,
            },
        ),
        Expr::Binary(b)
            if is_compound(&b.op) && scrub::has_yield(&b.right) && !scrub::has_yield(&b.left) =>
        {
            (
                &b.right,
                Binding::Assign {
                    place: (*b.left).clone(),
                    op: Some(b.op),
                },
            )
        }
        e => (e, Binding::Discard),
    }
}

fn is_compound(op: &syn::BinOp) -> bool {
    use syn::BinOp::*;
    matches!(
        op,
        AddAssign(_)
            | SubAssign(_)
            | MulAssign(_)
            | DivAssign(_)
            | RemAssign(_)
            | BitXorAssign(_)
            | BitAndAssign(_)
            | BitOrAssign(_)
            | ShlAssign(_)
            | ShrAssign(_)
    )
}

fn is_construct(expr: &Expr) -> bool {
    matches!(
        expr,
        Expr::If(_) | Expr::Match(_) | Expr::Loop(_) | Expr::While(_) | Expr::ForLoop(_)
    ) || matches!(expr, Expr::Block(b) if b.attrs.is_empty())
}

/// Whether a statement always leaves the block (so the block has no value of its own).
fn diverges(stmt: &Stmt) -> bool {
    match stmt {
        Stmt::Expr(Expr::Return(_) | Expr::Break(_) | Expr::Continue(_), _) => true,
        Stmt::Macro(m) => ["panic", "unreachable", "todo", "unimplemented"]
            .iter()
            .any(|n| m.mac.path.is_ident(n)),
        _ => false,
    }
}

/// Iterating a borrow cannot be persisted: the items must be owned values.
/// A `for` over `vec![1, 2]` or `[1.5, 2.0]`: unsuffixed literals carry no type, and the
/// items are decoded again where the loop resumes, from a type that must show in the code.
/// (rustc would otherwise report a type mismatch at the first use of the item.)
fn check_typed_literals(iter: &Expr, errors: &mut Errors) {
    let untyped = |e: &Expr| match e {
        Expr::Lit(l) => match &l.lit {
            syn::Lit::Int(i) => i.suffix().is_empty(),
            syn::Lit::Float(f) => f.suffix().is_empty(),
            _ => false,
        },
        _ => false,
    };
    let elems: Vec<Expr> = match iter {
        Expr::Array(a) => a.elems.iter().cloned().collect(),
        Expr::Macro(m) if m.mac.path.is_ident("vec") => m
            .mac
            .parse_body_with(syn::punctuated::Punctuated::<Expr, Token![,]>::parse_terminated)
            .map(|p| p.into_iter().collect())
            .unwrap_or_default(),
        _ => return,
    };
    if !elems.is_empty() && elems.iter().all(untyped) {
        errors.spanned(
            iter,
            "the items of this `for` loop are persisted and decoded again where it resumes, so their type must show: give a literal a suffix (`vec![1u32, 2, 3]`) or bind the items to a typed local first (`let ids: Vec<u32> = vec![1, 2, 3];`)",
        );
    }
}

fn check_owned_iter(iter: &Expr, errors: &mut Errors) {
    const BORROWING: &[&str] = &[
        "iter",
        "iter_mut",
        "chars",
        "bytes",
        "char_indices",
        "lines",
        "split",
        "split_whitespace",
        "keys",
        "values",
        "values_mut",
        "windows",
        "chunks",
        "drain",
        "as_slice",
        "as_mut_slice",
        "as_ref",
        "as_str",
        "as_bytes",
        "split_terminator",
        "rsplit",
        "matches",
    ];
    let borrowed = match iter {
        Expr::Reference(_) => true,
        Expr::MethodCall(m) => BORROWING.iter().any(|b| m.method == b),
        _ => false,
    };
    if borrowed {
        errors.spanned(
            iter,
            "a `for` loop that yields persists its remaining items, so it must iterate over owned values: iterate over an owned collection (`items`, `items.clone()`) or a range",
        );
    }
}

/// Labels the `break`s and `continue`s that target one loop, and turns its `break value`s
/// into assignments to the loop's value holder.
struct LabelLoop<'a> {
    label: &'a Lifetime,
    holder: Option<&'a Ident>,
    user_label: Option<&'a Lifetime>,
    /// Depth of nested loops (an unlabelled `break` there is theirs).
    depth: usize,
}

impl LabelLoop<'_> {
    fn targets_us(&self, label: Option<&Lifetime>) -> bool {
        match label {
            None => self.depth == 0,
            Some(l) => Some(l) == self.user_label || l == self.label,
        }
    }
}

impl VisitMut for LabelLoop<'_> {
    fn visit_expr_mut(&mut self, e: &mut Expr) {
        match e {
            Expr::Closure(_) | Expr::Async(_) => {}
            Expr::Loop(_) | Expr::While(_) | Expr::ForLoop(_) => {
                self.depth += 1;
                visit_mut::visit_expr_mut(self, e);
                self.depth -= 1;
            }
            Expr::Break(b) if self.targets_us(b.label.as_ref()) => {
                if let Some(value) = &mut b.expr {
                    self.visit_expr_mut(value);
                }
                let label = self.label;
                *e = match (b.expr.take(), self.holder) {
                    (Some(value), Some(holder)) => parse_quote!({
                        #holder = ::core::option::Option::Some(#value);
                        break #label
                    }),
                    (Some(value), None) => parse_quote!(break #label #value),
                    (None, _) => parse_quote!(break #label),
                };
            }
            Expr::Continue(c) if self.targets_us(c.label.as_ref()) => {
                let label = self.label;
                *e = parse_quote!(continue #label);
            }
            _ => visit_mut::visit_expr_mut(self, e),
        }
    }
    fn visit_item_mut(&mut self, _: &mut Item) {}
}

/// The attributes of a statement where `#[retry]` / `#[timeout]` may be: a `let`'s, or
/// those of the expression or macro of an expression statement.
fn policy_attrs(stmt: &mut Stmt) -> Option<&mut Vec<syn::Attribute>> {
    match stmt {
        Stmt::Local(l) => Some(&mut l.attrs),
        Stmt::Macro(m) => Some(&mut m.attrs),
        Stmt::Expr(e, _) => expr_attrs(e),
        Stmt::Item(_) => None,
    }
}

fn expr_attrs(e: &mut Expr) -> Option<&mut Vec<syn::Attribute>> {
    Some(match e {
        Expr::Await(x) => &mut x.attrs,
        Expr::Try(x) => &mut x.attrs,
        Expr::Macro(x) => &mut x.attrs,
        Expr::Assign(x) => &mut x.attrs,
        Expr::Binary(x) => &mut x.attrs,
        Expr::MethodCall(x) => &mut x.attrs,
        Expr::Call(x) => &mut x.attrs,
        Expr::If(x) => &mut x.attrs,
        Expr::Match(x) => &mut x.attrs,
        Expr::Loop(x) => &mut x.attrs,
        Expr::While(x) => &mut x.attrs,
        Expr::ForLoop(x) => &mut x.attrs,
        Expr::Block(x) => &mut x.attrs,
        _ => return None,
    })
}
