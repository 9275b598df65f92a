//! Retry policies and timeouts: `#[retry(…)]` and `#[timeout(…)]` on a yield statement,
//! `retry(…)` on `#[workflow]` for the workflow's default.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned;
use syn::{Attribute, Expr, Lit, LitStr};

use crate::analyze::{Op, Yield};
use crate::errors::Errors;
use crate::yields::{is_negative, is_zero_duration};

/// `#[retry(on = ["A", "B"], interval = 1.secs(), max_attempts = 3, backoff = 2.0,
/// max_delay = 30.secs(), jitter = full)]`: every option optional, ASL's defaults.
#[derive(Clone, Default)]
pub(crate) struct RetrySpec {
    pub(crate) on: Vec<LitStr>,
    pub(crate) interval: Option<Expr>,
    pub(crate) max_attempts: Option<Expr>,
    pub(crate) backoff: Option<Expr>,
    pub(crate) max_delay: Option<Expr>,
    pub(crate) full_jitter: Option<bool>,
}

/// The policy attributes of one yield statement.
#[derive(Clone)]
pub(crate) struct PolicySpec {
    /// The first attribute, for errors about where the policy is.
    pub(crate) span: Span,
    pub(crate) retry: Option<RetrySpec>,
    /// `#[retry(none)]`: not even the workflow's default.
    pub(crate) no_retry: bool,
    pub(crate) timeout: Option<Expr>,
}

/// Parses `retry(…)`'s options, one at a time, from `meta` (shared by the statement
/// attribute and `#[workflow(retry(…))]`).
pub(crate) fn retry_option(spec: &mut RetrySpec, meta: &ParseNestedMeta) -> syn::Result<()> {
    let once = |present: bool| {
        if present {
            let name = quote::ToTokens::to_token_stream(&meta.path).to_string();
            Err(meta.error(format!("`{name}` is given twice")))
        } else {
            Ok(())
        }
    };
    let path = &meta.path;
    if path.is_ident("on") {
        once(!spec.on.is_empty())?;
        let list: syn::ExprArray = meta.value()?.parse()?;
        for e in list.elems {
            match e {
                Expr::Lit(syn::ExprLit {
                    lit: Lit::Str(s), ..
                }) => {
                    if let Err(m) = check_error_name(
                        &s.value(),
                        "match the runtime's errors as `Workflow.…` (e.g. `Workflow.Timeout`) and your own by their names",
                    ) {
                        return Err(syn::Error::new(s.span(), m));
                    }
                    spec.on.push(s);
                }
                other => {
                    return Err(syn::Error::new(
                        other.span(),
                        "error names are strings: `on = [\"Unavailable\", \"Workflow.Timeout\"]`",
                    ))
                }
            }
        }
        if spec.on.is_empty() {
            return Err(meta.error(
                "`on = []` retries nothing; leave `on` out to retry every retryable error",
            ));
        }
    } else if path.is_ident("interval") {
        once(spec.interval.is_some())?;
        spec.interval = Some(meta.value()?.parse()?);
    } else if path.is_ident("max_attempts") {
        once(spec.max_attempts.is_some())?;
        spec.max_attempts = Some(meta.value()?.parse()?);
    } else if path.is_ident("backoff") {
        once(spec.backoff.is_some())?;
        spec.backoff = Some(meta.value()?.parse()?);
    } else if path.is_ident("max_delay") {
        once(spec.max_delay.is_some())?;
        spec.max_delay = Some(meta.value()?.parse()?);
    } else if path.is_ident("jitter") {
        once(spec.full_jitter.is_some())?;
        let value: syn::Expr = meta.value()?.parse()?;
        let word = match &value {
            syn::Expr::Path(p) => p.path.get_ident().map(ToString::to_string),
            _ => None,
        };
        spec.full_jitter = Some(match word.as_deref() {
            Some("full") => true,
            Some("none") => false,
            _ => {
                return Err(syn::Error::new_spanned(
                    value,
                    "`jitter` is `full` or `none`, written without quotes",
                ))
            }
        });
    } else {
        let given = quote::ToTokens::to_token_stream(path)
            .to_string()
            .replace(' ', "");
        return Err(meta.error(crate::errors::unknown_option(
            "`#[retry]`",
            &given,
            &[
                "on",
                "interval",
                "max_attempts",
                "backoff",
                "max_delay",
                "jitter",
                "none",
            ],
        )));
    }
    Ok(())
}

