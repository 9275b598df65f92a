//! The `#[workflow]` attribute. Use it through the `workflow` crate, which documents it.
//!
//! The macro is a small compiler: [`parse`] reads the attribute and the function,
//! [`analyze`] finds the yield points and what must be persisted across them, [`lower`]
//! builds the state graph and the resume points, and [`codegen`] emits the state enum, the
//! `Workflow` impl and the static state graph. Errors are collected on the way and spanned
//! on the user's tokens.
#![forbid(unsafe_code)]
// Syntax trees are large and built a handful of times per macro call: boxing them would
// only add noise.
#![allow(clippy::large_enum_variant)]

mod analyze;
mod codegen;
mod errors;
mod expand;
mod lower;
mod names;
mod parse;
mod yields;

use proc_macro::TokenStream;

/// Compiles an `async fn` into a durable, resumable workflow. See the `workflow` crate.
#[proc_macro_attribute]
pub fn workflow(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::workflow(args.into(), item.into()).into()
}
