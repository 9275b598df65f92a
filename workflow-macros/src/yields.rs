//! The arguments of `poll_until!`, `call_nested!`, `sleep!` and `wait_for_callback!`, as
//! the macro reads them.

use proc_macro2::Span;
use syn::parse::ParseStream;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, Ident, LitInt, Macro, Pat, Token};

/// Which of our macros a path names, by its last segment.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum MacroKind {
    Poll,
    Nested,
    Sleep,
    Callback,
}

impl MacroKind {
    pub(crate) fn of(mac: &Macro) -> Option<Self> {
        let last = mac.path.segments.last()?;
        match last.ident.to_string().as_str() {
            "poll_until" => Some(MacroKind::Poll),
            "call_nested" => Some(MacroKind::Nested),
            "sleep" => Some(MacroKind::Sleep),
            "wait_for_callback" => Some(MacroKind::Callback),
            _ => None,
        }
    }

    pub(crate) fn display(self) -> &'static str {
        match self {
            MacroKind::Poll => "poll_until!",
            MacroKind::Nested => "call_nested!",
            MacroKind::Sleep => "sleep!",
            MacroKind::Callback => "wait_for_callback!",
        }
    }
}

pub(crate) struct Poll {
    pub(crate) call: Expr,
    pub(crate) ready: Expr,
    pub(crate) every: Expr,
    pub(crate) timeout: Option<Expr>,
    pub(crate) max_attempts: Option<Expr>,
    pub(crate) max_errors: Option<Expr>,
}

/// `wait_for_callback!(|token| send(token), timeout = d, heartbeat = h)`.
pub(crate) struct Callback {
    /// The closure that takes the token and sends it.
    pub(crate) send: syn::ExprClosure,
    pub(crate) timeout: Expr,
    pub(crate) heartbeat: Option<Expr>,
}

/// `wf(a, b)`: a workflow and the arguments that make its input.
pub(crate) struct Call {
    pub(crate) workflow: syn::Path,
    pub(crate) args: Vec<Expr>,
    pub(crate) span: Span,
}

pub(crate) enum Nested {
    One(Call),
    Parallel(Vec<Call>),
    Map {
        pat: Pat,
        iter: Expr,
        call: Call,
        max_concurrency: Option<u32>,
    },
}

impl Nested {
    pub(crate) fn calls(&self) -> Vec<&Call> {
        match self {
            Nested::One(c) | Nested::Map { call: c, .. } => vec![c],
            Nested::Parallel(cs) => cs.iter().collect(),
        }
    }
}

const POLL_USAGE: &str =
    "write `poll_until!(call, |value| ready, every = <Duration>, timeout = <Duration>)`";

pub(crate) fn poll(mac: &Macro) -> syn::Result<Poll> {
    let items = mac.parse_body_with(Punctuated::<Expr, Token![,]>::parse_terminated)?;
    let mut items = items.into_iter();
    let missing = || {
        syn::Error::new_spanned(
            &mac.path,
            format!("`poll_until!` needs a call and a readiness check: {POLL_USAGE}"),
        )
    };
    let call = items.next().ok_or_else(missing)?;
    let ready = items.next().ok_or_else(missing)?;
    if let Expr::Assign(a) = &call {
        return Err(syn::Error::new_spanned(
            a,
            format!("the first argument of `poll_until!` is the call to poll: {POLL_USAGE}"),
        ));
    }
    if let Expr::Assign(a) = &ready {
        return Err(syn::Error::new_spanned(a, format!("the second argument of `poll_until!` is the readiness check, a closure: {POLL_USAGE}")));
    }
    let mut error: Option<syn::Error> = None;
    let mut push = |e: syn::Error| match &mut error {
        Some(first) => first.combine(e),
        None => error = Some(e),
    };
    let (options, malformed) = options(
        items,
        "`poll_until!`",
        &["every", "timeout", "max_attempts", "max_errors"],
        POLL_USAGE,
        &mut push,
    );
    let [every, timeout, max_attempts, max_errors] = options;
    match &every {
        None if malformed => {}
        None => push(syn::Error::new_spanned(&mac.path, "`poll_until!` needs `every = <Duration>`: how long to wait before each call")),
        Some(e) if is_negative(e) => push(syn::Error::new_spanned(e, "the poll interval cannot be negative; write a positive duration such as `every = 10.secs()`")),
        Some(e) if is_zero_duration(e) => push(syn::Error::new_spanned(e, "a zero poll interval calls the service in a busy loop; write a positive duration such as `every = 500.millis()`")),
        Some(_) => {}
    }
    if let Some(e) = &max_attempts {
        if is_literal(e, 0) {
            push(syn::Error::new_spanned(
                e,
                "`max_attempts = 0` never calls the service; it must be at least 1",
            ));
        }
    }
    if timeout.is_none() && max_attempts.is_none() && !malformed {
        push(syn::Error::new_spanned(&mac.path, "`poll_until!` needs `timeout = <Duration>` or `max_attempts = <n>`: without either it polls forever when the service never becomes ready"));
    }
    match (every, error) {
        (Some(every), None) => Ok(Poll {
            call,
            ready,
            every,
            timeout,
            max_attempts,
            max_errors,
        }),
        (_, Some(e)) => Err(e),
        (None, None) => unreachable!("a missing `every` is reported above"),
    }
}