/// What the runtime's `RetryPolicy::validate` refuses, when the values are literals.
pub(crate) fn check_retry(spec: &RetrySpec, errors: &mut Errors) {
    if let Some(b) = &spec.backoff {
        match literal_f64(b) {
            Some(v) if v < 1.0 => errors.spanned(b, "a backoff rate below 1 makes each delay shorter than the last; use 1 (constant) or more"),
            _ if is_negative(b) => errors.spanned(b, "a backoff rate below 1 makes each delay shorter than the last; use 1 (constant) or more"),
            _ => {}
        }
    }
    let zero_attempts = spec.max_attempts.as_ref().and_then(literal_f64) == Some(0.0);
    if zero_attempts {
        let e = spec.max_attempts.as_ref().expect("just read");
        if spec.interval.is_some() || spec.backoff.is_some() || spec.max_delay.is_some() {
            errors.spanned(e, "`max_attempts = 0` never retries, so its delay means nothing; allow attempts or remove the policy (`#[retry(none)]` opts out of the workflow's default)");
        } else {
            errors.spanned(e, "`max_attempts = 0` never retries; remove the policy, or write `#[retry(none)]` to opt out of the workflow's default");
        }
    }
    for d in [&spec.interval, &spec.max_delay].into_iter().flatten() {
        if is_negative(d) || is_zero_duration(d) {
            errors.spanned(
                d,
                "a retry delay must be positive, e.g. `interval = 1.secs()`",
            );
        }
    }
}

fn literal_f64(e: &Expr) -> Option<f64> {
    match e {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Float(f), ..
        }) => f.base10_parse().ok(),
        Expr::Lit(syn::ExprLit {
            lit: Lit::Int(i), ..
        }) => i.base10_parse::<u64>().ok().map(|v| v as f64),
        Expr::Paren(p) => literal_f64(&p.expr),
        _ => None,
    }
}

/// The rules of the runtime's `check_name`, at compile time. `advice` ends the message
/// for a reserved name: what to write instead, where the name is used.
pub(crate) fn check_error_name(name: &str, advice: &str) -> Result<(), String> {
    if name.is_empty() {
        Err("an error name cannot be empty".into())
    } else if name.starts_with("States.") {
        Err(format!(
            "`{name}`: names starting with `States.` are Step Functions' own; {advice}"
        ))
    } else {
        Ok(())
    }
}

/// Takes `#[retry(…)]` and `#[timeout(…)]` out of `attrs`.
pub(crate) fn take(attrs: &mut Vec<Attribute>, errors: &mut Errors) -> Option<PolicySpec> {
    let mut spec: Option<PolicySpec> = None;
    let mut kept = Vec::new();
    for attr in attrs.drain(..) {
        let is_retry = attr.path().is_ident("retry");
        let is_timeout = attr.path().is_ident("timeout");
        if !is_retry && !is_timeout {
            kept.push(attr);
            continue;
        }
        let s = spec.get_or_insert_with(|| PolicySpec {
            span: attr.path().span(),
            retry: None,
            no_retry: false,
            timeout: None,
        });
        if is_timeout {
            if s.timeout.is_some() {
                errors.spanned(&attr, "`#[timeout]` is given twice");
                continue;
            }
            match attr.parse_args::<Expr>() {
                Ok(e) if is_negative(&e) || is_zero_duration(&e) => {
                    errors.spanned(
                        &e,
                        "a timeout must be positive, e.g. `#[timeout(30.secs())]`",
                    );
                }
                Ok(e) => s.timeout = Some(e),
                Err(e) => errors.push(syn::Error::new(
                    e.span(),
                    "write the timeout as a duration: `#[timeout(30.secs())]`",
                )),
            }
            continue;
        }
        if s.retry.is_some() || s.no_retry {
            errors.spanned(
                &attr,
                "`#[retry]` is given twice; one policy per yield point",
            );
            continue;
        }
        if let syn::Meta::Path(_) = attr.meta {
            // `#[retry]`: ASL's defaults.
            s.retry = Some(RetrySpec::default());
            continue;
        }
        let mut r = RetrySpec::default();
        let mut none = None;
        let mut others = false;
        let result = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("none") {
                none = Some(meta.path.clone());
                Ok(())
            } else {
                others = true;
                retry_option(&mut r, &meta)
            }
        });
        match result {
            Err(e) => errors.push(e),
            Ok(()) if none.is_some() && others => errors.spanned(
                none,
                "`none` opts this call out of every retry policy, so it takes no other options: write `#[retry(none)]`, or the options without `none`",
            ),
            Ok(()) if none.is_some() => s.no_retry = true,
            Ok(()) => {
                check_retry(&r, errors);
                s.retry = Some(r);
            }
        }
    }
    *attrs = kept;
    spec
}

