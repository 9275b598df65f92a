//! Telemetry: the spans and metrics of the nesting example's workflows, through
//! OpenTelemetry's in-memory exporters installed as a user installs an OTLP one
//! (`workflow::telemetry::Telemetry::install`).
//!
//! - `a_nesting_run_is_one_trace`: the main workflow, with one child whose poll times
//!   out, gives one trace: the main execution at its root, each child's execution under
//!   the parent's batch span, the poll attempts under their child, tasks under their
//!   steps; attributes and statuses as the run went; the metrics agree.
//! - `a_resumed_execution_continues_its_trace`: a worker process runs the main workflow
//!   against a SQLite file and is killed with SIGKILL mid-run; `recover` here resumes it
//!   and its running child, and their new spans are in the trace they were created in.
//!
//! `cargo test --test telemetry -- --nocapture` prints the span tree of the first run.

#[path = "asl/nesting.rs"]
#[allow(unused_imports)]
mod nesting;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry::Value;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use workflow::telemetry::Telemetry;
use workflow::{ExecutionId, Outcome, Runtime, Status};

use nesting::workflows::{Batch, JobRequest};
use nesting::{main_flow, scripted, JobService};

struct Exporters {
    spans: InMemorySpanExporter,
    metrics: InMemoryMetricExporter,
    telemetry: Telemetry,
}

/// Installs the in-memory exporters once per process (the subscriber and the meter
/// provider are global).
fn exporters() -> &'static Exporters {
    static EXPORTERS: OnceLock<Exporters> = OnceLock::new();
    EXPORTERS.get_or_init(|| {
        let spans = InMemorySpanExporter::default();
        let metrics = InMemoryMetricExporter::default();
        let tracer = SdkTracerProvider::builder()
            .with_simple_exporter(spans.clone())
            .build();
        let meter = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(metrics.clone()).build())
            .build();
        let telemetry = Telemetry::install(tracer, meter).expect("no other subscriber is set");
        Exporters {
            spans,
            metrics,
            telemetry,
        }
    })
}

/// A span's attribute, if it has it.
fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

/// An attribute as text (a number recorded after the span started is text to
/// `tracing-opentelemetry`, one given at its start a number).
fn attr_str(span: &SpanData, key: &str) -> Option<String> {
    attr(span, key).map(|v| v.as_str().into_owned())
}

/// The spans of one trace, by id, with their children.
struct Trace {
    spans: HashMap<SpanId, SpanData>,
    children: HashMap<SpanId, Vec<SpanId>>,
}

impl Trace {
    fn of(trace: TraceId) -> Trace {
        let all = exporters().spans.get_finished_spans().expect("spans");
        let spans: HashMap<SpanId, SpanData> = all
            .into_iter()
            .filter(|s| s.span_context.trace_id() == trace)
            .map(|s| (s.span_context.span_id(), s))
            .collect();
        let mut children: HashMap<SpanId, Vec<SpanId>> = HashMap::new();
        for s in spans.values() {
            children
                .entry(s.parent_span_id)
                .or_default()
                .push(s.span_context.span_id());
        }
        for list in children.values_mut() {
            list.sort_by_key(|id| spans[id].start_time);
        }
        Trace { spans, children }
    }

    fn parent(&self, span: &SpanData) -> Option<&SpanData> {
        self.spans.get(&span.parent_span_id)
    }

    fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a SpanData> + 'a {
        self.spans.values().filter(move |s| s.name == name)
    }

    fn execution(&self, id: &str) -> Vec<&SpanData> {
        self.named("workflow.execution")
            .filter(|s| attr_str(s, "workflow.execution_id").as_deref() == Some(id))
            .collect()
    }

    /// The tree as text, one span a line.
    fn render(&self, id: SpanId, depth: usize, out: &mut String) {
        let s = &self.spans[&id];
        let keys = [
            "workflow.name",
            "workflow.execution_id",
            "workflow.status",
            "workflow.state",
            "workflow.task.attempt",
            "workflow.poll.attempt",
            "workflow.poll.ready",
            "workflow.wait.kind",
            "workflow.children.count",
            "error.type",
        ];
        let attrs: Vec<String> = keys
            .iter()
            .filter_map(|k| attr(s, k).map(|v| format!("{k}={v}")))
            .collect();
        out.push_str(&format!(
            "{}{} {}\n",
            "  ".repeat(depth),
            s.name,
            attrs.join(" ")
        ));
        for child in self.children.get(&id).into_iter().flatten() {
            self.render(*child, depth + 1, out);
        }
    }
}

