use workflow::prelude::*;

pub struct Report {
    pub total: u32,
}

#[workflow]
async fn reports(n: u32) -> Report { //~ ERROR 2
    Report { total: n }
}

fn main() {}
