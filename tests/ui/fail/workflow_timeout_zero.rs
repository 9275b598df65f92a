use workflow::prelude::*;

#[workflow(timeout = 0.secs())] //~ ERROR
async fn never_runs() {}

#[workflow(timeout = -(5.mins()))] //~ ERROR
async fn negative() {}

fn main() {}
