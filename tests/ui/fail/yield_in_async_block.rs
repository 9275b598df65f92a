use workflow::prelude::*;

#[workflow]
async fn child(n: u32) -> u32 {
    n
}

// The async block is its own future: the workflow cannot checkpoint inside it.
#[workflow]
async fn parent() -> Result<u32, NestedError<NoError>> {
    let later = async {
        let n: u32 = call_nested!(child(1))?; //~ ERROR
        Ok::<u32, NestedError<NoError>>(n)
    };
    later.await
}

fn main() {}