/// The metric `name`'s sum (a counter) or count (a histogram) over the points whose
/// attributes include `with`, at the last export.
fn metric(name: &str, with: &[(&str, &str)]) -> u64 {
    let e = exporters();
    e.telemetry.flush();
    let exported = e.metrics.get_finished_metrics().expect("metrics");
    let Some(last) = exported.last() else {
        return 0;
    };
    let matches = |attrs: &mut dyn Iterator<Item = &opentelemetry::KeyValue>| {
        let attrs: Vec<_> = attrs.collect();
        with.iter().all(|(k, v)| {
            attrs
                .iter()
                .any(|kv| kv.key.as_str() == *k && kv.value.as_str() == *v)
        })
    };
    let mut total = 0;
    for scope in last.scope_metrics() {
        for m in scope.metrics().filter(|m| m.name() == name) {
            match m.data() {
                AggregatedMetrics::U64(MetricData::Sum(sum)) => {
                    for p in sum.data_points() {
                        if matches(&mut p.attributes()) {
                            total += p.value();
                        }
                    }
                }
                AggregatedMetrics::I64(MetricData::Sum(sum)) => {
                    for p in sum.data_points() {
                        if matches(&mut p.attributes()) {
                            total += p.value().max(0) as u64;
                        }
                    }
                }
                AggregatedMetrics::F64(MetricData::Histogram(h)) => {
                    for p in h.data_points() {
                        if matches(&mut p.attributes()) {
                            total += p.count();
                        }
                    }
                }
                AggregatedMetrics::U64(MetricData::Histogram(h)) => {
                    for p in h.data_points() {
                        if matches(&mut p.attributes()) {
                            total += p.count();
                        }
                    }
                }
                other => panic!("unexpected data for {name}: {other:?}"),
            }
        }
    }
    total
}

const MAIN: &str = "NestingPatternMainStateMachine";
const JOB: &str = "NestingPatternAnotherStateMachine";

/// Three sequential jobs that finish at their 1st, 2nd and 3rd status call, then two in
/// parallel: one that finishes, one (`slow`) that never does, so its poll times out.
fn batch_with_a_slow_job(label: &str) -> Batch {
    let mut batch = Batch::numbered(label, 2);
    batch.parallel[1] = JobRequest {
        parameter1: format!("{label}-slow"),
        parameter2: 1,
    };
    batch
}

