//! The fingerprints earlier builds gave a definition, so that what they stored still
//! resumes: computed only with the `legacy-fingerprints` feature, which a user turns on
//! while executions stored by an earlier version of the crate are in flight (the
//! README's upgrade notes). Each hashed the text rustc printed for tokens the macro
//! built, so those tokens are rebuilt here, exactly, and only printed and hashed:
//! nothing of this is emitted. Do not change this file: every token counts.
//!
//! - *Printed* (issue 22 until the fingerprint became toolchain-independent): states in
//!   today's encoding, the fingerprint over the state enum's declaration, the
//!   `STATE_ENCODING` line and the graph's shape as once emitted (`graph_shape`).
//! - *Derived* (before issue 22): the state enum written by serde's derive,
//!   `{"Variant": {"field": …}}`, which the runtime converts to `[tag, field, …]`.

use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::Type;

use crate::codegen::{callback_value, name_of, Codegen};
use crate::fingerprint::fnv;
use crate::lower::{Kind, On};
use crate::yields::respan;

/// One variant of the state enum: its name and its fields, `__wf_poll` (a poll's
/// progress) included.
pub(crate) type Variant<'a> = (&'a Ident, Vec<(&'a Ident, &'a Type)>);

/// `Workflow::LEGACY`: the printed fingerprint, then the derived one with the variants'
/// names and fields in tag order, from the state enum's declaration as emitted and its
/// variants (`Start` first, whose fields are the inputs).
pub(crate) fn legacy(
    cg: &Codegen<'_>,
    decl: &TokenStream,
    variants: &[Variant<'_>],
) -> TokenStream {
    let wf = cg.wf();
    let graph = cg.graph_shape().to_string();
    let printed = fnv(&format!("{decl}\n{STATE_ENCODING}\n{graph}"));
    let derived = fingerprint(&cg.full(), variants, &graph);
    let variants = variants.iter().map(|(state, fields)| {
        let name = state.to_string();
        let fields = fields.iter().map(|(i, _)| i.to_string());
        quote!((#name, &[#(#fields),*]))
    });
    quote! {
        &[
            #wf::codegen::persist::Legacy { fingerprint: #printed, derived: __WfNone },
            #wf::codegen::persist::Legacy {
                fingerprint: #derived,
                derived: __WfSome(&[#(#variants),*]),
            },
        ]
    }
}

/// How the state enum is written, as the printed fingerprint said it.
const STATE_ENCODING: &str = "state encoding: [tag, field, …] (issue 22)";

/// The fingerprint of the same definition before issue 22, from the variants and the
/// text of the graph's shape.
fn fingerprint(wf: &TokenStream, variants: &[Variant<'_>], graph: &str) -> u64 {
    let state_enum = state_enum(wf, variants);
    fnv(&format!("{state_enum}\n{graph}"))
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

impl Codegen<'_> {
    /// The graph's shape, as the graph was once emitted: only hashed into the
    /// fingerprint, so every token of it is as it has always been.
    fn graph_shape(&self) -> TokenStream {
        let wf = self.full();
        let timeout = quote!(::core::option::Option::None);
        let name = &self.name;
        let edges = |edges: &[crate::lower::Edge]| -> Vec<TokenStream> {
            edges
                .iter()
                .map(|e| {
                    let to = e.to;
                    let on = match e.on {
                        On::Next => quote!(Next),
                        On::Error => quote!(Error),
                    };
                    quote!(#wf::Edge { to: #to, on: #wf::Transition::#on })
                })
                .collect()
        };
        let start = edges(&self.ir.start);
        let nodes = self.ir.nodes.iter().map(|n| {
            let node_name = &n.name;
            let kind = match &n.kind {
                Kind::Task => quote!(#wf::NodeKind::Task),
                Kind::Wait => quote!(#wf::NodeKind::Wait),
                Kind::Poll => quote!(#wf::NodeKind::Poll),
                Kind::Succeed => quote!(#wf::NodeKind::Succeed),
                Kind::Fail => quote!(#wf::NodeKind::Fail),
                Kind::Child(p) => {
                    let name = name_of(&wf, p);
                    quote!(#wf::NodeKind::Child { workflow: #name })
                }
                Kind::Parallel(ps) => {
                    let names = ps.iter().map(|p| name_of(&wf, p));
                    quote!(#wf::NodeKind::Parallel {
                        workflows: ::std::boxed::Box::leak(::std::boxed::Box::new([#(#names),*])),
                    })
                }
                Kind::Callback {
                    value,
                    unwrapped,
                    heartbeat,
                } => {
                    let ty = callback_value(&wf, value.as_ref(), *unwrapped);
                    quote!(#wf::NodeKind::Callback {
                        value: ::core::any::type_name::<#ty>(),
                        heartbeat: #heartbeat,
                        accepts: #wf::codegen::accepts::<#ty>,
                    })
                }
                Kind::Map(p, max) => {
                    let max = match max {
                        Some(m) => quote!(::core::option::Option::Some(#m)),
                        None => quote!(::core::option::Option::None),
                    };
                    let name = name_of(&wf, p);
                    quote!(#wf::NodeKind::Map { workflow: #name, max_concurrency: #max })
                }
            };
            let edges = edges(&n.edges);
            let policy = quote!(::core::option::Option::None);
            quote!(#wf::Node { name: #node_name, kind: #kind, edges: &[#(#edges),*], policy: #policy })
        });
        quote! {
            static GRAPH: ::std::sync::LazyLock<#wf::StateGraph> = ::std::sync::LazyLock::new(|| {
                use #wf::codegen::{ChildIsNot as _, ChildIsWorkflow as _};
                #wf::StateGraph {
                    workflow: #name,
                    start: &[#(#start),*],
                    nodes: ::std::boxed::Box::leak(::std::boxed::Box::new([#(#nodes),*])),
                    timeout: #timeout,
                }
            });
            &GRAPH
        }
    }
}
