use workflow::prelude::*;

#[derive(Debug, serde::Serialize, serde::Deserialize, WorkflowError)]
enum MyError {
    #[workflow_error(transparent, name = "Mine.Timeout")] //~ ERROR
    Timeout(TaskTimeout),
}

fn main() {}
