//! Children with different error types: a `parallel(…)` batch fails with the error of its
//! first child that can fail, in any order, and a chain of workflows that all return
//! `NestedError<E>` flattens a grandchild's failure with `?`. No hand-written `From`.
#![deny(warnings)]
// `tests/asl.rs` includes this file as a module, where `main` is unused.
#![allow(dead_code)]

use serde::{Deserialize, Serialize};
use workflow::prelude::*;

#[derive(WorkflowError, Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
pub enum TextError {
    #[error("no text for zero")]
    Zero,
}

/// Cannot fail: its error type is `NoError`.
#[workflow(name = "ParallelCount")]
pub async fn count(n: u32) -> u32 {
    n * 10
}

#[workflow(name = "ParallelText")]
pub async fn text(n: u32) -> Result<String, TextError> {
    if n == 0 {
        return Err(TextError::Zero);
    }
    Ok(format!("#{n}"))
}

/// The infallible child first.
#[workflow(name = "ParallelCountThenText")]
pub async fn count_then_text(n: u32) -> Result<String, NestedError<TextError>> {
    let (c, t): (u32, String) = call_nested!(parallel(count(n), text(n)))?;
    Ok(format!("{c} {t}"))
}

/// The fallible child first, and another infallible one after it.
#[workflow(name = "ParallelTextThenCount")]
pub async fn text_then_count(n: u32) -> Result<String, NestedError<TextError>> {
    let (t, c, d): (String, u32, u32) = call_nested!(parallel(text(n), count(n), count(1)))?;
    Ok(format!("{t} {c} {d}"))
}

/// Only children that cannot fail: the batch's error is `NestedError<NoError>`.
#[workflow(name = "ParallelCounts")]
pub async fn counts(n: u32) -> Result<u32, NestedError<NoError>> {
    let (a, b): (u32, u32) = call_nested!(parallel(count(n), count(n + 1)))?;
    Ok(a + b)
}

/// The middle of a chain: its error is its child's `NestedError`.
#[workflow(name = "ChainMiddle")]
pub async fn middle(n: u32) -> Result<String, NestedError<TextError>> {
    let t: String = call_nested!(text(n))?;
    Ok(format!("middle {t}"))
}

/// The top of the chain: `?` flattens `NestedError<NestedError<TextError>>`.
#[workflow(name = "ChainTop")]
pub async fn top(n: u32) -> Result<String, NestedError<TextError>> {
    let m: String = call_nested!(middle(n))?;
    Ok(format!("top {m}"))
}

/// The direct child's typed error stays matchable: here, the grandchild's failure as
/// the middle workflow reported it.
#[workflow(name = "ChainMatch")]
pub async fn matching(n: u32) -> Result<String, NestedError<TextError>> {
    let got: Result<String, NestedError<NestedError<TextError>>> = call_nested!(middle(n));
    match got {
        Err(NestedError::Failed {
            error:
                NestedError::Failed {
                    error: TextError::Zero,
                    ..
                },
            ..
        }) => Ok("the grandchild had no text".to_owned()),
        other => Ok(other?),
    }
}

fn main() {
    let _ = (count_then_text, text_then_count, counts, top, matching);
}
