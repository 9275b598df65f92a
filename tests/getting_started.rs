//! The README's "Getting started" builds and runs, as a new user would use it: its
//! `Cargo.toml` lines and its `src/main.rs` are copied from README.md (so the README
//! cannot drift from what works) into a fresh crate that depends on this repository by
//! path, which `cargo run` builds and runs.
//!
//! The crate has its own target directory under `target/tmp/`, so a second run rebuilds
//! only what changed.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The fenced block that follows the line `<!-- {marker} -->` in `text`.
fn block(text: &str, marker: &str) -> String {
    let comment = format!("<!-- {marker} -->");
    let at = text
        .find(&comment)
        .unwrap_or_else(|| panic!("README.md has no `{comment}`"));
    let rest = &text[at + comment.len()..];
    let open = rest.find("```").expect("a fenced block after the marker");
    let body = &rest[open..];
    let body = &body[body.find('\n').expect("a fence line") + 1..];
    let close = body.find("\n```").expect("the block is closed");
    body[..=close].to_owned()
}

/// The README's dependency lines, with the `workflow` line pointing at this repository.
fn dependencies(readme_block: &str, root: &Path) -> String {
    let root = root.display().to_string().replace('\\', "/");
    let mut out = String::new();
    let mut found = false;
    for line in readme_block.lines() {
        if line.starts_with("workflow = ") {
            assert!(
                line.contains("path = "),
                "the README gives a path form: {line}"
            );
            found = true;
            out += &format!("workflow = {{ path = \"{root}\" }}\n");
        } else {
            out += line;
            out.push('\n');
        }
    }
    assert!(
        found,
        "the README's dependencies name `workflow`:\n{readme_block}"
    );
    out
}

#[test]
fn the_readme_first_program_builds_and_runs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let deps = block(&readme, "getting-started: Cargo.toml");
    let main = block(&readme, "getting-started: src/main.rs");
    for dep in ["[dependencies]", "workflow", "tokio", "serde", "thiserror"] {
        assert!(
            deps.contains(dep),
            "the README's dependencies lack {dep}:\n{deps}"
        );
    }

    let dir: PathBuf = Path::new(env!("CARGO_TARGET_TMPDIR")).join("getting-started");
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let manifest = format!(
        "[package]\nname = \"first-workflow\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\n[workspace]\n\n{}",
        dependencies(&deps, root)
    );
    std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    std::fs::write(dir.join("src/main.rs"), &main).unwrap();
    // The workspace's lock file: the same versions as every other test, no resolution.
    std::fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    // The program keeps its executions in `target/first.sqlite`, relative to where it runs.
    let _ = std::fs::remove_file(dir.join("target/first.sqlite"));

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .arg("run")
        .arg("--quiet")
        .arg("--manifest-path")
        .arg(dir.join("Cargo.toml"))
        .current_dir(&dir)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .output()
        .expect("cargo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the README's program failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.starts_with("Hello, Ada! Hello, Grace! Hello, Barbara!\n"),
        "{stdout}"
    );
    // The tree: the top-level execution, then its three children.
    assert_eq!(stdout.matches("Succeeded").count(), 4, "{stdout}");
    assert!(dir.join("target/first.sqlite").exists());
}
