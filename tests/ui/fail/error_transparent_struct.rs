use workflow::prelude::*;

#[derive(Debug, serde::Serialize, serde::Deserialize, WorkflowError)]
enum Inner {
    Failed,
}

#[derive(Debug, serde::Serialize, serde::Deserialize, WorkflowError)]
#[workflow_error(transparent)]
struct Wrapper { //~ ERROR
    inner: Inner,
    context: String,
}

fn main() {}
