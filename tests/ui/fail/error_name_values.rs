use workflow::prelude::*;

#[derive(Debug, serde::Serialize, serde::Deserialize, WorkflowError)]
enum MyError {
    #[workflow_error(name = "")] //~ ERROR
    Empty,
    #[workflow_error(name = States)] //~ ERROR
    NotAString,
    #[workflow_error(nonretryable)] //~ ERROR
    Typo,
}

#[derive(Debug, serde::Serialize, serde::Deserialize, WorkflowError)]
#[workflow_error(name = "States.Runtime")] //~ ERROR
struct Reserved;

fn main() {}
