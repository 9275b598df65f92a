//! Project chores. `cargo run -p xtask -- gen-flows [--seed N] [--count N]
//! [--no-value-block-yields] [--check]` writes (or checks) `tests/generated/flows.rs`.

use xtask::gen;

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("gen-flows") => match gen_flows(&args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("gen-flows: {e}");
                ExitCode::FAILURE
            }
        },
        _ => {
            eprintln!(
                "usage: cargo run -p xtask -- gen-flows [--seed N] [--count N] \
                 [--no-value-block-yields] [--check]"
            );
            ExitCode::FAILURE
        }
    }
}

fn gen_flows(args: &[String]) -> Result<(), String> {
    let command = gen::Command::parse(args.iter().map(String::as_str))?;
    // xtask/ is one level below the workspace root.
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("xtask has no parent directory")?
        .to_owned();
    let path = root.join(gen::OUTPUT);
    let text = gen::generate(&command.config);
    if command.check {
        let on_disk = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if on_disk != text {
            return Err(format!(
                "{} is not what `gen-flows {}` writes; run it without --check",
                path.display(),
                command.config.args()
            ));
        }
        println!("{} is up to date", path.display());
    } else {
        std::fs::write(&path, &text)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!(
            "wrote {} ({} workflows, {} lines)",
            path.display(),
            command.config.count,
            text.lines().count()
        );
    }
    Ok(())
}
