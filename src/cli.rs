//! The `workflow` command-line tool: list, show and draw the executions of a store file,
//! and serve the console over it, while a runtime may be using the file.
//!
//! The `workflow` binary (package `workflow-cli`) links no workflow, so it draws none;
//! to get the tool with your workflows, call [`main`] from a binary of your own:
//!
//! ```no_run
//! use workflow::prelude::*;
//!
//! #[workflow]
//! async fn hello(name: String) -> String {
//!     format!("Hello, {name}")
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     workflow::cli::main(workflow::Catalog::new().register(hello))
//! }
//! ```
//!
//! ```text
//! workflow list [--workflow NAME] [--status S] [--since 1h] [--limit N] [--json]
//! workflow show ID [--json]          status, input, output or error, children, history
//! workflow tree ID [--json]          the execution and its descendants
//! workflow graph NAME [--format mermaid|dot|svg|asl]
//! workflow workflows                 the workflows this binary links
//! workflow console [--addr 127.0.0.1:7878]
//! workflow redrive ID --console URL  through the console of the program that runs it
//! workflow cancel ID --console URL
//! ```
//!
//! `redrive` and `cancel` ask the program that runs the workflows, through its console's
//! JSON API ([`console`](crate::console)): only that program has the workflows'
//! dependencies, and the store's lock. The other commands but `graph` and `workflows`
//! read the store given by `--db` (or
//! `WORKFLOW_DB`) through a read-only connection
//! ([`SqliteStore::open_read_only`](crate::SqliteStore::open_read_only)): it takes no
//! lock, writes nothing, and never makes the runtime wait.

use std::ffi::OsString;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use serde_json::{json, Value};
use workflow_runtime::{
    BuildError, Catalog, ExecutionFilter, ExecutionId, ExecutionTree, OpenError, Runtime,
    SqliteStore, StoreError,
};

use crate::console::{Console, ConsoleError};
use crate::inspect::{self, Details};

