//! Which names a piece of code reads before binding them itself: the liveness analysis
//! behind "only the locals used after a yield point are persisted there".
//!
//! The rules: shadowing is respected (`let x = …; x` does not read an outer `x`); macro
//! bodies are opaque tokens, so every identifier in them counts, which can only persist
//! more; nested items are their own.

use std::collections::BTreeSet;

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::{self, Visit};
use syn::{Expr, Item, Macro, Pat};

/// The free names of parsed `block`, and the placeholders in it (names starting with
/// `marker`), each with the names bound where it is: what the macro's tests compare
/// the names written along with generated code to.
#[cfg(test)]
pub(crate) fn free_names(block: &syn::Block, marker: &str) -> Free {
    Names::of_block(block).free(marker)
}

/// What [`Names::free`] finds: the free names, and each placeholder with the names
/// bound where it is.
pub(crate) type Free = (BTreeSet<String>, Vec<(String, BTreeSet<String>)>);

/// What a piece of code does with names, in its order: the names it reads, the `let`s
/// that bind names for the rest of their block, and its scopes. Recorded from parsed code
/// ([`Names::of_block`], [`Names::of_stmt`], [`Names::of_expr`]), or written alongside
/// generated code, so that its free names are known without parsing it.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Names(Vec<Ev>);

#[derive(Clone, Debug, PartialEq)]
enum Ev {
    /// A name read: a path of one identifier, or an identifier in a macro's tokens.
    Read(String),
    /// A `let`: bound from here to the end of the enclosing scope.
    Let(Vec<String>),
    /// A scope, with the names bound in all of it (a closure's parameters, a match arm's
    /// pattern); the bindings made inside end with it.
    Scope(Vec<String>, Names),
}

impl Names {
    #[cfg(test)]
    pub(crate) fn of_block(block: &syn::Block) -> Names {
        let mut r = Record::default();
        r.visit_block(block);
        r.0
    }

    /// A statement as written in a block: a `let`'s names are bound after it.
    pub(crate) fn of_stmt(stmt: &syn::Stmt) -> Names {
        let mut r = Record::default();
        r.stmt(stmt);
        r.0
    }

    pub(crate) fn of_expr(expr: &Expr) -> Names {
        let mut r = Record::default();
        r.visit_expr(expr);
        r.0
    }

    /// Reads `name`.
    pub(crate) fn read(name: impl ToString) -> Names {
        Names(vec![Ev::Read(name.to_string())])
    }

    /// Binds `names` to the end of the enclosing scope, as a `let` does.
    pub(crate) fn bind<S: ToString>(names: impl IntoIterator<Item = S>) -> Names {
        Names(vec![Ev::Let(
            names.into_iter().map(|n| n.to_string()).collect(),
        )])
    }

    /// The names a `let` with this pattern binds.
    pub(crate) fn bind_pat(pat: &Pat) -> Names {
        Names::bind(pat_names(pat))
    }

    /// This code as a block of its own.
    pub(crate) fn block(self) -> Names {
        self.scoped(Vec::<String>::new())
    }

    /// This code in a scope where `bound` are bound.
    pub(crate) fn scoped<S: ToString>(self, bound: impl IntoIterator<Item = S>) -> Names {
        let bound = bound.into_iter().map(|n| n.to_string()).collect();
        Names(vec![Ev::Scope(bound, self)])
    }

    /// This code, then `next`.
    pub(crate) fn then(mut self, next: Names) -> Names {
        self.0.extend(next.0);
        self
    }

    /// The free names, and the uses of names starting with `marker` apart, each with the
    /// names bound there.
    pub(crate) fn free(&self, marker: &str) -> Free {
        let mut v = Resolve {
            marker,
            frames: vec![Vec::new()],
            free: BTreeSet::new(),
            markers: Vec::new(),
        };
        v.run(self);
        (v.free, v.markers)
    }
}

impl FromIterator<Names> for Names {
    fn from_iter<I: IntoIterator<Item = Names>>(iter: I) -> Self {
        Names(iter.into_iter().flat_map(|n| n.0).collect())
    }
}

struct Resolve<'m> {
    marker: &'m str,
    frames: Vec<Vec<String>>,
    free: BTreeSet<String>,
    markers: Vec<(String, BTreeSet<String>)>,
}

impl Resolve<'_> {
    fn run(&mut self, names: &Names) {
        for ev in &names.0 {
            match ev {
                Ev::Read(name) => {
                    if !self.marker.is_empty() && name.starts_with(self.marker) {
                        let bound = self.frames.iter().flatten().cloned().collect();
                        self.markers.push((name.clone(), bound));
                    } else if !self.frames.iter().flatten().any(|n| n == name) {
                        self.free.insert(name.clone());
                    }
                }
                Ev::Let(bound) => {
                    if let Some(frame) = self.frames.last_mut() {
                        frame.extend(bound.iter().cloned());
                    }
                }
                Ev::Scope(bound, inner) => {
                    self.frames.push(bound.clone());
                    self.run(inner);
                    self.frames.pop();
                }
            }
        }
    }
}