/// The `key = value` options of a macro call, in the order of `names` (each `None` if
/// not given), and whether one of them was malformed (the option a later check would
/// say is missing may be that one: one error for one mistake). Errors go to `push`.
fn options<const N: usize>(
    items: impl Iterator<Item = Expr>,
    what: &str,
    names: &[&str; N],
    usage: &str,
    push: &mut impl FnMut(syn::Error),
) -> ([Option<Expr>; N], bool) {
    let mut values: [Option<Expr>; N] = std::array::from_fn(|_| None);
    let mut malformed = false;
    for item in items {
        let Expr::Assign(assign) = item else {
            malformed = true;
            push(syn::Error::new_spanned(
                item,
                format!("expected an option `key = value`: {usage}"),
            ));
            continue;
        };
        let key = match &*assign.left {
            Expr::Path(p) if p.path.get_ident().is_some() => p.path.get_ident().cloned(),
            _ => None,
        };
        let Some(key) = key else {
            push(syn::Error::new_spanned(
                &assign.left,
                "expected an option name",
            ));
            continue;
        };
        let Some(slot) = names.iter().position(|n| key == n) else {
            let message = crate::errors::unknown_option(what, &key.to_string(), names);
            push(syn::Error::new_spanned(&key, message));
            continue;
        };
        if values[slot].is_some() {
            push(syn::Error::new_spanned(
                &key,
                format!("`{key}` is given twice"),
            ));
            continue;
        }
        values[slot] = Some(*assign.right);
    }
    (values, malformed)
}

const CALLBACK_USAGE: &str = "write `wait_for_callback!(|token| notifier.send(token), timeout = <Duration>)`, with `heartbeat = <Duration>` if the other side sends heartbeats";

