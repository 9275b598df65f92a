use workflow::prelude::*;

#[workflow]
async unsafe fn trusted(n: u32) -> u32 { //~ ERROR
    n
}

fn main() {}
