use workflow::prelude::*;

#[workflow]
async fn double(n: u32) -> u32 {
    n * 2
}

async fn run(runtime: Runtime) {
    let _ = runtime.start(double, "21").await; //~ ERROR
}

fn main() {
    let _ = run;
}