/// `|| Policy { … }` for a node's graph entry, `None` without a policy.
pub(crate) fn tokens(
    wf: &TokenStream,
    retry: Option<&RetrySpec>,
    timeout: Option<&Expr>,
) -> Option<TokenStream> {
    if retry.is_none() && timeout.is_none() {
        return None;
    }
    let retry = match retry {
        None => quote!(::core::option::Option::None),
        Some(r) => {
            let mut fields = Vec::new();
            if !r.on.is_empty() {
                let on = &r.on;
                fields.push(quote!(on: &[#(#on),*],));
            }
            if let Some(e) = &r.interval {
                fields.push(quote!(interval: #e,));
            }
            if let Some(e) = &r.max_attempts {
                fields.push(quote!(max_attempts: #e,));
            }
            if let Some(e) = &r.backoff {
                fields.push(quote!(backoff_rate: f64::from(#e),));
            }
            if let Some(e) = &r.max_delay {
                fields.push(quote!(max_delay: ::core::option::Option::Some(#e),));
            }
            match r.full_jitter {
                Some(true) => fields.push(quote!(jitter: #wf::Jitter::Full,)),
                Some(false) => fields.push(quote!(jitter: #wf::Jitter::None,)),
                None => {}
            }
            quote!(::core::option::Option::Some(#wf::RetryPolicy {
                #(#fields)*
                ..<#wf::RetryPolicy as ::core::default::Default>::default()
            }))
        }
    };
    let timeout = match timeout {
        Some(e) => quote!(::core::option::Option::Some(#e)),
        None => quote!(::core::option::Option::None),
    };
    Some(quote!(|| #wf::Policy { retry: #retry, timeout: #timeout }))
}

/// Settles each yield point's policy: its own, else the workflow's default retry policy
/// for tasks and polls; `None` where there is neither. Reports policies where they mean
/// nothing.
pub(crate) fn resolve(yields: &mut [Yield], default: Option<&RetrySpec>, errors: &mut Errors) {
    for y in yields {
        let own = y.policy.take();
        let (retry, timeout) = match &own {
            Some(p) if p.no_retry => (None, p.timeout.clone()),
            Some(p) => (
                p.retry.clone().or_else(|| default.cloned()),
                p.timeout.clone(),
            ),
            None => (default.cloned(), None),
        };
        match &y.op {
            Op::Task { .. } | Op::Poll(_) => {}
            // The workflow's default is for calls; a child has its own policies inside.
            Op::Child(_) => {
                y.policy = own.filter(|p| p.retry.is_some() || p.timeout.is_some());
                continue;
            }
            Op::Wait(_) => {
                if let Some(p) = own {
                    errors.at(
                        p.span,
                        "`sleep!` calls nothing, so it has nothing to retry or time out",
                    );
                }
                continue;
            }
            Op::Callback(_) => {
                if let Some(p) = own {
                    errors.at(
                        p.span,
                        "`wait_for_callback!` takes its timeout as an option (`timeout = …`), and its token is sent once: `#[retry]` and `#[timeout]` do not apply to it",
                    );
                }
                continue;
            }
        }
        if retry.is_none() && timeout.is_none() {
            continue;
        }
        y.policy = Some(PolicySpec {
            span: own.map_or_else(Span::call_site, |p| p.span),
            retry,
            no_retry: false,
            timeout,
        });
    }
}
