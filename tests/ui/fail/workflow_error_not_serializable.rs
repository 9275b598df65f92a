use workflow::prelude::*;

#[derive(Debug, WorkflowError)]
enum MyError {
    Failed,
}

// The error is persisted and sent to parents: it must be `Serialize + Deserialize`.
#[workflow]
async fn fails(n: u32) -> Result<u32, MyError> { //~ ERROR 2
    if n == 0 {
        return Err(MyError::Failed);
    }
    Ok(n)
}

fn main() {}