/// Runs the tool on the process's arguments and prints what went wrong, if anything.
/// The exit code is 0 on success, 1 if the command failed, 2 for bad arguments.
pub fn main(catalog: Catalog) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start tokio: {e}");
            return ExitCode::FAILURE;
        }
    };
    let args: Vec<OsString> = std::env::args_os().collect();
    match runtime.block_on(run(catalog, args, &mut std::io::stdout().lock())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Usage(e)) => {
            // clap formats help, versions and usage errors itself.
            let _ = e.print();
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
        }
        // `workflow list | head`: the reader has what it wanted.
        Err(CliError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// The arguments do not parse (also `--help` and `--version`, which clap prints).
    #[error("{0}")]
    Usage(#[from] clap::Error),
    /// No store file was given.
    #[error("no store: pass `--db FILE` or set WORKFLOW_DB")]
    NoStore,
    /// The store file could not be opened.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No workflow of this name is linked into the binary.
    #[error("no workflow named `{name}` is linked into this binary (it knows: {known})")]
    UnknownWorkflow {
        /// The name asked for.
        name: String,
        /// The names it knows, comma-separated.
        known: String,
    },
    /// A `--status` that is not a status.
    #[error("no status `{given}`; one of: {}", inspect::STATUSES.join(", "))]
    UnknownStatus {
        /// What was given.
        given: String,
    },
    /// A `--since` that is neither a duration nor a time.
    #[error(
        "`--since {0}` is neither a duration (`90s`, `2h`) nor a time (`2026-12-03T10:00:00Z`)"
    )]
    BadSince(String),
    /// The console could not be served.
    #[error(transparent)]
    Serve(#[from] ConsoleError),
    /// The console of `redrive` or `cancel` could not be reached.
    #[error("cannot reach the console at {url}: {message}")]
    Console {
        /// The action's URL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The console refused the action (the execution cannot be redriven, …).
    #[error("{message}")]
    Refused {
        /// The console's reason.
        message: String,
    },
    /// Deploying to Step Functions failed.
    #[error(transparent)]
    Sfn(#[from] crate::sfn::SfnError),
    /// `deploy` in a binary that links no workflow.
    #[error("this binary links no workflow to deploy: run `deploy` from a program that calls `workflow::cli::main` with its catalog")]
    NothingToDeploy,
    /// Writing the output failed.
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
    /// The runtime over the store could not be built.
    #[error(transparent)]
    Build(#[from] BuildError),
}

#[derive(Parser)]
#[command(
    name = "workflow",
    version,
    about = "See the executions of a workflow store (list, show, tree, graph, console), act on them (redrive, cancel), deploy the workflows to Step Functions"
)]
struct Args {
    /// The store file (SQLite).
    #[arg(long, env = "WORKFLOW_DB", global = true, value_name = "FILE")]
    db: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Executions, newest first, as a table.
    List {
        /// Only this workflow's.
        #[arg(long)]
        workflow: Option<String>,
        /// Only those with this status (Running, Succeeded, Failed, …).
        #[arg(long)]
        status: Option<String>,
        /// Only those started since: a duration ago (`90s`, `2h`) or a time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Only top-level executions (no parent).
        #[arg(long)]
        top_level: bool,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// JSON lines for scripts, one execution per line.
        #[arg(long)]
        json: bool,
    },
    /// One execution: status, input, output or error, timings, parent, children, history.
    Show {
        /// The execution's id.
        id: String,
        /// One JSON document.
        #[arg(long)]
        json: bool,
    },
    /// An execution and its descendants, with statuses and durations.
    Tree {
        /// The execution's id.
        id: String,
        /// One JSON document.
        #[arg(long)]
        json: bool,
    },
    /// A linked workflow's state graph, or its ASL.
    Graph {
        /// The workflow's name.
        name: String,
        /// The drawing.
        #[arg(long, value_enum, default_value_t = Format::Mermaid)]
        format: Format,
        /// For `--format asl`: where its Task states run the steps.
        #[arg(long, value_enum, default_value_t = Target::Lambda)]
        target: Target,
    },
    /// Creates or updates, on AWS Step Functions, the activity and a state machine per
    /// linked workflow (children first), whose steps an activity worker runs. Uses the
    /// default AWS credential chain; prints the ARNs.
    Deploy {
        /// The IAM role the state machines run as.
        #[arg(long, env = "WORKFLOW_ROLE_ARN")]
        role_arn: String,
        /// The service's URL, for a local engine (`http://127.0.0.1:4566`).
        #[arg(long, env = "AWS_ENDPOINT_URL_SFN", value_name = "URL")]
        endpoint_url: Option<String>,
        /// The region (else the environment's or the profile's).
        #[arg(long)]
        region: Option<String>,
        /// Put before every name, to keep deployments apart (`staging-`).
        #[arg(long, default_value = "")]
        prefix: String,
        /// The activity's name (after the prefix).
        #[arg(long, default_value = "workflow-step-handler")]
        activity: String,
        /// Turn X-Ray tracing on for the state machines.
        #[arg(long)]
        tracing: bool,
        /// One JSON document instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// The workflows this binary links.
    Workflows,
    /// Redrives a failed, timed-out or faulted execution, through the console of the
    /// program that runs it (only that program can run the workflow again).
    Redrive {
        /// The execution's id.
        id: String,
        #[command(flatten)]
        console: Remote,
    },
    /// Cancels an execution and its children, through the console of the program that
    /// runs it.
    Cancel {
        /// The execution's id.
        id: String,
        #[command(flatten)]
        console: Remote,
    },
    /// Serves the web console over the store, read-only.
    Console {
        /// Where to listen.
        #[arg(long, default_value = "127.0.0.1:7878")]
        addr: SocketAddr,
        /// Allow an address other than loopback (needs `--token`).
        #[arg(long)]
        allow_remote: bool,
        /// The token every request must carry (at least 16 characters).
        #[arg(long, env = "WORKFLOW_CONSOLE_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
}

/// Where a running program's console is, for the actions.
#[derive(clap::Args)]
struct Remote {
    /// The console's base URL (`http://127.0.0.1:7878`).
    #[arg(long, env = "WORKFLOW_CONSOLE", value_name = "URL")]
    console: String,
    /// Its token, if it has one.
    #[arg(long, env = "WORKFLOW_CONSOLE_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

impl Remote {
    /// Posts `{"id": id}` to the console's `/api/{action}`; its JSON answer.
    async fn act(&self, action: &str, id: &str) -> Result<Value, CliError> {
        let url = format!("{}/api/{action}", self.console.trim_end_matches('/'));
        let mut request = reqwest::Client::new().post(&url).json(&json!({ "id": id }));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let unreachable = |e: reqwest::Error| CliError::Console {
            url: url.clone(),
            message: e.to_string(),
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        let message = body["error"]
            .as_str()
            .map_or_else(|| format!("the console answered {status}"), str::to_owned);
        Err(CliError::Refused { message })
    }
}

/// [`asl::Target`](crate::asl::Target), for the command line.
#[derive(Clone, Copy, ValueEnum)]
enum Target {
    Lambda,
    Activity,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Mermaid,
    Dot,
    Svg,
    Asl,
}

/// Runs one command. `args` starts with the program's name, as `std::env::args_os`
/// does; the output goes to `out`.
pub async fn run(
    catalog: Catalog,
    args: impl IntoIterator<Item = impl Into<OsString> + Clone>,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let args = Args::try_parse_from(args)?;
    match args.command {
        Command::Deploy {
            role_arn,
            endpoint_url,
            region,
            prefix,
            activity,
            tracing,
            json,
        } => {
            if catalog.is_empty() {
                return Err(CliError::NothingToDeploy);
            }
            let sfn =
                crate::sfn::StepFunctions::connect(endpoint_url.as_deref(), region.as_deref())
                    .await;
            let options = crate::sfn::DeployOptions::new(role_arn)
                .prefix(prefix)
                .activity(activity)
                .tracing(tracing);
            let deployment = sfn.deploy(catalog.graphs(), &options).await?;
            if json {
                let doc = json!({
                    "activity": deployment.activity_arn(),
                    "state_machines": deployment.state_machines(),
                    "created": deployment.created(),
                });
                writeln!(out, "{doc}")?;
            } else {
                writeln!(out, "activity {}", deployment.activity_arn())?;
                for (workflow, arn) in deployment.state_machines() {
                    let how = if deployment.created().contains(workflow) {
                        "created"
                    } else {
                        "updated"
                    };
                    writeln!(out, "{workflow} {arn} ({how})")?;
                }
            }
        }
        Command::Graph {
            name,
            format,
            target,
        } => {
            let graph = catalog
                .graph(&name)
                .ok_or_else(|| unknown_workflow(&catalog, &name))?;
            let text = match format {
                Format::Mermaid => graph.to_mermaid(),
                Format::Dot => graph.to_dot(),
                Format::Svg => graph.to_svg(),
                Format::Asl => {
                    let target = match target {
                        Target::Lambda => crate::asl::Target::Lambda,
                        Target::Activity => crate::asl::Target::Activity,
                    };
                    catalog
                        .asl_for(&name, target)
                        .map(|m| m.to_pretty())
                        .unwrap_or_default()
                }
            };
            writeln!(out, "{}", text.trim_end())?;
        }
        Command::Workflows => {
            for name in catalog.names() {
                writeln!(out, "{name}")?;
            }
        }
        Command::List {
            workflow,
            status,
            since,
            top_level,
            limit,
            json,
        } => {
            let runtime = open(args.db)?;
            let mut filter = ExecutionFilter::new().newest_first().limit(limit);
            if let Some(w) = workflow {
                filter = filter.workflow(w);
            }
            if let Some(s) = status {
                let status =
                    inspect::parse_status(&s).ok_or(CliError::UnknownStatus { given: s })?;
                filter = filter.status(status);
            }
            if let Some(since) = since {
                let at = inspect::parse_since(&since).ok_or(CliError::BadSince(since))?;
                filter = filter.since(at);
            }
            if top_level {
                filter = filter.top_level();
            }
            let listing = runtime.list(filter).await?;
            if json {
                for e in &listing.executions {
                    let line = json!({
                        "id": e.id.as_str(),
                        "workflow": e.workflow,
                        "status": e.status.as_str(),
                        "parent": e.parent.as_ref().map(ExecutionId::as_str),
                        "created_at": inspect::time(e.created_at),
                        "updated_at": inspect::time(e.updated_at),
                        "duration_ms": e.updated_at.since(e.created_at).as_millis(),
                    });
                    writeln!(out, "{line}")?;
                }
            } else {
                let rows: Vec<Vec<String>> = listing
                    .executions
                    .iter()
                    .map(|e| {
                        vec![
                            e.id.to_string(),
                            e.workflow.clone(),
                            e.status.as_str().to_owned(),
                            inspect::time(e.created_at),
                            inspect::duration(e.updated_at.since(e.created_at)),
                        ]
                    })
                    .collect();
                table(
                    out,
                    &["ID", "WORKFLOW", "STATUS", "STARTED", "DURATION"],
                    &rows,
                )?;
            }
            for row in &listing.corrupt {
                eprintln!("warning: {row}");
            }
        }
        Command::Show { id, json } => {
            let runtime = open(args.db)?;
            let details = Details::read(&runtime, &ExecutionId::from(id)).await?;
            if json {
                writeln!(out, "{}", inspect::pretty(&show_json(&details)))?;
            } else {
                show(out, &details)?;
            }
        }
        Command::Tree { id, json } => {
            let runtime = open(args.db)?;
            let tree = runtime.tree(&ExecutionId::from(id)).await?;
            if json {
                writeln!(out, "{}", inspect::pretty(&tree_json(&tree)))?;
            } else {
                write!(out, "{tree}")?;
            }
        }
        Command::Redrive { id, console } => {
            let answer = console.act("redrive", &id).await?;
            let children: Vec<&str> = answer["children"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            writeln!(out, "Redrove {id} (redrive #{}).", answer["count"])?;
            if !children.is_empty() {
                writeln!(out, "Running again with it: {}", children.join(", "))?;
            }
        }
        Command::Cancel { id, console } => {
            let answer = console.act("cancel", &id).await?;
            if answer["cancelled"] == true {
                writeln!(out, "Cancelled {id}.")?;
            } else {
                writeln!(out, "{id} had already ended.")?;
            }
        }
        Command::Console {
            addr,
            allow_remote,
            token,
        } => {
            let runtime = open(args.db)?;
            let mut console = Console::new(&runtime).catalog(catalog).read_only();
            if allow_remote {
                console = console.allow_remote();
            }
            if let Some(token) = token {
                console = console.token(token);
            }
            let listener = console.bind(addr).await?;
            let local = listener.local_addr()?;
            writeln!(
                out,
                "The console (read-only) is on http://{local}/ ; Ctrl-C stops it."
            )?;
            out.flush()?;
            axum::serve(listener, console.router())
                .with_graceful_shutdown(async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await?;
        }
    }
    Ok(())
}

/// A runtime over the store, read-only: it lists, reads histories and builds trees.
fn open(db: Option<PathBuf>) -> Result<Runtime, CliError> {
    let db = db.ok_or(CliError::NoStore)?;
    let store = SqliteStore::open_read_only(db)?;
    Ok(Runtime::builder().store(store).build()?)
}

fn unknown_workflow(catalog: &Catalog, name: &str) -> CliError {
    let known: Vec<_> = catalog.names().collect();
    CliError::UnknownWorkflow {
        name: name.to_owned(),
        known: if known.is_empty() {
            "none; see `workflow::cli::main`".to_owned()
        } else {
            known.join(", ")
        },
    }
}

/// Columns padded to their widest cell.
fn table(out: &mut dyn Write, header: &[&str], rows: &[Vec<String>]) -> std::io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |out: &mut dyn Write, cells: &mut dyn Iterator<Item = &str>| {
        let cells: Vec<String> = cells
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        writeln!(out, "{}", cells.join("  ").trim_end())
    };
    line(out, &mut header.iter().copied())?;
    for row in rows {
        line(out, &mut row.iter().map(String::as_str))?;
    }
    Ok(())
}

fn show(out: &mut dyn Write, d: &Details) -> std::io::Result<()> {
    let r = &d.record;
    writeln!(out, "Execution  {}", r.id)?;
    writeln!(out, "Workflow   {}", r.workflow)?;
    writeln!(out, "Status     {}", r.status.as_str())?;
    writeln!(out, "Started    {}", inspect::time(r.created_at))?;
    let last = if r.status.is_terminal() {
        "Ended    "
    } else {
        "Updated  "
    };
    writeln!(out, "{last}  {}", inspect::time(r.updated_at))?;
    writeln!(out, "Duration   {}", inspect::duration(d.took()))?;
    if let Some(parent) = &r.parent {
        writeln!(out, "Parent     {parent}")?;
    }
    writeln!(
        out,
        "\nInput\n{}",
        indent(&inspect::pretty(&r.input.to_value()))
    )?;
    if let Some((label, value)) = d.result() {
        writeln!(out, "\n{label}\n{}", indent(&inspect::pretty(&value)))?;
    }
    if !d.children.is_empty() {
        writeln!(out, "\nChildren")?;
        let rows: Vec<Vec<String>> = d
            .children
            .iter()
            .map(|c| {
                vec![
                    c.id.to_string(),
                    c.workflow.clone(),
                    c.status.as_str().to_owned(),
                    inspect::duration(c.took),
                ]
            })
            .collect();
        table(out, &["ID", "WORKFLOW", "STATUS", "DURATION"], &rows)?;
    }
    writeln!(out, "\nHistory")?;
    let rows: Vec<Vec<String>> = d
        .history
        .iter()
        .enumerate()
        .map(|(i, e)| {
            vec![
                (i + 1).to_string(),
                format!("+{}", inspect::duration(e.at.since(r.created_at))),
                e.state.as_deref().unwrap_or("").to_owned(),
                inspect::event_type(e),
                clip(&inspect::event_details(e), 100),
            ]
        })
        .collect();
    table(out, &["#", "TIME", "STATE", "EVENT", "DETAILS"], &rows)
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// At most `n` characters of `s`, with `…` if it was longer.
fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        s.chars().take(n - 1).chain(['…']).collect()
    }
}

fn show_json(d: &Details) -> Value {
    let r = &d.record;
    let (result_label, result) = d
        .result()
        .map_or((None, Value::Null), |(l, v)| (Some(l), v));
    json!({
        "id": r.id.as_str(),
        "workflow": r.workflow,
        "status": r.status.as_str(),
        "parent": r.parent.as_ref().map(ExecutionId::as_str),
        "created_at": inspect::time(r.created_at),
        "updated_at": inspect::time(r.updated_at),
        "duration_ms": d.took().as_millis(),
        "input": r.input.to_value(),
        "output": if result_label == Some("Output") { result.clone() } else { Value::Null },
        "error": if matches!(result_label, Some("Error" | "Fault")) { result } else { Value::Null },
        "children": d.children.iter().map(|c| json!({
            "id": c.id.as_str(),
            "workflow": c.workflow,
            "status": c.status.as_str(),
            "duration_ms": c.took.as_millis(),
        })).collect::<Vec<_>>(),
        "history": d.history,
    })
}

fn tree_json(t: &ExecutionTree) -> Value {
    json!({
        "id": t.id.as_str(),
        "workflow": t.workflow,
        "status": t.status.as_str(),
        "duration_ms": t.updated_at.since(t.created_at).as_millis(),
        "children": t.children.iter().map(tree_json).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_pad_columns_to_their_widest_cell() {
        let mut out = Vec::new();
        let rows = vec![vec!["a".to_owned(), "long cell".to_owned()]];
        table(&mut out, &["ID", "X"], &rows).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "ID  X\na   long cell\n");
    }
}
