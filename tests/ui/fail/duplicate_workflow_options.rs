use workflow::prelude::*;

#[workflow(name = "First", name = "Second")] //~ ERROR
async fn named_twice() {}

#[workflow(timeout = 1.hours(), timeout = 2.hours())] //~ ERROR
async fn timed_twice() {}

#[workflow(retry(max_attempts = 2), retry(max_attempts = 3))] //~ ERROR
async fn retried_twice() {}

fn main() {}
