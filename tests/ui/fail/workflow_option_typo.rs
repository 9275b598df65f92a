use workflow::prelude::*;

#[workflow(timout = 1.hours())] //~ ERROR
async fn misspelt() {}

fn main() {}
