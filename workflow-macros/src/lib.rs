//! The `#[workflow]` attribute. Use it through the `workflow` crate, which documents it.
//!
//! The macro is a small compiler: `parse` reads the attribute and the function (`policy`
//! its `#[retry]` / `#[timeout]` attributes), `analyze` finds the yield points and the
//! control flow around them, `lower` builds the IR (each resume point's code, exits and
//! persisted fields, and the state graph whose edges are those exits), and `codegen`
//! prints it as the state enum, the `Workflow` impl and the static state graph.
//! Errors are collected on the way and spanned on the user's tokens. `derive` is
//! `#[derive(WorkflowError)]`.
#![forbid(unsafe_code)]
// Syntax trees are large and built a handful of times per macro call: boxing them would
// only add noise.
#![allow(clippy::large_enum_variant)]

mod analyze;
mod codegen;
mod derive;
mod errors;
mod expand;
mod fingerprint;
#[cfg(test)]
mod fuzz;
mod legacy;
mod lower;
mod names;
mod parse;
mod policy;
mod yields;

use proc_macro::TokenStream;

/// Compiles an `async fn` into a durable, resumable workflow.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use workflow::prelude::*;
///
/// pub struct Shop;
/// impl Shop {
///     async fn price(&self, item: &str) -> Result<u32, String> {
///         Ok(item.len() as u32)
///     }
/// }
///
/// #[derive(Debug, Serialize, Deserialize, thiserror::Error, WorkflowError)]
/// #[error("{0}")]
/// pub struct ShopError(String);
/// impl From<String> for ShopError {
///     fn from(e: String) -> Self {
///         ShopError(e)
///     }
/// }
///
/// /// Prices a basket; waits a second between expensive items.
/// #[workflow(name = "PriceBasket")]
/// async fn price_basket(shop: &Shop, items: Vec<String>) -> Result<u32, ShopError> {
///     let mut total: u32 = 0;
///     for item in items {
///         let price: u32 = shop.price(&item).await?; // a task, checkpointed
///         if price > 5 {
///             sleep!(1.secs()); // a durable timer
///         }
///         total += price;
///     }
///     Ok(total)
/// }
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let runtime = Runtime::builder().register(price_basket).dependency(Shop).build().unwrap();
/// let basket = vec!["tea".to_owned(), "marmalade".to_owned()];
/// let run = runtime.start(price_basket, basket).await.unwrap();
/// assert_eq!(run.result().await.unwrap(), 12);
/// # }
/// ```
///
/// # What it generates
///
/// The function is replaced by a unit struct of the same name implementing `Workflow`
/// (and `Clone`, `Copy` and `Debug`), with, in a `const _: () = { … }` block:
///
/// ```text
/// pub enum __WfState {                          // persisted at every checkpoint
///     Start { items: Vec<String> },             // the input
///     AfterShopPrice { total: u32, price: u32, __wf_for2: ForIter },  // live locals only
///     AfterSleep { total: u32, price: u32, __wf_for2: ForIter },
/// }
/// impl Serialize for __WfState { … }            // `[tag, field, …]`: `[1, 12, 5, […]]`
/// impl Deserialize for __WfState { … }          // the fields through their own serde
/// impl Workflow for price_basket {
///     const NAME = "PriceBasket"; type Input = Vec<String>; type Output = u32; …
///     fn graph() -> &'static StateGraph;       // "shop.price", "sleep", "Succeed", "Fail" and edges
///     fn step(state, deps, cx) -> Step;         // one match arm per state
/// }
/// ```
///
/// The arm of each state runs the rest of the function from there: the rest of the
/// current block, re-entering the enclosing loops, until the next yield point returns
/// the next state. `for` loops persist their remaining items (or a range's bounds), and
/// their pattern is bound again from the current item on resume.
///
/// # Attribute options
///
/// - `name = "…"`: the published name (1–80 letters, digits, `-`, `_`); default: the
///   function's name.
/// - `crate = "…"`: the path of the `workflow` crate, if it is renamed or re-exported.
/// - `retry(on = ["…"], interval = …, max_attempts = …, backoff = …, max_delay = …,
///   jitter = full | none)`: the retry policy of every task and poll without one of its
///   own.
/// - `timeout = …`: how long an execution may run.
///
/// On a yield statement, `#[retry(…)]` (same options, or `none`) and `#[timeout(…)]` set
/// that call's policy; the `workflow` crate's docs describe them.
///
/// # Errors
///
/// Every misuse is a compile error on the user's code, reported all at once: a yield
/// point in a closure, an async block, a nested item or a larger expression; a local
/// persisted without a type or with a borrowed type; a `for` over a borrowed iterator
/// around a yield point; a `poll_until!` without `timeout`/`max_attempts`, with a zero
/// interval, or with an unknown or repeated option; a `wait_for_callback!` without
/// `timeout`, or whose first argument is not a closure taking the token; a retry policy with literal values
/// that cannot work (a backoff below 1, zero attempts with a delay, a zero interval, a
/// name starting with `States.`) or on a statement that is not a call; a non-`async`,
/// generic or method function; a bad `name`.
#[proc_macro_attribute]
pub fn workflow(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::workflow(args.into(), item.into()).into()
}

/// `poll_until!` outside a `#[workflow]` body, where `#[workflow]` did not lower it: an
/// error on the call. (Documented in the `workflow` crate, which re-exports it.)
#[proc_macro]
pub fn poll_until(_: TokenStream) -> TokenStream {
    outside_workflow("poll_until!")
}

/// `call_nested!` outside a `#[workflow]` body: an error on the call.
#[proc_macro]
pub fn call_nested(_: TokenStream) -> TokenStream {
    outside_workflow("call_nested!")
}

/// `sleep!` outside a `#[workflow]` body: an error on the call.
#[proc_macro]
pub fn sleep(_: TokenStream) -> TokenStream {
    outside_workflow("sleep!")
}

/// `wait_for_callback!` outside a `#[workflow]` body: an error on the call.
#[proc_macro]
pub fn wait_for_callback(_: TokenStream) -> TokenStream {
    outside_workflow("wait_for_callback!")
}

/// A procedural macro rather than a `macro_rules!` `compile_error!`, whose span would be
/// inside the library: tools that read JSON diagnostics would point there instead of at
/// the call.
fn outside_workflow(name: &str) -> TokenStream {
    let message =
        format!("`{name}` can only be used as a statement of a `#[workflow]` async fn body");
    syn::Error::new(proc_macro2::Span::call_site(), message)
        .to_compile_error()
        .into()
}

/// Derives `WorkflowError`: a stable name per variant, for retry policies, the history
/// and the ASL.
///
/// Each variant is named after itself unless `#[workflow_error(name = "…")]` says
/// otherwise; `#[workflow_error(non_retryable)]` keeps every policy from retrying it;
/// `#[workflow_error(transparent)]` on a variant wrapping one error takes that error's
/// name and retryability. Names starting with `States.` (Step Functions' own) are refused.
/// See `WorkflowError` in the `workflow` crate for an example.
#[proc_macro_derive(WorkflowError, attributes(workflow_error))]
pub fn derive_workflow_error(item: TokenStream) -> TokenStream {
    derive::derive(item.into()).into()
}
