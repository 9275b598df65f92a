use workflow::prelude::*;

#[workflow(retry(max_attempts = 0, interval = 1.secs()))] //~ ERROR
async fn zero_attempts() {}

#[workflow(retry(jitter = half))] //~ ERROR
async fn half_jitter() {}

#[workflow(retry(on = ["States.ALL"]))] //~ ERROR
async fn reserved_name() {}

#[workflow(retry(interval = 0.secs()))] //~ ERROR
async fn zero_interval() {}

#[workflow(retry(retries = 3))] //~ ERROR
async fn typo() {}

fn main() {}