#[tokio::test(start_paused = true)]
async fn a_nesting_run_is_one_trace() {
    exporters();
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::builder()
        .register(main_flow)
        .dependency(scripted())
        .sqlite(dir.path().join("telemetry.sqlite"))
        .build()
        .unwrap();
    let execution = runtime
        .start(main_flow, batch_with_a_slow_job("otel"))
        .await
        .unwrap();
    let id = execution.id().clone();
    let outcome = runtime.wait(&id).await.unwrap();
    assert!(matches!(outcome, Outcome::Failed(_)), "{outcome:?}");
    // The execution span ends after its driver reports the end.
    runtime.shutdown().await;

    let root = exporters()
        .spans
        .get_finished_spans()
        .unwrap()
        .into_iter()
        .find(|s| attr_str(s, "workflow.execution_id").as_deref() == Some(id.as_str()))
        .expect("the main execution has a span");
    let trace = Trace::of(root.span_context.trace_id());
    let mut text = String::new();
    trace.render(root.span_context.span_id(), 0, &mut text);
    println!("{text}");

    // One root: the main execution.
    let roots: Vec<_> = trace
        .spans
        .values()
        .filter(|s| trace.parent(s).is_none())
        .collect();
    assert_eq!(roots.len(), 1, "{text}");
    assert_eq!(roots[0].span_context.span_id(), root.span_context.span_id());
    assert_eq!(attr_str(&root, "workflow.name").as_deref(), Some(MAIN));
    assert_eq!(
        attr_str(&root, "workflow.status").as_deref(),
        Some("Failed")
    );
    assert_eq!(
        attr_str(&root, "error.type").as_deref(),
        Some("Workflow.PollTimedOut"),
        "the child's error, through NestedError"
    );
    assert!(
        matches!(root.status, opentelemetry::trace::Status::Error { .. }),
        "{:?}",
        root.status
    );

    // Five children (three in sequence, two in parallel), each under a batch span of
    // the main execution, four succeeded and one failed on its poll's timeout.
    let children: Vec<_> = trace
        .named("workflow.execution")
        .filter(|s| s.span_context.span_id() != root.span_context.span_id())
        .collect();
    assert_eq!(children.len(), 5, "{text}");
    for child in &children {
        assert_eq!(attr_str(child, "workflow.name").as_deref(), Some(JOB));
        assert_eq!(
            attr_str(child, "workflow.parent_execution_id").as_deref(),
            Some(id.as_str())
        );
        let batch = trace.parent(child).expect("a child has a parent span");
        assert_eq!(batch.name, "workflow.children", "{text}");
        assert_eq!(
            trace.parent(batch).map(|p| p.span_context.span_id()),
            Some(root.span_context.span_id())
        );
    }
    let statuses: Vec<_> = children
        .iter()
        .map(|c| attr_str(c, "workflow.status").unwrap_or_default())
        .collect();
    assert_eq!(statuses.iter().filter(|s| *s == "Succeeded").count(), 4);
    let failed: Vec<_> = children
        .iter()
        .filter(|c| attr_str(c, "workflow.status").as_deref() == Some("Failed"))
        .collect();
    assert_eq!(failed.len(), 1, "{statuses:?}");
    assert_eq!(
        attr_str(failed[0], "error.type").as_deref(),
        Some("Workflow.PollTimedOut")
    );
    assert_eq!(trace.named("workflow.children").count(), 4, "{text}");

    // Every poll attempt is a span under its child's execution; a succeeded child's
    // last attempt was ready, the slow one's never were (every 10 s for 60 s).
    let polls_of = |child: &SpanData| -> Vec<&SpanData> {
        let mut polls: Vec<_> = trace
            .named("workflow.poll")
            .filter(|p| p.parent_span_id == child.span_context.span_id())
            .collect();
        polls.sort_by_key(|p| p.start_time);
        polls
    };
    for child in &children {
        let polls = polls_of(child);
        assert!(!polls.is_empty(), "{text}");
        for (n, p) in polls.iter().enumerate() {
            assert_eq!(
                attr_str(p, "workflow.poll.attempt"),
                Some((n + 1).to_string())
            );
        }
        let ready: Vec<_> = polls
            .iter()
            .map(|p| attr_str(p, "workflow.poll.ready").as_deref() == Some("true"))
            .collect();
        if child.span_context.span_id() == failed[0].span_context.span_id() {
            assert!(ready.iter().all(|r| !r), "{text}");
            assert_eq!(polls.len(), 6, "{text}");
        } else {
            assert_eq!(ready.last(), Some(&true), "{text}");
        }
    }

    // Each child's task (`svc.start`) is a span in a step of that child; each wait
    // between attempts a span with its lateness.
    for child in &children {
        let tasks: Vec<_> = trace
            .named("workflow.task")
            .filter(|t| {
                trace
                    .parent(t)
                    .and_then(|step| trace.parent(step))
                    .map(|e| e.span_context.span_id())
                    == Some(child.span_context.span_id())
            })
            .collect();
        assert_eq!(tasks.len(), 1, "{text}");
        assert_eq!(trace.parent(tasks[0]).unwrap().name, "workflow.step");
        assert_eq!(
            attr_str(tasks[0], "workflow.task.attempt").as_deref(),
            Some("1")
        );
        let waits = trace
            .named("workflow.wait")
            .filter(|w| w.parent_span_id == child.span_context.span_id())
            .count();
        assert_eq!(waits, polls_of(child).len(), "{text}");
    }
    for wait in trace.named("workflow.wait") {
        assert!(attr(wait, "workflow.wait.lateness_us").is_some(), "{text}");
        assert_eq!(
            attr_str(wait, "workflow.wait.kind").as_deref(),
            Some("timer")
        );
    }

    // The metrics saw the same run.
    assert!(metric("workflow.executions.started", &[("workflow.name", MAIN)]) >= 1);
    assert!(metric("workflow.executions.started", &[("workflow.name", JOB)]) >= 5);
    assert_eq!(
        metric(
            "workflow.executions.ended",
            &[("workflow.name", JOB), ("workflow.status", "Failed")]
        ),
        1,
        "only this test fails a job"
    );
    assert_eq!(
        metric(
            "workflow.executions.ended",
            &[("workflow.name", MAIN), ("workflow.status", "Failed")]
        ),
        1
    );
    assert!(metric("workflow.transitions", &[("workflow.name", JOB)]) >= 5 * 3);
    assert!(metric("workflow.timer.lateness", &[]) >= 5);
    assert!(metric("workflow.store.checkpoint.duration", &[]) >= 1);
    assert!(metric("workflow.store.checkpoint.batch_size", &[]) >= 1);
}