pub(crate) fn callback(mac: &Macro) -> syn::Result<Callback> {
    let items = mac.parse_body_with(Punctuated::<Expr, Token![,]>::parse_terminated)?;
    let mut items = items.into_iter();
    let send = match items.next() {
        Some(Expr::Closure(c)) if c.inputs.len() == 1 => c,
        Some(Expr::Closure(c)) => {
            // `||` or `|a, b|`: point at the parameters.
            let (or1, inputs, or2) = (&c.or1_token, &c.inputs, &c.or2_token);
            return Err(syn::Error::new_spanned(
                quote::quote!(#or1 #inputs #or2),
                format!(
                    "the closure of `wait_for_callback!` takes one argument, the token to send: `|token| notifier.send(token)`; it takes {}",
                    match c.inputs.len() {
                        0 => "none".to_owned(),
                        n => n.to_string(),
                    }
                ),
            ));
        }
        Some(other) => {
            return Err(syn::Error::new_spanned(
                other,
                format!("the first argument of `wait_for_callback!` is a closure that takes the token and sends it: {CALLBACK_USAGE}"),
            ));
        }
        None => {
            return Err(syn::Error::new_spanned(
                &mac.path,
                format!("`wait_for_callback!` needs a closure that sends the token, and a timeout: {CALLBACK_USAGE}"),
            ));
        }
    };
    let mut error: Option<syn::Error> = None;
    let mut push = |e: syn::Error| match &mut error {
        Some(first) => first.combine(e),
        None => error = Some(e),
    };
    let ([timeout, heartbeat], malformed) = options(
        items,
        "`wait_for_callback!`",
        &["timeout", "heartbeat"],
        CALLBACK_USAGE,
        &mut push,
    );
    for (what, e) in [("timeout", &timeout), ("heartbeat", &heartbeat)] {
        match e {
            Some(e) if is_negative(e) || is_zero_duration(e) => push(syn::Error::new_spanned(
                e,
                format!("a callback's `{what}` must be a positive duration, such as `{what} = 1.hours()`"),
            )),
            _ => {}
        }
    }
    if timeout.is_none() && !malformed {
        push(syn::Error::new_spanned(
            &mac.path,
            "`wait_for_callback!` needs `timeout = <Duration>`: without it the workflow waits forever when nobody completes the token",
        ));
    }
    match (timeout, error) {
        (Some(timeout), None) => Ok(Callback {
            send,
            timeout,
            heartbeat,
        }),
        (_, Some(e)) => Err(e),
        (None, None) => unreachable!("a missing timeout is reported above"),
    }
}

/// An integer literal equal to `n` (ignoring a suffix).
fn is_literal(e: &Expr, n: u64) -> bool {
    match e {
        Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Int(i),
            ..
        }) => i.base10_parse::<u64>().ok() == Some(n),
        Expr::Paren(p) => is_literal(&p.expr, n),
        _ => false,
    }
}

pub(crate) fn is_negative(e: &Expr) -> bool {
    match e {
        Expr::Unary(u) => matches!(u.op, syn::UnOp::Neg(_)),
        Expr::MethodCall(m) => is_negative(&m.receiver),
        Expr::Call(c) => c.args.iter().any(is_negative),
        Expr::Paren(p) => is_negative(&p.expr),
        _ => false,
    }
}

/// `0.secs()`, `Duration::ZERO`, `Duration::from_millis(0)`: a duration literally zero.
pub(crate) fn is_zero_duration(e: &Expr) -> bool {
    match e {
        Expr::MethodCall(m) => {
            ["millis", "secs", "mins", "hours"]
                .iter()
                .any(|u| m.method == u)
                && is_literal(&m.receiver, 0)
        }
        Expr::Path(p) => p.path.segments.last().is_some_and(|s| s.ident == "ZERO"),
        Expr::Call(c) => {
            let from = matches!(&*c.func, Expr::Path(p) if p.path.segments.last().is_some_and(|s| s.ident.to_string().starts_with("from_")));
            from && c.args.len() == 1 && is_literal(&c.args[0], 0)
        }
        Expr::Paren(p) => is_zero_duration(&p.expr),
        _ => false,
    }
}

const NESTED_USAGE: &str = "write `call_nested!(wf(input))`, `call_nested!(parallel(a(x), b(y)))` or `call_nested!(for item in items => wf(item), max_concurrency = 10)`";

pub(crate) fn nested(mac: &Macro) -> syn::Result<Nested> {
    mac.parse_body_with(|input: ParseStream| {
        if input.peek(Token![for]) {
            return map(input);
        }
        let expr: Expr = input.parse()?;
        if !input.is_empty() {
            return Err(input.error(format!("unexpected tokens after the call: {NESTED_USAGE}")));
        }
        if let Expr::Call(c) = &expr {
            if let Expr::Path(p) = &*c.func {
                if p.path.is_ident("parallel") {
                    if c.args.is_empty() {
                        return Err(syn::Error::new_spanned(
                            c,
                            "`parallel(…)` needs at least one workflow call",
                        ));
                    }
                    return c
                        .args
                        .iter()
                        .map(call)
                        .collect::<syn::Result<_>>()
                        .map(Nested::Parallel);
                }
            }
        }
        call(&expr).map(Nested::One)
    })
}

