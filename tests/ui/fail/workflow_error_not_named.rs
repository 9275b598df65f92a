use workflow::prelude::*;

// A workflow's error type needs names: `String` has none.
#[workflow]
async fn fails(n: u32) -> Result<u32, String> { //~ ERROR
    if n == 0 {
        return Err("zero".into());
    }
    Ok(n)
}

fn main() {}
