use workflow::prelude::*;

#[derive(serde::Serialize)]
struct Report {
    lines: Vec<String>,
}

#[workflow]
async fn keeps_a_report() -> usize {
    let report: Report = Report { lines: Vec::new() }; //~ ERROR
    sleep!(1.secs());
    report.lines.len()
}

fn main() {}
