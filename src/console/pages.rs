//! The console's pages, as maud templates: every value is escaped as text unless it is
//! wrapped in `PreEscaped`, which only the SVG the graph module writes is.

use maud::{html, Markup, PreEscaped, DOCTYPE};
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS, NON_ALPHANUMERIC};
use workflow_runtime::{Catalog, ExecutionSummary, Highlight, Listing, StateGraph, Status};

use super::{execution_href, ListQuery};
use crate::inspect::{self, Details};

/// What a path segment must escape; `/` stays, since child ids use it as the URL does.
const PATH: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// `s` as (part of) a URL path.
pub(crate) fn path(s: &str) -> String {
    utf8_percent_encode(s, PATH).to_string()
}

/// `s` as a query value.
fn query(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

const STYLE: &str = "
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #1d232a; }
header { background: #232f3e; color: #fff; padding: 8px 16px; display: flex; gap: 16px; align-items: baseline; }
header a { color: #fff; text-decoration: none; font-weight: 600; }
main { padding: 12px 16px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #e3e6e8; vertical-align: top; }
th { background: #f3f4f5; }
pre { background: #f6f8fa; padding: 8px; overflow: auto; max-height: 24em; margin: 0; }
code, pre, td.mono { font-family: ui-monospace, monospace; font-size: 12px; }
.status { font-weight: 600; padding: 1px 6px; border-radius: 8px; }
.Succeeded { background: #d7f3d7; } .Failed, .Faulted, .TimedOut { background: #fbd5d5; }
.Running { background: #fff0c2; } .Cancelled, .VersionMismatch { background: #e3e6e8; }
.grid { display: grid; grid-template-columns: minmax(300px, 1fr) minmax(300px, 1fr); gap: 16px; }
.graph svg { max-width: 100%; height: auto; }
dl { display: grid; grid-template-columns: max-content auto; gap: 2px 12px; margin: 0 0 12px; }
dt { color: #5f6b7a; } dd { margin: 0; }
form.inline { display: inline; }
button { font: inherit; padding: 2px 10px; }
textarea { width: 100%; font-family: ui-monospace, monospace; }
.error { color: #a4000f; }
";

fn layout(base: &str, title: &str, refresh: bool, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                @if refresh { meta http-equiv="refresh" content="3"; }
                title { (title) " · workflow console" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    a href={ (base) "/executions" } { "Executions" }
                    a href={ (base) "/workflows" } { "Workflows" }
                }
                main { (body) }
            }
        }
    }
}

fn status(s: Status) -> Markup {
    html! { span class={ "status " (s.as_str()) } { (s.as_str()) } }
}

fn rows(base: &str, executions: &[ExecutionSummary]) -> Markup {
    html! {
        table #executions {
            tr { th { "Execution" } th { "Workflow" } th { "Status" } th { "Started" } th { "Duration" } th { "Parent" } }
            @for e in executions {
                tr {
                    td.mono { a href=(execution_href(base, &e.id)) { (e.id) } }
                    td { a href={ (base) "/workflows/" (path(&e.workflow)) } { (e.workflow) } }
                    td { (status(e.status)) }
                    td { (inspect::time(e.created_at)) }
                    td { (inspect::duration(e.updated_at.since(e.created_at))) }
                    td.mono {
                        @if let Some(p) = &e.parent { a href=(execution_href(base, p)) { (p) } }
                    }
                }
            }
        }
    }
}

pub(super) fn list(
    base: &str,
    catalog: &Catalog,
    q: &ListQuery,
    listing: &Listing,
    more: bool,
) -> Markup {
    let page_link = |page: usize| {
        format!(
            "{base}/executions?workflow={}&status={}&since={}{}&page={page}",
            query(&q.workflow),
            query(&q.status),
            query(&q.since),
            if q.top.is_some() { "&top=on" } else { "" }
        )
    };
    layout(
        base,
        "Executions",
        true,
        html! {
            h1 { "Executions" }
            form method="get" action={ (base) "/executions" } {
                "Workflow "
                select name="workflow" {
                    option value="" { "any" }
                    @for name in catalog.names() {
                        option value=(name) selected[q.workflow == name] { (name) }
                    }
                }
                " Status "
                select name="status" {
                    option value="" { "any" }
                    @for s in inspect::STATUSES {
                        option value=(s) selected[q.status == s] { (s) }
                    }
                }
                " Since "
            input type="text" name="since" size="12" value=(q.since) placeholder="2h, or a time";
            label { " " input type="checkbox" name="top" checked[q.top.is_some()]; " top-level only " }
                button type="submit" { "Filter" }
            }
            p { (listing.executions.len()) " executions on this page, newest first." }
            (rows(base, &listing.executions))
            @if !listing.corrupt.is_empty() {
                h2.error { "Rows that do not decode" }
                ul { @for row in &listing.corrupt { li.error { (row) } } }
            }
            p {
                @if q.page > 0 { a href=(page_link(q.page - 1)) { "← newer" } " " }
                @if more { a href=(page_link(q.page + 1)) { "older →" } }
            }
        },
    )
}

pub(super) fn execution(
    base: &str,
    d: &Details,
    graph: Option<&StateGraph>,
    csrf: Option<&str>,
) -> Markup {
    let r = &d.record;
    let title = format!("Execution {}", r.id);
    let running = !r.status.is_terminal();
    let redrivable = matches!(
        r.status,
        Status::Failed | Status::TimedOut | Status::Faulted
    ) && r.parent.is_none();
    layout(
        base,
        &title,
        running,
        html! {
            h1 { "Execution " code #id { (r.id) } " " (status(r.status)) }
            @if let Some(csrf) = csrf {
                p #actions {
                    @if running {
                        form.inline method="post" action={ (base) "/actions/cancel" } {
                            input type="hidden" name="csrf" value=(csrf);
                            input type="hidden" name="id" value=(r.id);
                            button #cancel type="submit" { "Cancel" }
                        }
                    }
                    @if redrivable {
                        form.inline method="post" action={ (base) "/actions/redrive" } {
                            input type="hidden" name="csrf" value=(csrf);
                            input type="hidden" name="id" value=(r.id);
                            button #redrive type="submit" { "Redrive" }
                        }
                    }
                }
            }
            div.grid {
                div {
                    dl {
                        dt { "Workflow" } dd { a href={ (base) "/workflows/" (path(&r.workflow)) } { (r.workflow) } }
                        dt { "Started" } dd { (inspect::time(r.created_at)) }
                        dt { @if running { "Last checkpoint" } @else { "Ended" } } dd { (inspect::time(r.updated_at)) }
                        dt { "Duration" } dd { (inspect::duration(d.took())) }
                        @if r.redrives > 0 { dt { "Redriven" } dd #redrives { @if r.redrives == 1 { "once" } @else { (r.redrives) " times" } } }
                        @if let Some(parent) = &r.parent {
                            dt { "Parent" } dd.mono { a #parent href=(execution_href(base, parent)) { (parent) } }
                        }
                    }
                    h2 { "Input" }
                    pre #input { (inspect::pretty(&r.input.to_value())) }
                    @if let Some((label, value)) = d.result() {
                        h2 { (label) }
                        pre #result { (inspect::pretty(&value)) }
                    }
                    @if !d.children.is_empty() {
                        h2 { "Children" }
                        table #children {
                            tr { th { "Execution" } th { "Workflow" } th { "Status" } th { "Duration" } }
                            @for c in &d.children {
                                tr {
                                    td.mono { a href=(execution_href(base, &c.id)) { (c.id) } }
                                    td { (c.workflow) }
                                    td { (status(c.status)) }
                                    td { (inspect::duration(c.took)) }
                                }
                            }
                        }
                    }
                }
                div.graph #graph {
                    @if let Some(graph) = graph {
                        (PreEscaped(graph.to_svg_highlighted(&Highlight::of(graph, &d.history))))
                    } @else {
                        p { "The workflow " code { (r.workflow) } " is not linked into this console: no graph." }
                    }
                }
            }
            h2 { "History" }
            table #history {
                tr { th { "#" } th { "Time" } th { "State" } th { "Event" } th { "Details" } }
                @for (i, e) in d.history.iter().enumerate() {
                    tr {
                        td { (i + 1) }
                        td { "+" (inspect::duration(e.at.since(r.created_at))) }
                        td { @if let Some(s) = &e.state { (s) } }
                        td { (inspect::event_type(e)) }
                        td.mono {
                            @if let Some(child) = inspect::event_child(e) {
                                a href=(execution_href(base, &child)) { (child) } " "
                            }
                            (inspect::event_details(e))
                        }
                    }
                }
            }
        },
    )
}

pub(super) fn workflows(base: &str, catalog: &Catalog) -> Markup {
    layout(
        base,
        "Workflows",
        false,
        html! {
            h1 { "Workflows" }
            @if catalog.is_empty() {
                p { "No workflow is linked into this console." }
            }
            ul {
                @for name in catalog.names() {
                    li { a href={ (base) "/workflows/" (path(name)) } { (name) } }
                }
            }
        },
    )
}

pub(super) fn workflow(
    base: &str,
    graph: &StateGraph,
    listing: &Listing,
    csrf: Option<&str>,
) -> Markup {
    let name = graph.workflow;
    layout(
        base,
        name,
        false,
        html! {
            h1 { "Workflow " code { (name) } }
            p {
                a href={ (base) "/workflows/" (path(name)) "/asl.json" } download { "ASL definition" }
                " · "
                a href={ (base) "/executions?workflow=" (query(name)) } { "all executions" }
            }
            div.grid {
                div {
                    @if let Some(csrf) = csrf {
                        h2 { "Start an execution" }
                        form #start method="post" action={ (base) "/actions/start" } {
                            input type="hidden" name="csrf" value=(csrf);
                            input type="hidden" name="workflow" value=(name);
                            textarea name="input" rows="6" placeholder="input, as JSON" {}
                            button type="submit" { "Start" }
                        }
                    }
                    h2 { "Latest executions" }
                    (rows(base, &listing.executions))
                }
                div.graph { (PreEscaped(graph.to_svg())) }
            }
        },
    )
}

pub(super) fn failure(code: axum::http::StatusCode, message: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head { meta charset="utf-8"; title { (code) } style { (PreEscaped(STYLE)) } }
            body { main {
                h1 { (code) }
                p.error #message { (message) }
            } }
        }
    }
}
