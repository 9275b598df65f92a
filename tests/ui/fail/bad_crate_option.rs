use workflow::prelude::*;

#[workflow(crate = "my facade")] //~ ERROR
async fn spaced() {}

#[workflow(crate = workflow)] //~ ERROR
async fn unquoted() {}

fn main() {}