/// The worker process of the next test: runs the main workflow on `TELEMETRY_WORKER_DB`
/// until it is killed.
#[tokio::test]
#[ignore = "run by a_resumed_execution_continues_its_trace in a process of its own"]
async fn worker() {
    let Ok(db) = std::env::var("TELEMETRY_WORKER_DB") else {
        return;
    };
    exporters();
    let runtime = Runtime::builder()
        .register(main_flow)
        .dependency(slow_service())
        .sqlite(db)
        .build()
        .unwrap();
    let _main = runtime
        .start_with_id(
            main_flow,
            ExecutionId::from("main"),
            Batch::numbered("crash", 1),
        )
        .await
        .unwrap();
    std::future::pending::<()>().await;
}

/// Jobs that finish at their n-th status call, a call every 200 ms.
fn slow_service() -> JobService {
    scripted().polling(Duration::from_millis(200), Duration::from_secs(60))
}

#[tokio::test]
async fn a_resumed_execution_continues_its_trace() {
    exporters();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.sqlite");
    let mut worker = Command::new(std::env::current_exe().unwrap())
        .args(["worker", "--exact", "--ignored", "--test-threads=1"])
        .env("TELEMETRY_WORKER_DB", &db)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Killed once the second sequential child runs: the first is done, the second and
    // the main execution are mid-run.
    let running_child = ExecutionId::from("main/2.0");
    let started = std::time::Instant::now();
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the worker never got there"
        );
        if let Ok(conn) =
            rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        {
            let found: rusqlite::Result<String> = conn.query_row(
                "SELECT status FROM executions WHERE id = ?1",
                [running_child.as_str()],
                |row| row.get(0),
            );
            if found.is_ok() {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.kill().unwrap();
    worker.wait().unwrap();

    let runtime = Runtime::builder()
        .register(main_flow)
        .dependency(slow_service())
        .sqlite(&db)
        .build()
        .unwrap();
    let main = ExecutionId::from("main");
    let stored_main = runtime.record(&main).await.unwrap();
    let stored_child = runtime.record(&running_child).await.unwrap();
    assert_eq!(stored_child.status, Status::Running);
    let report = runtime.recover().await.unwrap();
    assert!(report.resumed.len() >= 2, "{report:?}");
    let outcome = runtime.wait(&main).await.unwrap();
    assert!(matches!(outcome, Outcome::Succeeded(_)), "{outcome:?}");
    runtime.shutdown().await;

    // The traces the two were created in (by the killed process), which the child's is
    // part of: its parent span is in the main execution's trace.
    let traceparent = |record: &workflow::store::ExecutionRecord| {
        let t = record
            .trace
            .clone()
            .expect("a trace is stored with each execution");
        let parts: Vec<String> = t.split('-').map(str::to_owned).collect();
        assert_eq!(parts.len(), 4, "{t}");
        (
            TraceId::from_hex(&parts[1]).unwrap(),
            SpanId::from_hex(&parts[2]).unwrap(),
        )
    };
    let (main_trace, main_first_span) = traceparent(&stored_main);
    let (child_trace, child_first_span) = traceparent(&stored_child);
    assert_eq!(
        child_trace, main_trace,
        "a child is created in its parent's trace"
    );

    let trace = Trace::of(main_trace);
    let resumed_main = trace.execution("main");
    assert_eq!(resumed_main.len(), 1, "the killed process exported nothing");
    assert_eq!(
        attr_str(resumed_main[0], "workflow.resumed").as_deref(),
        Some("true")
    );
    assert_eq!(resumed_main[0].parent_span_id, main_first_span);
    assert_eq!(
        attr_str(resumed_main[0], "workflow.status").as_deref(),
        Some("Succeeded")
    );
    let resumed_child = trace.execution(running_child.as_str());
    assert_eq!(resumed_child.len(), 1);
    assert_eq!(resumed_child[0].parent_span_id, child_first_span);
    assert_eq!(
        attr_str(resumed_child[0], "workflow.resumed").as_deref(),
        Some("true")
    );
    // The children started after the restart are new spans under the resumed main's
    // batches, in the same trace.
    let later = trace.execution("main/3.0");
    assert_eq!(later.len(), 1);
    let batch = trace.parent(later[0]).expect("under its batch");
    assert_eq!(batch.parent_span_id, resumed_main[0].span_context.span_id());
    assert_eq!(
        attr_str(later[0], "workflow.resumed").as_deref(),
        Some("false")
    );
}

/// What a fake OTLP collector received: each request's path and body.
type Received = std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<u8>)>>>;

