use workflow::prelude::*;

#[derive(Debug, serde::Serialize, serde::Deserialize, WorkflowError)]
enum MyError {
    #[workflow_error(transparent)]
    Io(String), //~ ERROR
}

fn main() {}
