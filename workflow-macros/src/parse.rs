//! Stage 1: the attribute's arguments and the function's signature.

use proc_macro2::TokenStream;
use syn::{
    parse_quote, Attribute, FnArg, GenericArgument, Ident, ItemFn, LitStr, Pat, PathArguments,
    ReturnType, Token, Type, Visibility,
};

use crate::errors::Errors;
use crate::policy::{self, RetrySpec};

/// `#[workflow(name = "…", crate = "…")]`.
pub(crate) struct Args {
    pub(crate) name: Option<LitStr>,
    pub(crate) krate: syn::Path,
    /// `retry(…)`: the policy of every task and poll without a `#[retry]` of its own.
    pub(crate) retry: Option<RetrySpec>,
    /// `timeout = …`: how long an execution may run.
    pub(crate) timeout: Option<syn::Expr>,
}

/// The function, split into what codegen needs.
pub(crate) struct WorkflowFn {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) ident: Ident,
    /// Owned parameters: the input, persisted.
    pub(crate) inputs: Vec<Param>,
    /// `&T` parameters: injected by the runtime, never persisted.
    pub(crate) deps: Vec<Param>,
    pub(crate) ret: Ret,
    pub(crate) body: syn::Block,
}

pub(crate) struct Param {
    pub(crate) ident: Ident,
    pub(crate) mutability: Option<Token![mut]>,
    /// The parameter's type; for a dependency, the referent (`T` of `&T`).
    pub(crate) ty: Type,
}

pub(crate) enum Ret {
    /// `-> Result<T, E>`.
    Fallible { ok: Type, err: Type, full: Type },
    /// `-> T` (or no return type).
    Plain(Type),
}

impl Ret {
    pub(crate) fn full(&self) -> &Type {
        match self {
            Ret::Fallible { full, .. } | Ret::Plain(full) => full,
        }
    }
}

pub(crate) fn args(tokens: TokenStream) -> syn::Result<Args> {
    let mut name: Option<LitStr> = None;
    let mut krate: Option<syn::Path> = None;
    let mut retry: Option<RetrySpec> = None;
    let mut timeout: Option<syn::Expr> = None;
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("name") {
            if name.is_some() {
                return Err(meta.error("`name` is given twice"));
            }
            let lit: LitStr = meta.value()?.parse()?;
            check_name(&lit)?;
            name = Some(lit);
            Ok(())
        } else if meta.path.is_ident("crate") {
            if krate.is_some() {
                return Err(meta.error("`crate` is given twice"));
            }
            let lit: LitStr = meta.value()?.parse()?;
            krate = Some(lit.parse().map_err(|_| {
                syn::Error::new(
                    lit.span(),
                    "`crate` is the path of the `workflow` crate as it is named here, such as `crate = \"::my_facade::workflow\"`",
                )
            })?);
            Ok(())
        } else if meta.path.is_ident("retry") {
            if retry.is_some() {
                return Err(meta.error("`retry` is given twice"));
            }
            let mut spec = RetrySpec::default();
            meta.parse_nested_meta(|m| policy::retry_option(&mut spec, &m))?;
            let mut errors = Errors::default();
            policy::check_retry(&spec, &mut errors);
            errors.check()?;
            retry = Some(spec);
            Ok(())
        } else if meta.path.is_ident("timeout") {
            if timeout.is_some() {
                return Err(meta.error("`timeout` is given twice"));
            }
            let e: syn::Expr = meta.value()?.parse()?;
            if crate::yields::is_negative(&e) || crate::yields::is_zero_duration(&e) {
                return Err(syn::Error::new_spanned(
                    e,
                    "an execution timeout must be positive, e.g. `timeout = 1.hours()`",
                ));
            }
            timeout = Some(e);
            Ok(())
        } else {
            let given = quote::ToTokens::to_token_stream(&meta.path)
                .to_string()
                .replace(' ', "");
            Err(meta.error(crate::errors::unknown_option(
                "`#[workflow]`",
                &given,
                &["name", "crate", "retry", "timeout"],
            )))
        }
    });
    syn::parse::Parser::parse2(parser, tokens)?;
    Ok(Args {
        name,
        krate: krate.unwrap_or_else(|| parse_quote!(::workflow)),
        retry,
        timeout,
    })
}

/// Step Functions state machine names: 1 to 80 letters, digits, `-` or `_`. A workflow's
/// name is used as one, so it is held to the same rule.
fn check_name(lit: &LitStr) -> syn::Result<()> {
    let name = lit.value();
    let ok = !name.is_empty()
        && name.len() <= 80
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(syn::Error::new_spanned(
            lit,
            "a workflow name must be 1 to 80 ASCII letters, digits, `-` or `_` (it becomes a Step Functions state machine name)",
        ))
    }
}

