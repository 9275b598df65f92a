//! The console (`workflow::console`) over a real runtime on a SQLite file, served on
//! 127.0.0.1 and fetched over HTTP: what its pages show, that payloads are escaped, that
//! actions need the form's token, that a remote address needs a token; and, in
//! `browser.rs`, the same pages in headless Chromium, with a redrive from the page.

#[path = "../../examples/nesting/workflows.rs"]
#[allow(dead_code)]
mod workflows;

#[path = "../../examples/nesting/job_server.rs"]
#[allow(dead_code)]
mod job_server;

mod browser;

use std::time::Duration;

use workflow::console::{Console, ConsoleError};
use workflow::prelude::*;
use workflow::{ExecutionFilter, ExecutionId, Status};
use workflows::{main_flow, Batch, JobService};

/// A runtime over a SQLite file with a succeeded and a failed run of the nesting
/// example's main workflow, and its console on 127.0.0.1.
pub(crate) struct Fixture {
    pub(crate) url: String,
    pub(crate) runtime: Runtime,
    pub(crate) service: job_server::JobServer,
    pub(crate) succeeded: ExecutionId,
    pub(crate) failed: ExecutionId,
    _dir: tempfile::TempDir,
}

impl Fixture {
    pub(crate) async fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let service = job_server::start(job_server::Config {
            delay: Duration::from_millis(30),
            fail_every: 0,
            refuse_every: 0,
        })
        .await
        .unwrap();
        let jobs = JobService::new(service.base_url.clone())
            .polling(Duration::from_millis(10), Duration::from_secs(10));
        let runtime = Runtime::builder()
            .register(main_flow)
            .dependency(jobs)
            .sqlite(dir.path().join("console.sqlite"))
            .build()
            .unwrap();
        let ok = runtime
            .start(main_flow, Batch::numbered("ok", 3))
            .await
            .unwrap();
        let succeeded = ok.id().clone();
        ok.result().await.unwrap();
        // parameter2 runs 4, 5, 6, 7: the service refuses to start the fourth child's job.
        service.set_refuse_every(7);
        let bad = runtime
            .start(main_flow, Batch::numbered("bad", 4))
            .await
            .unwrap();
        let failed = bad.id().clone();
        bad.result().await.unwrap_err();
        let url = serve(Console::new(&runtime)).await;
        Fixture {
            url,
            runtime,
            service,
            succeeded,
            failed,
            _dir: dir,
        }
    }

    pub(crate) fn page(&self, id: &ExecutionId) -> String {
        format!("{}/executions/{id}", self.url)
    }
}

/// Serves `console` on a free loopback port; its base URL.
pub(crate) async fn serve(console: Console) -> String {
    let listener = console.bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, console.router()).await });
    url
}

