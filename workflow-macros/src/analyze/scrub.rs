//! Yield points where they cannot be lowered: reported with what to write instead.

use proc_macro2::Span;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::visit::{self, Visit};
use syn::{Expr, Item, Macro, Stmt, Token};

use crate::errors::Errors;
use crate::yields::MacroKind;

/// Reports every yield point in plain code (code the lowering treats as opaque).
pub(crate) fn stmt(stmt: &Stmt, errors: &mut Errors) {
    Scrub::new(errors, None).visit_stmt(stmt);
}

/// Same, for an expression; `context` names where it sits (`"the condition of an if"`).
pub(crate) fn expr(expr: &Expr, context: Option<&'static str>, errors: &mut Errors) {
    Scrub::new(errors, context).visit_expr(expr);
}

/// The condition of a `while` or `while let` loop that yields: a yield point there would
/// run on every iteration without a checkpoint. Its message shows the whole loop
/// rewritten, with the user's own pattern and expression: "bind it first" alone, applied
/// literally, fetches once before the loop and then loops forever.
pub(crate) fn while_condition(cond: &Expr, errors: &mut Errors) {
    let (context, rewrite) = match cond {
        Expr::Let(l) => {
            let pat = text(&l.pat);
            let ty = match &*l.pat {
                syn::Pat::TupleStruct(p) if p.path.is_ident("Some") => "Option<T>",
                syn::Pat::Ident(p) if p.ident == "None" => "Option<T>",
                syn::Pat::Path(p) if p.path.is_ident("None") => "Option<T>",
                syn::Pat::TupleStruct(p) if p.path.is_ident("Ok") || p.path.is_ident("Err") => {
                    "Result<T, E>"
                }
                _ => "Type",
            };
            let expr = text(&l.expr);
            (
                "the condition of a `while let`",
                format!("loop {{ let next: {ty} = {expr}; let {pat} = next else {{ break }}; … }}"),
            )
        }
        cond => {
            let expr = text(cond);
            (
                "the condition of a `while`",
                format!("loop {{ let go: bool = {expr}; if !go {{ break }} … }}"),
            )
        }
    };
    let mut scrub = Scrub::new(errors, Some(context));
    scrub.hint = Some(format!(
        "fetch the value inside the loop, as a statement of its own: `{rewrite}`"
    ));
    scrub.visit_expr(match cond {
        Expr::Let(l) => &l.expr,
        cond => cond,
    });
}

/// The user's text of `tokens`: each token tree as written (a group with what is inside
/// it), joined with a space only between words, since a span covering several trees
/// (`Span::join`) is not available on stable.
fn text(tokens: &impl quote::ToTokens) -> String {
    use proc_macro2::TokenTree;
    let word = |t: &TokenTree| matches!(t, TokenTree::Ident(_) | TokenTree::Literal(_));
    let mut out = String::new();
    let mut last_word = false;
    for t in tokens.to_token_stream() {
        if last_word && word(&t) {
            out.push(' ');
        }
        last_word = word(&t);
        out += &t.span().source_text().unwrap_or_else(|| t.to_string());
    }
    out
}

/// An item declared in the body: a function of its own, where our macros have no
/// workflow to yield from.
pub(crate) fn item(item: &Item, errors: &mut Errors) {
    let mut scrub = Scrub::new(errors, Some("a nested item"));
    scrub.opaque = 1;
    visit::visit_item(&mut scrub, item);
}

/// Inside the operands of a yield point: any other yield point is nested in it.
pub(crate) fn nested(expr: &Expr, errors: &mut Errors) {
    Scrub::new(errors, Some(NESTED)).visit_expr(expr);
}

const NESTED: &str = "inside another yield point";

/// Whether code contains a yield point of the workflow (outside closures, async blocks
/// and nested items, whose `.await`s are their own).
pub(crate) fn has_yield(expr: &Expr) -> bool {
    let mut finder = Finder(false);
    finder.visit_expr(expr);
    finder.0
}

struct Finder(bool);