fn map(input: ParseStream) -> syn::Result<Nested> {
    input.parse::<Token![for]>()?;
    let pat = Pat::parse_single(input)?;
    input.parse::<Token![in]>()?;
    let iter = Expr::parse_without_eager_brace(input)?;
    input.parse::<Token![=>]>()?;
    let target: Expr = input.parse()?;
    let call = call(&target)?;
    let mut max_concurrency = None;
    if input.parse::<Option<Token![,]>>()?.is_some() && !input.is_empty() {
        let key: Ident = input.parse()?;
        if key != "max_concurrency" {
            let message = crate::errors::unknown_option(
                "`call_nested!`",
                &key.to_string(),
                &["max_concurrency"],
            );
            return Err(syn::Error::new_spanned(key, message));
        }
        input.parse::<Token![=]>()?;
        let lit: LitInt = input.parse().map_err(|e| {
            syn::Error::new(e.span(), "`max_concurrency` must be an integer literal: the state graph (and the ASL Map state) carries it")
        })?;
        let n: u32 = lit.base10_parse()?;
        if n == 0 {
            return Err(syn::Error::new_spanned(
                lit,
                "`max_concurrency` must be at least 1",
            ));
        }
        max_concurrency = Some(n);
        input.parse::<Option<Token![,]>>()?;
    }
    if !input.is_empty() {
        return Err(input.error(format!("unexpected tokens: {NESTED_USAGE}")));
    }
    Ok(Nested::Map {
        pat,
        iter,
        call,
        max_concurrency,
    })
}

fn call(expr: &Expr) -> syn::Result<Call> {
    if let Expr::Call(c) = expr {
        if let Expr::Path(p) = &*c.func {
            if p.qself.is_none() {
                return Ok(Call {
                    workflow: p.path.clone(),
                    args: c.args.iter().cloned().collect(),
                    span: expr.span(),
                });
            }
        }
    }
    Err(syn::Error::new_spanned(
        expr,
        format!("expected a call of a `#[workflow]`: {NESTED_USAGE}"),
    ))
}

pub(crate) fn sleep(mac: &Macro) -> syn::Result<Expr> {
    // `parse_body_with` reports a missing argument at the closing delimiter, not at an
    // unspanned end of input.
    mac.parse_body_with(|input: ParseStream| {
        if input.is_empty() {
            return Err(input.error("write `sleep!(<Duration>)`, for example `sleep!(5.secs())`"));
        }
        let e: Expr = input.parse()?;
        input.parse::<Option<Token![,]>>()?;
        Ok(e)
    })
}

/// A child workflow as generated code uses it: `codegen::child(&path)`, spanned on the
/// user's path. Every use of the child (its name in the graph, its link, its batch, its
/// decoding) goes through it, so that a path that is not a workflow (a plain `async fn`)
/// is one error on that path: the same diagnostic in every item, which rustc reports once.
pub(crate) fn child(wf: &proc_macro2::TokenStream, p: &syn::Path) -> proc_macro2::TokenStream {
    use syn::spanned::Spanned;
    // The crate path too: an expression's span runs from its first token to its last,
    // and a first token spanned at `#[workflow]` would put the error there.
    let wf = respan(wf.clone(), p.span());
    quote::quote_spanned!(p.span()=> #wf::codegen::child(&#p))
}

/// `tokens`, every one of them spanned at `span`.
pub(crate) fn respan(tokens: proc_macro2::TokenStream, span: Span) -> proc_macro2::TokenStream {
    use proc_macro2::{Group, TokenTree};
    tokens
        .into_iter()
        .map(|mut t| {
            if let TokenTree::Group(g) = &t {
                let mut inner = Group::new(g.delimiter(), respan(g.stream(), span));
                inner.set_span(span);
                return TokenTree::Group(inner);
            }
            t.set_span(span);
            t
        })
        .collect()
}