pub(crate) fn function(item: ItemFn) -> syn::Result<WorkflowFn> {
    let mut errors = Errors::default();
    let sig = &item.sig;
    if sig.asyncness.is_none() {
        errors.spanned(sig.fn_token, "#[workflow] must be on an `async fn`");
    }
    const GENERIC: &str =
        "a workflow cannot be generic: its state is persisted and must have one concrete type";
    // Lifetimes only: the parameters that would use them are dependencies, which say it
    // better on their own (`&'a T`): one error on the generics, none on the parameters.
    let lifetimes_only = !sig.generics.params.is_empty()
        && sig
            .generics
            .params
            .iter()
            .all(|p| matches!(p, syn::GenericParam::Lifetime(_)));
    if lifetimes_only {
        errors.spanned(
            &sig.generics,
            "a workflow takes no lifetime parameters: its dependencies are plain `&T` parameters, and its input is owned",
        );
    } else if !sig.generics.params.is_empty() {
        errors.spanned(&sig.generics, GENERIC);
    } else if let Some(w) = &sig.generics.where_clause {
        // Without parameters the generics have no tokens to point at (nor has an empty
        // `where` clause's predicate list): point at the `where` keyword.
        errors.spanned(w.where_token, GENERIC);
    }
    if let Some(c) = &sig.constness {
        errors.spanned(c, "a workflow cannot be `const`");
    }
    if let Some(u) = &sig.unsafety {
        errors.spanned(u, "a workflow cannot be `unsafe`");
    }
    if let Some(v) = &sig.variadic {
        errors.spanned(v, "a workflow cannot be variadic");
    }
    let mut inputs = Vec::new();
    let mut deps = Vec::new();
    for arg in &sig.inputs {
        let arg = match arg {
            FnArg::Receiver(r) => {
                errors.spanned(r, "a workflow cannot take `self`: make it a free `async fn` and pass what it needs as parameters");
                continue;
            }
            FnArg::Typed(arg) => arg,
        };
        let (ident, mutability) = match &*arg.pat {
            Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => {
                (p.ident.clone(), p.mutability)
            }
            other => {
                errors.spanned(other, "workflow parameters must be plain names (`req: Request`); destructure them in the body");
                continue;
            }
        };
        match &*arg.ty {
            Type::Reference(r) => {
                if let Some(m) = &r.mutability {
                    errors.spanned(
                        m,
                        "dependencies are shared between executions: take `&T`, not `&mut T`",
                    );
                }
                if let Some(lt) = r.lifetime.as_ref().filter(|_| !lifetimes_only) {
                    errors.spanned(lt, "dependency parameters take no lifetime: write `&T`");
                }
                deps.push(Param {
                    ident,
                    mutability: None,
                    ty: (*r.elem).clone(),
                });
            }
            Type::ImplTrait(t) => {
                errors.spanned(t, "a workflow parameter cannot be `impl Trait`: the input is persisted, so it needs one concrete type (a `Vec<T>` rather than `impl IntoIterator<Item = T>`)");
            }
            ty => inputs.push(Param {
                ident,
                mutability,
                ty: ty.clone(),
            }),
        }
    }
    let ret = match &sig.output {
        ReturnType::Default => Ret::Plain(parse_quote!(())),
        ReturnType::Type(_, ty) => match result_args(ty) {
            Some(Ok((ok, err))) => Ret::Fallible {
                ok,
                err,
                full: (**ty).clone(),
            },
            Some(Err(())) => {
                errors.spanned(ty, "spell out the error type of a workflow: `Result<T, E>` (it is persisted and sent to parents, so it must be a concrete serializable type)");
                Ret::Plain((**ty).clone())
            }
            None => Ret::Plain((**ty).clone()),
        },
    };
    errors.check()?;
    Ok(WorkflowFn {
        attrs: item.attrs,
        vis: item.vis,
        ident: item.sig.ident,
        inputs,
        deps,
        ret,
        body: *item.block,
    })
}

/// `Some(Ok((T, E)))` for `Result<T, E>`, `Some(Err(()))` for a `Result` alias with one
/// argument, `None` for anything else.
fn result_args(ty: &Type) -> Option<Result<(Type, Type), ()>> {
    let Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return Some(Err(()));
    };
    let types: Vec<&Type> = args
        .args
        .iter()
        .filter_map(|a| match a {
            GenericArgument::Type(t) => Some(t),
            _ => None,
        })
        .collect();
    match types[..] {
        [ok, err] => Some(Ok((ok.clone(), err.clone()))),
        _ => Some(Err(())),
    }
}

/// The attributes forwarded to the generated struct; anything else is refused so it is
/// not silently dropped.
pub(crate) fn forwarded_attrs(attrs: &[Attribute], errors: &mut Errors) -> Vec<Attribute> {
    attrs
        .iter()
        .filter(|a| {
            let keep = ["doc", "cfg", "allow", "expect", "warn", "deny"]
                .iter()
                .any(|name| a.path().is_ident(name));
            if !keep {
                errors.spanned(
                    a,
                    "#[workflow] keeps doc comments, `cfg` and lint attributes; this attribute would be lost",
                );
            }
            keep
        })
        .cloned()
        .collect()
}