async fn get(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// The value of the hidden `csrf` field of a page's forms.
fn csrf(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .expect("a form with a token")
        + 19;
    page[at..at + 32].to_owned()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_show_the_executions_their_graphs_histories_and_children() {
    let f = Fixture::new().await;
    let (code, list) = get(&format!("{}/executions?top=on", f.url)).await;
    assert_eq!(code, 200);
    // Newest first: the failed run above the succeeded one.
    let (at_failed, at_succeeded) = (
        list.find(f.failed.as_str()).unwrap(),
        list.find(f.succeeded.as_str()).unwrap(),
    );
    assert!(at_failed < at_succeeded);
    assert!(list.contains("status Failed") && list.contains("status Succeeded"));
    let (_, failed_only) = get(&format!("{}/executions?status=Failed&top=on", f.url)).await;
    assert!(failed_only.contains(f.failed.as_str()));
    assert!(!failed_only.contains(f.succeeded.as_str()));

    let (code, page) = get(&f.page(&f.failed)).await;
    assert_eq!(code, 200);
    // The graph, with the states the execution went through filled in, its failed end red.
    assert!(page.contains("<svg"), "{page}");
    assert!(page.contains("#b8e6b8") && page.contains("#f4a6a6"));
    // A link to each child, and from each child back to the parent.
    let tree = f.runtime.tree(&f.failed).await.unwrap();
    assert_eq!(tree.children.len(), 7);
    for child in &tree.children {
        assert!(page.contains(&format!("href=\"/executions/{}\"", child.id)));
    }
    let (_, child) = get(&f.page(&tree.children[0].id)).await;
    assert!(child.contains(&format!("id=\"parent\" href=\"/executions/{}\"", f.failed)));
    // The error, and the history with the failure.
    assert!(page.contains("503 Service Unavailable") && page.contains("ExecutionFailed"));
    // A failed top-level execution can be redriven; a succeeded one cannot.
    assert!(page.contains("id=\"redrive\""));
    let (_, ok) = get(&f.page(&f.succeeded)).await;
    assert!(!ok.contains("id=\"redrive\"") && ok.contains("ExecutionSucceeded"));

    // The workflow's page: its graph, its ASL, its executions.
    let name = main_flow::NAME;
    let (code, workflow) = get(&format!("{}/workflows/{name}", f.url)).await;
    assert_eq!(code, 200);
    assert!(workflow.contains("<svg") && workflow.contains(f.failed.as_str()));
    let (code, asl) = get(&format!("{}/workflows/{name}/asl.json", f.url)).await;
    assert_eq!(code, 200);
    let asl: serde_json::Value = serde_json::from_str(&asl).unwrap();
    assert!(asl["States"].is_object());
    let (code, _) = get(&format!("{}/executions/no-such-execution", f.url)).await;
    assert_eq!(code, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_are_shown_as_text_never_as_markup() {
    let f = Fixture::new().await;
    let (_, page) = get(&format!("{}/workflows/{}", f.url, main_flow::NAME)).await;
    let mut hostile = Batch::numbered("x", 1);
    hostile.label = "<script>alert('label')</script>".into();
    hostile.parallel[0].parameter1 = "</pre><img src=x onerror=alert(1)>".into();
    let form = [
        ("csrf", csrf(&page)),
        ("workflow", main_flow::NAME.to_owned()),
        ("input", serde_json::to_string(&hostile).unwrap()),
    ];
    let response = client()
        .post(format!("{}/actions/start", f.url))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 303);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let (code, page) = get(&format!("{}{location}", f.url)).await;
    assert_eq!(code, 200);
    assert!(
        page.contains("&lt;script&gt;alert('label')&lt;/script&gt;"),
        "{page}"
    );
    assert!(page.contains("&lt;/pre&gt;&lt;img src=x onerror=alert(1)&gt;"));
    assert!(!page.contains("<script>") && !page.contains("<img"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_need_the_consoles_form_token_and_valid_input() {
    let f = Fixture::new().await;
    let before = f.runtime.list(ExecutionFilter::new()).await.unwrap();
    let post = |path: &'static str, form: Vec<(&'static str, String)>| {
        let url = format!("{}{path}", f.url);
        async move {
            let r = client().post(url).form(&form).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let id = f.failed.to_string();
    // No token, a wrong one: refused, nothing done.
    let (code, _) = post("/actions/redrive", vec![("id", id.clone())]).await;
    assert_eq!(code, 422, "a form without its token does not even parse");
    let wrong = vec![("csrf", "0".repeat(32)), ("id", id.clone())];
    let (code, body) = post("/actions/redrive", wrong).await;
    assert_eq!(code, 403);
    assert!(body.contains("token"));
    assert_eq!(
        f.runtime.record(&f.failed).await.unwrap().status,
        Status::Failed
    );

    // Input of the wrong shape: a clear error, and nothing stored.
    let (_, page) = get(&format!("{}/workflows/{}", f.url, main_flow::NAME)).await;
    let token = csrf(&page);
    let start = |input: &str| {
        vec![
            ("csrf", token.clone()),
            ("workflow", main_flow::NAME.to_owned()),
            ("input", input.to_owned()),
        ]
    };
    let (code, body) = post("/actions/start", start("{\"label\": 3}")).await;
    assert_eq!(code, 400);
    assert!(body.contains("input"), "{body}");
    let (code, body) = post("/actions/start", start("not json")).await;
    assert_eq!(code, 400);
    assert!(body.contains("not JSON"), "{body}");
    let after = f.runtime.list(ExecutionFilter::new()).await.unwrap();
    assert_eq!(before.executions.len(), after.executions.len());

    // The JSON API takes JSON only: a form cannot reach it.
    let (code, _) = post("/api/redrive", vec![("id", id.clone())]).await;
    assert_eq!(code, 415);
    assert_eq!(
        f.runtime.record(&f.failed).await.unwrap().status,
        Status::Failed
    );

    // A read-only console has no forms, and refuses the actions anyway.
    let read_only = serve(Console::new(&f.runtime).read_only()).await;
    let (_, page) = get(&format!("{read_only}/executions/{}", f.failed)).await;
    assert!(!page.contains("id=\"redrive\"") && !page.contains("name=\"csrf\""));
    let r = client()
        .post(format!("{read_only}/actions/redrive"))
        .form(&[("csrf", token.clone()), ("id", id.clone())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let r = client()
        .post(format!("{read_only}/api/redrive"))
        .json(&serde_json::json!({ "id": id }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_loopback_the_console_needs_the_flag_and_a_token() {
    let runtime = Runtime::builder().build().unwrap();
    let any: std::net::SocketAddr = "0.0.0.0:0".parse().unwrap();
    let refused = Console::new(&runtime).bind(any).await.unwrap_err();
    assert!(
        matches!(refused, ConsoleError::NotLoopback { .. }),
        "{refused}"
    );
    let refused = Console::new(&runtime).allow_remote().bind(any).await;
    assert!(matches!(refused, Err(ConsoleError::NoToken { .. })));
    let weak = Console::new(&runtime).allow_remote().token("short");
    assert!(matches!(weak.bind(any).await, Err(ConsoleError::WeakToken)));

    let token = "a-long-enough-console-token";
    let console = Console::new(&runtime).allow_remote().token(token);
    console
        .bind(any)
        .await
        .expect("binds with the flag and a token");
    let url = serve(console).await;
    let (code, _) = get(&format!("{url}/executions")).await;
    assert_eq!(code, 401);
    let r = client()
        .get(format!("{url}/executions"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // Opening `/?token=…` once sets a cookie that later requests carry.
    let r = client()
        .get(format!("{url}/executions?token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let cookie = r.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let r = client()
        .get(format!("{url}/executions"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}