/// An OTLP/HTTP collector on a free loopback port that keeps what it is sent.
async fn collector() -> (String, Received) {
    let received = Received::default();
    let keep = received.clone();
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri, body: axum::body::Bytes| {
        let keep = keep.clone();
        async move {
            keep.lock()
                .unwrap()
                .push((uri.path().to_owned(), body.to_vec()));
            axum::http::StatusCode::OK
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

/// `OTEL_EXPORTER_OTLP_ENDPOINT=… cargo run --example nesting` sends the run's spans and
/// metrics to that collector: the example binary (built by `cargo test`) against a
/// collector here, its requests decoded as OTLP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nesting_example_exports_over_otlp() {
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message;

    let example = std::env::current_exe()
        .unwrap()
        .parent()
        .and_then(|deps| deps.parent())
        .map(|debug| debug.join("examples/nesting"))
        .unwrap();
    assert!(
        example.exists(),
        "{} is missing: `cargo test --workspace` builds it, or `cargo build --example nesting`",
        example.display()
    );
    let (url, received) = collector().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nesting.sqlite");
    let output = tokio::process::Command::new(&example)
        .args(["--db", db.to_str().unwrap()])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &url)
        .env("OTEL_SERVICE_NAME", "nesting-test")
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let received = received.lock().unwrap().clone();
    let mut spans = Vec::new();
    let mut services = Vec::new();
    let mut metrics = Vec::new();
    for (path, body) in &received {
        match path.as_str() {
            "/v1/traces" => {
                let request = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
                for resource in request.resource_spans {
                    let attributes = resource.resource.map(|r| r.attributes).unwrap_or_default();
                    services.extend(
                        attributes
                            .into_iter()
                            .filter(|kv| kv.key == "service.name")
                            .map(|kv| format!("{:?}", kv.value)),
                    );
                    for scope in resource.scope_spans {
                        spans.extend(scope.spans);
                    }
                }
            }
            "/v1/metrics" => {
                let request = ExportMetricsServiceRequest::decode(body.as_slice()).unwrap();
                for resource in request.resource_metrics {
                    for scope in resource.scope_metrics {
                        metrics.extend(scope.metrics.into_iter().map(|m| m.name));
                    }
                }
            }
            other => panic!("unexpected OTLP path {other}"),
        }
    }
    assert!(
        services.iter().all(|s| s.contains("nesting-test")),
        "{services:?}"
    );
    let main_executions = spans
        .iter()
        .filter(|s| s.name == "workflow.execution")
        .filter(|s| {
            s.attributes
                .iter()
                .any(|kv| kv.key == "workflow.name" && format!("{:?}", kv.value).contains(MAIN))
        })
        .count();
    assert!(main_executions >= 1, "{} spans", spans.len());
    for name in [
        "workflow.step",
        "workflow.task",
        "workflow.poll",
        "workflow.children",
    ] {
        assert!(spans.iter().any(|s| s.name == name), "no {name} span");
    }
    for name in [
        "workflow.executions.started",
        "workflow.executions.ended",
        "workflow.transitions",
        "workflow.store.checkpoint.duration",
    ] {
        assert!(
            metrics.iter().any(|m| m == name),
            "no {name} in {metrics:?}"
        );
    }
}
