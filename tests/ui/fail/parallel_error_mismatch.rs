use workflow::prelude::*;

#[derive(Debug, serde::Serialize, serde::Deserialize, WorkflowError)]
enum TextError {
    Empty,
}

#[derive(Debug, serde::Serialize, serde::Deserialize, WorkflowError)]
enum CountError {
    TooMany,
}

#[workflow]
async fn infallible(n: u32) -> u32 {
    n
}

#[workflow]
async fn text(n: u32) -> Result<String, TextError> {
    Ok(n.to_string())
}

#[workflow]
async fn count(n: u32) -> Result<u32, CountError> {
    Ok(n)
}

// The batch's error is the first child's that can fail, `TextError`; `infallible`'s
// converts into it, but `CountError` does not: the error is on that child.
#[workflow]
async fn batch(n: u32) -> Result<(u32, String, u32), NestedError<TextError>> {
    let (a, b, c): (u32, String, u32) = call_nested!(parallel(
        infallible(n),
        text(n),
        count(n), //~ ERROR
    ))?;
    Ok((a, b, c))
}

fn main() {}