/// The names a pattern binds.
pub(crate) fn pat_names(pat: &Pat) -> Vec<syn::Ident> {
    let mut names = PatIdents::default();
    names.visit_pat(pat);
    names.0
}

#[derive(Default)]
struct PatIdents(Vec<syn::Ident>);

impl<'ast> Visit<'ast> for PatIdents {
    fn visit_pat_ident(&mut self, p: &'ast syn::PatIdent) {
        // `None`, `MAX`: a capitalized name in a pattern is a constant or a unit variant,
        // not a binding (the compiler decides by resolution; this is the convention).
        if !p
            .ident
            .to_string()
            .starts_with(|c: char| c.is_ascii_uppercase())
        {
            self.0.push(p.ident.clone());
        }
        visit::visit_pat_ident(self, p);
    }
    // Paths in patterns (`Some(x)`, `Status::Done`) are not bindings.
    fn visit_path(&mut self, _: &'ast syn::Path) {}
}

/// Records what parsed code does with names.
#[derive(Default)]
struct Record(Names);

impl Record {
    fn push(&mut self, ev: Ev) {
        self.0 .0.push(ev);
    }

    /// Records `f`'s events in a scope where `pats` bind their names.
    fn scoped(&mut self, pats: &[&Pat], f: impl FnOnce(&mut Self)) {
        let bound: Vec<String> = pats
            .iter()
            .flat_map(|p| pat_names(p))
            .map(|i| i.to_string())
            .collect();
        let outer = std::mem::take(&mut self.0);
        f(self);
        let inner = std::mem::replace(&mut self.0, outer);
        self.push(Ev::Scope(bound, inner));
    }

    fn stmt(&mut self, stmt: &syn::Stmt) {
        match stmt {
            syn::Stmt::Local(local) => {
                if let Some(init) = &local.init {
                    self.visit_expr(&init.expr);
                    if let Some((_, diverge)) = &init.diverge {
                        self.visit_expr(diverge);
                    }
                }
                let names = pat_names(&local.pat).into_iter().map(|i| i.to_string());
                self.push(Ev::Let(names.collect()));
            }
            other => self.visit_stmt(other),
        }
    }
}

impl<'ast> Visit<'ast> for Record {
    fn visit_expr_path(&mut self, e: &'ast syn::ExprPath) {
        if e.qself.is_none() {
            if let Some(ident) = e.path.get_ident() {
                self.push(Ev::Read(ident.to_string()));
            }
        }
        visit::visit_expr_path(self, e);
    }

    fn visit_macro(&mut self, m: &'ast Macro) {
        let mut names = BTreeSet::new();
        macro_uses(m.tokens.clone(), &mut names);
        for name in names {
            self.push(Ev::Read(name));
        }
    }

    fn visit_block(&mut self, b: &'ast syn::Block) {
        self.scoped(&[], |s| {
            for stmt in &b.stmts {
                s.stmt(stmt);
            }
        });
    }

    fn visit_expr_closure(&mut self, e: &'ast syn::ExprClosure) {
        let pats: Vec<&Pat> = e.inputs.iter().collect();
        self.scoped(&pats, |s| s.visit_expr(&e.body));
    }

    fn visit_arm(&mut self, arm: &'ast syn::Arm) {
        self.scoped(&[&arm.pat], |s| {
            if let Some((_, guard)) = &arm.guard {
                s.visit_expr(guard);
            }
            s.visit_expr(&arm.body);
        });
    }

    fn visit_expr_for_loop(&mut self, e: &'ast syn::ExprForLoop) {
        self.visit_expr(&e.expr);
        self.scoped(&[&e.pat], |s| s.visit_block(&e.body));
    }

    fn visit_expr_if(&mut self, e: &'ast syn::ExprIf) {
        match &*e.cond {
            Expr::Let(l) => {
                self.visit_expr(&l.expr);
                self.scoped(&[&l.pat], |s| s.visit_block(&e.then_branch));
            }
            cond => {
                self.visit_expr(cond);
                self.visit_block(&e.then_branch);
            }
        }
        if let Some((_, els)) = &e.else_branch {
            self.visit_expr(els);
        }
    }

    fn visit_expr_while(&mut self, e: &'ast syn::ExprWhile) {
        match &*e.cond {
            Expr::Let(l) => {
                self.visit_expr(&l.expr);
                self.scoped(&[&l.pat], |s| s.visit_block(&e.body));
            }
            cond => {
                self.visit_expr(cond);
                self.visit_block(&e.body);
            }
        }
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
