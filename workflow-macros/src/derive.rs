//! `#[derive(WorkflowError)]`: error names per variant.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, LitStr};

use crate::errors::Errors;

/// What `#[workflow_error(…)]` says about a variant (or a struct).
#[derive(Default)]
struct Options {
    name: Option<LitStr>,
    non_retryable: bool,
    transparent: bool,
}

fn options(attrs: &[syn::Attribute], errors: &mut Errors) -> Options {
    let mut o = Options::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("workflow_error")) {
        let result = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("name") {
                let lit: LitStr = meta.value()?.parse()?;
                if let Err(message) = check_name(&lit.value()) {
                    return Err(syn::Error::new(lit.span(), message));
                }
                o.name = Some(lit);
            } else if meta.path.is_ident("non_retryable") {
                o.non_retryable = true;
            } else if meta.path.is_ident("transparent") {
                o.transparent = true;
            } else {
                let given = quote::ToTokens::to_token_stream(&meta.path)
                    .to_string()
                    .replace(' ', "");
                return Err(meta.error(crate::errors::unknown_option(
                    "`#[workflow_error]`",
                    &given,
                    &["name", "non_retryable", "transparent"],
                )));
            }
            Ok(())
        });
        if let Err(e) = result {
            errors.push(e);
        }
        if o.transparent && o.name.is_some() {
            errors.spanned(
                attr,
                "a `transparent` error takes the name of the error it wraps; remove `name`",
            );
        }
    }
    o
}

/// A variant's name, checked as the runtime checks policies' names.
fn check_name(name: &str) -> Result<(), String> {
    crate::policy::check_error_name(name, "choose another")
}

pub(crate) fn derive(input: TokenStream) -> TokenStream {
    let input: DeriveInput = match syn::parse2(input) {
        Ok(i) => i,
        Err(e) => return e.to_compile_error(),
    };
    let mut errors = Errors::default();
    let ident = &input.ident;
    let krate = quote!(::workflow::__private);
    // One match gives both the name and the retryability, so that a wrapped error
    // without names is one error (each method would report it once).
    let arms = match &input.data {
        Data::Enum(e) => {
            let mut arms = Vec::new();
            for v in &e.variants {
                let o = options(&v.attrs, &mut errors);
                let vi = &v.ident;
                // For a transparent variant, the span of the wrapped error's type: where a
                // type without names is reported.
                let (pattern, inner) = if o.transparent {
                    match &v.fields {
                        Fields::Unnamed(f) if f.unnamed.len() == 1 => (
                            quote!(#ident::#vi(__wf_inner)),
                            Some(f.unnamed[0].ty.span()),
                        ),
                        Fields::Named(f) if f.named.len() == 1 => {
                            let field = f.named[0].ident.as_ref();
                            (
                                quote!(#ident::#vi { #field: __wf_inner }),
                                Some(f.named[0].ty.span()),
                            )
                        }
                        _ => {
                            errors.spanned(
                                v,
                                "a `transparent` variant wraps exactly one error: `Variant(Inner)`",
                            );
                            (quote!(#ident::#vi { .. }), None)
                        }
                    }
                } else {
                    let p = match &v.fields {
                        Fields::Unit => quote!(#ident::#vi),
                        Fields::Unnamed(_) => quote!(#ident::#vi(..)),
                        Fields::Named(_) => quote!(#ident::#vi { .. }),
                    };
                    (p, None)
                };
                let name = o
                    .name
                    .as_ref()
                    .map_or_else(|| vi.to_string(), LitStr::value);
                if o.name.is_none() {
                    if let Err(message) = check_name(&name) {
                        errors.spanned(vi, message);
                    }
                }
                let retryable = !o.non_retryable;
                match inner {
                    Some(span) => {
                        let named = named(&krate, span, quote!(__wf_inner));
                        arms.push(quote!(#pattern => {
                            let (name, retryable) = #named;
                            (name, retryable && #retryable)
                        }));
                    }
                    None => arms.push(
                        quote!(#pattern => (::std::borrow::Cow::Borrowed(#name), #retryable),),
                    ),
                }
            }
            if e.variants.is_empty() {
                arms.push(quote!(_ => match *self {}));
            }
            arms
        }
        Data::Struct(s) => {
            let o = options(&input.attrs, &mut errors);
            if o.transparent {
                let (field, span) = match &s.fields {
                    Fields::Unnamed(f) if f.unnamed.len() == 1 => {
                        (quote!(0), f.unnamed[0].ty.span())
                    }
                    Fields::Named(f) if f.named.len() == 1 => {
                        let i = f.named[0].ident.as_ref();
                        (quote!(#i), f.named[0].ty.span())
                    }
                    _ => {
                        errors.spanned(ident, "a `transparent` error wraps exactly one error");
                        (quote!(0), ident.span())
                    }
                };
                let retryable = !o.non_retryable;
                let named = named(&krate, span, quote!(&self.#field));
                vec![quote!(_ => {
                    let (name, retryable) = #named;
                    (name, retryable && #retryable)
                })]
            } else {
                let name = o
                    .name
                    .as_ref()
                    .map_or_else(|| ident.to_string(), LitStr::value);
                let retryable = !o.non_retryable;
                vec![quote!(_ => (::std::borrow::Cow::Borrowed(#name), #retryable),)]
            }
        }
        Data::Union(u) => {
            errors.spanned(
                u.union_token,
                "`WorkflowError` is derived for enums and structs",
            );
            Vec::new()
        }
    };
    if let Err(e) = errors.check() {
        return e.to_compile_error();
    }
    let (imp, ty, wh) = input.generics.split_for_impl();
    quote! {
        #[automatically_derived]
        impl #imp #ident #ty #wh {
            #[doc(hidden)]
            fn __wf_error_name(&self) -> (::std::borrow::Cow<'static, str>, bool) {
                #[allow(unreachable_patterns)]
                match self { #(#arms)* }
            }
        }

        #[automatically_derived]
        impl #imp #krate::WorkflowError for #ident #ty #wh {
            fn error_name(&self) -> ::std::borrow::Cow<'static, str> {
                self.__wf_error_name().0
            }
            fn is_retryable(&self) -> bool {
                self.__wf_error_name().1
            }
        }
    }
}

/// The name and retryability of the error `expr` wraps, spanned on its type: a type
/// without names is reported there.
fn named(krate: &TokenStream, span: proc_macro2::Span, expr: TokenStream) -> TokenStream {
    let krate = crate::yields::respan(krate.clone(), span);
    let expr = crate::yields::respan(expr, span);
    quote_spanned!(span=> #krate::codegen::error_name(#expr))
}
