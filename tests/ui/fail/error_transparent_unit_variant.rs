use workflow::prelude::*;

#[derive(Debug, serde::Serialize, serde::Deserialize, WorkflowError)]
enum MyError {
    #[workflow_error(transparent)] //~ ERROR
    Timeout,
}

fn main() {}
