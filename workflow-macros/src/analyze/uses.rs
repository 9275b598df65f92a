//! Which names a piece of code reads before binding them itself: the liveness analysis
//! behind "only the locals used after a yield point are persisted there".

use std::collections::BTreeSet;

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::{self, Visit};
use syn::{Expr, Item, Macro, Pat};

/// The free names of `block`: read before (or without) being bound inside it. Shadowing
/// is respected (`let x = …; x` does not read an outer `x`); macro bodies are opaque
/// tokens, so every identifier in them counts, which can only persist more.
///
/// Names starting with `marker` are not free names but placeholders: each use is
/// returned apart, with the names bound where it is.
pub(crate) fn free_names(
    block: &syn::Block,
    marker: &str,
) -> (BTreeSet<String>, Vec<(String, BTreeSet<String>)>) {
    let mut v = FreeUses {
        marker,
        ..FreeUses::default()
    };
    v.visit_block(block);
    (v.free, v.markers)
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

#[derive(Default)]
struct FreeUses<'m> {
    frames: Vec<Vec<String>>,
    free: BTreeSet<String>,
    marker: &'m str,
    markers: Vec<(String, BTreeSet<String>)>,
}

impl FreeUses<'_> {
    fn bound(&self, name: &str) -> bool {
        self.frames.iter().any(|f| f.iter().any(|n| n == name))
    }

    fn use_name(&mut self, name: String) {
        if !self.marker.is_empty() && name.starts_with(self.marker) {
            let bound = self.frames.iter().flatten().cloned().collect();
            self.markers.push((name, bound));
        } else if !self.bound(&name) {
            self.free.insert(name);
        }
    }

    fn scoped(&mut self, pats: &[&Pat], f: impl FnOnce(&mut Self)) {
        let names = pats
            .iter()
            .flat_map(|p| pat_names(p))
            .map(|i| i.to_string())
            .collect();
        self.frames.push(names);
        f(self);
        self.frames.pop();
    }
}

impl<'ast> Visit<'ast> for FreeUses<'_> {
    fn visit_expr_path(&mut self, e: &'ast syn::ExprPath) {
        if e.qself.is_none() {
            if let Some(ident) = e.path.get_ident() {
                self.use_name(ident.to_string());
            }
        }
        visit::visit_expr_path(self, e);
    }

    fn visit_macro(&mut self, m: &'ast Macro) {
        let mut names = BTreeSet::new();
        macro_uses(m.tokens.clone(), &mut names);
        for name in names {
            self.use_name(name);
        }
    }

    fn visit_block(&mut self, b: &'ast syn::Block) {
        self.frames.push(Vec::new());
        for stmt in &b.stmts {
            match stmt {
                syn::Stmt::Local(local) => {
                    if let Some(init) = &local.init {
                        self.visit_expr(&init.expr);
                        if let Some((_, diverge)) = &init.diverge {
                            self.visit_expr(diverge);
                        }
                    }
                    let names = pat_names(&local.pat).into_iter().map(|i| i.to_string());
                    if let Some(frame) = self.frames.last_mut() {
                        frame.extend(names);
                    }
                }
                other => self.visit_stmt(other),
            }
        }
        self.frames.pop();
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
