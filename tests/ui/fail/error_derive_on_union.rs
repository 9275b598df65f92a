use workflow::prelude::*;

#[derive(WorkflowError)]
union Bits { //~ ERROR
    code: u32,
    raw: f32,
}

fn main() {}
