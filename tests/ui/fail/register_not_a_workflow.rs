use workflow::prelude::*;

async fn double(n: u32) -> u32 {
    n * 2
}

fn build() {
    let _ = Runtime::builder().register(double).build(); //~ ERROR
}

fn main() {
    build();
}
