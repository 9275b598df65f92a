//! `workflow`: the command-line tool over a store file, without any workflow linked in
//! (so `workflow graph` knows none). A program that wants its workflows drawn calls
//! [`workflow::cli::main`] with its own catalog, as `examples/nesting` does.

fn main() -> std::process::ExitCode {
    workflow::cli::main(workflow::Catalog::new())
}