impl<'ast> Visit<'ast> for Finder {
    fn visit_expr_await(&mut self, _: &'ast syn::ExprAwait) {
        self.0 = true;
    }
    fn visit_macro(&mut self, m: &'ast Macro) {
        self.0 |= MacroKind::of(m).is_some();
    }
    fn visit_expr_closure(&mut self, _: &'ast syn::ExprClosure) {}
    fn visit_expr_async(&mut self, _: &'ast syn::ExprAsync) {}
    fn visit_item(&mut self, _: &'ast Item) {}
}

struct Scrub<'a> {
    errors: &'a mut Errors,
    /// Innermost construct around the current expression.
    context: Vec<&'static str>,
    /// Inside an async block, an async closure or a nested item: `.await` there belongs
    /// to that future, not to the workflow.
    opaque: usize,
    /// Inside a closure that is not async, and no async block within it: `.await` there
    /// is an error of its own (rustc would only suggest making the closure async).
    sync_closure: bool,
    /// What to write instead, for a yield point directly in the root context.
    hint: Option<String>,
}

impl<'a> Scrub<'a> {
    fn new(errors: &'a mut Errors, root: Option<&'static str>) -> Self {
        Scrub {
            errors,
            context: root.into_iter().collect(),
            opaque: 0,
            sync_closure: false,
            hint: None,
        }
    }

    fn within(&mut self, what: &'static str, f: impl FnOnce(&mut Self)) {
        self.context.push(what);
        f(self);
        self.context.pop();
    }

    fn report(&mut self, span: Span, what: &str) {
        let message = match self.context.last().copied() {
            Some(c @ ("a closure" | "an async block" | "a nested item")) => format!(
                "{what} cannot be used inside {c}: yield points must be statements of the workflow body (they may sit inside `if`, `match` and loops)"
            ),
            Some(c) if self.context.len() == 1 && self.hint.is_some() => {
                let hint = self.hint.as_deref().unwrap_or_default();
                format!("{what} cannot be used in {c}; {hint}")
            }
            Some(NESTED) => format!(
                "{what} cannot be nested inside another yield point; bind it first with its own `let value: Type = …;` statement"
            ),
            Some(c) => format!(
                "{what} cannot be used in {c}; bind it first: `let value: Type = …;`, then use `value`"
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
        if self.sync_closure {
            self.errors.at(
                e.await_token.span,
                "`.await` cannot be used inside a closure, which is not async: make the call a statement of the workflow body (`let value: Type = call().await?;`, a checkpointed task), or await an `async` block as one task",
            );
        } else if self.opaque == 0 {
            self.report(e.await_token.span, "`.await`");
        }
        visit::visit_expr_await(self, e);
    }
    fn visit_macro(&mut self, m: &'ast Macro) {
        if let Some(kind) = MacroKind::of(m) {
            self.report(m.path.span(), &format!("`{}`", kind.display()));
            return;
        }
        // Another macro (`println!`, `assert!`, `vec!`): its arguments are code of the
        // step too, where a `.await` would run without a checkpoint. Those that read as
        // expressions are checked; others (`select!`'s arms) are the macro's own syntax.
        let args = m.parse_body_with(Punctuated::<Expr, Token![,]>::parse_terminated);
        if let Ok(args) = args {
            for arg in &args {
                self.visit_expr(arg);
            }
        }
    }
    fn visit_expr_closure(&mut self, e: &'ast syn::ExprClosure) {
        let sync = std::mem::replace(&mut self.sync_closure, e.asyncness.is_none());
        self.opaque += 1;
        self.within("a closure", |s| visit::visit_expr_closure(s, e));
        self.opaque -= 1;
        self.sync_closure = sync;
    }
    fn visit_expr_async(&mut self, e: &'ast syn::ExprAsync) {
        let sync = std::mem::replace(&mut self.sync_closure, false);
        self.opaque += 1;
        self.within("an async block", |s| visit::visit_expr_async(s, e));
        self.opaque -= 1;
        self.sync_closure = sync;
    }
    // A nested item is its own function: its `.await`s are its own, and our macros there
    // expand to their `compile_error!` stubs with their own message.
    fn visit_item(&mut self, _: &'ast Item) {}
}
