//! The fingerprint a workflow had before issue 22, when its state enum was written by
//! serde's derive (`{"Variant": {"field": …}}`): the runtime still resumes what such a
//! definition stored, converting it to today's `[tag, field, …]`, when the stored
//! fingerprint is this one. It hashed the tokens of the state enum as it was generated
//! then, so those tokens are rebuilt here, exactly, and only hashed: nothing of this is
//! emitted. Do not change this file: every token counts.

use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::Type;

use crate::yields::respan;

/// One variant of the state enum: its name and its fields, `__wf_poll` (a poll's
/// progress) included.
pub(crate) type Variant<'a> = (&'a Ident, Vec<(&'a Ident, &'a Type)>);

/// The fingerprint of the same definition before issue 22, from the variants (`Start`
/// first, whose fields are the inputs) and the tokens of the graph without policies.
pub(crate) fn fingerprint(wf: &TokenStream, variants: &[Variant<'_>], graph: &str) -> u64 {
    let state_enum = state_enum(wf, variants);
    fnv(&format!("{state_enum}\n{graph}"))
}

/// FNV-1a, as `codegen::fingerprint`.
pub(crate) fn fnv(text: &str) -> u64 {
    // An indexed loop: Cargo builds proc macros unoptimized, where an iterator chain
    // costs a few calls per byte, and a definition's text is tens of kilobytes.
    let bytes = text.as_bytes();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash = (hash ^ bytes[i] as u64).wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

fn state_enum(wf: &TokenStream, variants: &[Variant<'_>]) -> TokenStream {
    let serde_path = format!("{}::serde", wf.to_string().replace(' ', ""));
    let mut persisted = Persisted::default();
    let variants: Vec<TokenStream> = variants
        .iter()
        .enumerate()
        .map(|(v, (state, fields))| {
            let decls = fields.iter().map(|(ident, ty)| {
                if *ident == "__wf_poll" {
                    quote!(__wf_poll: #wf::codegen::PollState)
                } else {
                    persisted.field(ident, ty, v > 0)
                }
            });
            let decls: Vec<TokenStream> = decls.collect();
            quote!(#state { #(#decls),* })
        })
        .collect();
    let codecs = persisted.codecs(wf);
    quote! {
        /// The persisted state: one variant per resume point, holding the locals
        /// still needed from there on.
        #[derive(#wf::serde::Serialize, #wf::serde::Deserialize)]
        #[serde(crate = #serde_path)]
        #[allow(private_interfaces, clippy::large_enum_variant)]
        pub enum __WfState {
            #(#variants),*
        }

        #codecs
    }
}

#[derive(Default)]
struct Persisted<'a> {
    types: Vec<(String, &'a Type, bool)>,
}

impl<'a> Persisted<'a> {
    fn field(&mut self, ident: &Ident, ty: &'a Type, local: bool) -> TokenStream {
        let key = ty.to_token_stream().to_string();
        let k = match self.types.iter().position(|(t, _, _)| *t == key) {
            Some(k) => {
                self.types[k].2 |= local;
                k
            }
            None => {
                self.types.push((key, ty, local));
                self.types.len() - 1
            }
        };
        let (ser, de) = (format!("__wf_ser{k}"), format!("__wf_de{k}"));
        quote!(#[serde(serialize_with = #ser, deserialize_with = #de)] #ident: #ty)
    }

    fn codecs(&self, wf: &TokenStream) -> TokenStream {
        let p = quote!(#wf::codegen::persist);
        let codecs = self.types.iter().enumerate().map(|(k, (_, ty, _))| {
            let (ser, de) = (format_ident!("__wf_ser{k}"), format_ident!("__wf_de{k}"));
            quote! {
                fn #ser<__WfS: #wf::serde::Serializer>(
                    value: &#ty,
                    serializer: __WfS,
                ) -> ::core::result::Result<__WfS::Ok, __WfS::Error> {
                    #[allow(unused_imports)]
                    use #p::{Fallback as _, ViaSerde as _};
                    (&#p::Probe::<#ty>::new()).ser(value, serializer)
                }
                fn #de<'de, __WfD: #wf::serde::Deserializer<'de>>(
                    deserializer: __WfD,
                ) -> ::core::result::Result<#ty, __WfD::Error> {
                    #[allow(unused_imports)]
                    use #p::{Fallback as _, ViaSerde as _};
                    (&#p::Probe::<#ty>::new()).de(deserializer)
                }
            }
        });
        let checks = self.types.iter().filter(|t| t.2).map(|(_, ty, _)| {
            let span = ty.span();
            let p = respan(p.clone(), span);
            let check = quote_spanned!(span=>
                #p::persistable::<#ty>();
                (&#p::Check::<#ty>::new()).restorable();
            );
            quote!({
                #[allow(unused_imports)]
                use #wf::codegen::persist::{Restorable as _, Unsaved as _};
                #check
            })
        });
        quote! {
            #(#codecs)*
            #[allow(dead_code)]
            fn __wf_persistable() {
                #(#checks)*
            }
        }
    }
}
