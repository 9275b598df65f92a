//! Spans and metrics: what an execution did, for a tracing subscriber and an
//! OpenTelemetry meter provider.
//!
//! Spans go through `tracing`, so any subscriber sees them; their names and attributes
//! follow OpenTelemetry's conventions (dotted keys, `otel.status_code`, `error.type`), which `tracing-opentelemetry` maps onto OpenTelemetry spans:
//!
//! - `workflow.execution`: one per run of an execution's driver (a resumed execution
//!   gets a new one, in the same trace);
//! - `workflow.step`: one per transition, named after its resume point;
//! - `workflow.task`: one per task call, under its step;
//! - `workflow.poll`: the step of a `poll_until!`'s attempt;
//! - `workflow.wait`: one per durable timer (a `sleep!`, a poll's interval, a retry's
//!   delay), with its lateness when it fires;
//! - `workflow.children`: one per batch of children, the parent of each child's
//!   `workflow.execution`.
//!
//! With no subscriber that takes `INFO` none is made: each costs a load of `tracing`'s
//! maximum level (see [`on`]), and the attribute values are not computed.
//!
//! Metrics go through OpenTelemetry's metrics API, instruments made once, on first use,
//! from the global meter provider (a no-op until one is installed: install it before the
//! first runtime starts).

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use futures_util::future::Either;

use opentelemetry::metrics::{Counter, Histogram, UpDownCounter};
use opentelemetry::KeyValue;
use tracing::field::Empty;
use tracing::instrument::Instrumented;
use tracing::{Instrument, Span};

use crate::execution::{ExecutionId, Outcome, Status};
use crate::graph::{NodeKind, StateGraph};

/// The instrumentation scope of the runtime's meter.
const SCOPE: &str = "workflow";

/// Whether anyone records the runtime's spans: a subscriber that takes `INFO`. Every
/// span is made only then, and a future is instrumented only with a span that is: with
/// `tracing`'s `log` feature on (dependencies turn it on), a span nobody records still
/// logs its entries, exits and drop through `log`, a cost on every poll.
pub(crate) fn on() -> bool {
    tracing::level_enabled!(tracing::Level::INFO)
}

/// The current span, if anyone records spans.
pub(crate) fn current() -> Span {
    if on() {
        Span::current()
    } else {
        Span::none()
    }
}

/// `future`, in `span` if the span is recorded.
pub(crate) fn instrument<F: Future>(future: F, span: Span) -> Either<F, Instrumented<F>> {
    if span.is_none() {
        Either::Left(future)
    } else {
        Either::Right(future.instrument(span))
    }
}

/// The span of one run of an execution's driver. Its parent is the current span: the
/// caller's for a top-level execution, the batch's for a child.
pub(crate) fn execution_span(
    workflow: &'static str,
    id: &ExecutionId,
    parent: Option<&ExecutionId>,
    resumed: bool,
) -> Span {
    if !on() {
        return Span::none();
    }
    tracing::info_span!(
        "workflow.execution",
        workflow.name = workflow,
        workflow.execution_id = %id,
        workflow.parent_execution_id = parent.map(ExecutionId::as_str),
        workflow.resumed = resumed,
        workflow.status = Empty,
        error.type = Empty,
        otel.status_code = Empty,
    )
}

/// Records how the execution ended on its span. (A failure's error name is recorded
/// where the failure is known by name, with its terminal checkpoint.)
pub(crate) fn execution_ended(span: &Span, outcome: &Outcome) {
    span.record("workflow.status", Status::of(outcome).as_str());
    match outcome {
        Outcome::Succeeded(_) => {
            span.record("otel.status_code", "ok");
        }
        Outcome::Cancelled => {}
        Outcome::Failed(_) => {
            span.record("otel.status_code", "error");
        }
        Outcome::Faulted(fault) => {
            span.record("otel.status_code", "error");
            span.record("error.type", fault.name());
        }
        Outcome::TimedOut => {
            span.record("otel.status_code", "error");
            span.record("error.type", Status::TimedOut.as_str());
        }
    }
}

/// The span of one step, from where it resumes to the next yield point: the start of
/// the body (`at` is `None`), after node `n` (`Some((n, false))`) or waiting in it
/// (`Some((n, true))`: a poll's attempt, a batch's results, a retried call).
pub(crate) fn step_span(graph: &'static StateGraph, at: Option<(usize, bool)>) -> Span {
    if !on() {
        return Span::none();
    }
    let (node, waiting) = match at {
        None => (None, false),
        Some((n, waiting)) => (graph.nodes.get(n), waiting),
    };
    let name = node.map_or("start", |n| n.name);
    if waiting && node.is_some_and(|n| matches!(n.kind, NodeKind::Poll)) {
        // The step of a poll's attempt: the call, and what its answer decides.
        tracing::info_span!(
            "workflow.poll",
            workflow.state = name,
            workflow.poll.attempt = Empty,
            workflow.poll.ready = Empty,
            workflow.poll.error = Empty,
        )
    } else {
        tracing::info_span!(
            "workflow.step",
            workflow.state = name,
            workflow.resume_point = if waiting { "waiting" } else { "after" },
        )
    }
}

/// The span of a task's call, from its scheduling to its result.
pub(crate) fn task_span(name: &str, attempt: u32, timeout: Option<Duration>) -> Span {
    if !on() {
        return Span::none();
    }
    tracing::info_span!(
        "workflow.task",
        workflow.state = name,
        workflow.task.attempt = attempt,
        workflow.task.timeout_ms = timeout.map(|t| t.as_millis() as u64),
        workflow.task.retry_in_ms = Empty,
        error.type = Empty,
        otel.status_code = Empty,
    )
}

/// Records a task's end on its span: `error` is the name of its error, if it failed.
pub(crate) fn task_ended(span: &Span, error: Option<&str>) {
    match error {
        None => span.record("otel.status_code", "ok"),
        Some(name) => span
            .record("otel.status_code", "error")
            .record("error.type", name),
    };
}

/// The span of a durable timer, from when the driver waits on it.
pub(crate) fn wait_span(name: Option<&str>, kind: &'static str, remaining: Duration) -> Span {
    if !on() {
        return Span::none();
    }
    tracing::info_span!(
        "workflow.wait",
        workflow.state = name,
        workflow.wait.kind = kind,
        workflow.wait.duration_ms = remaining.as_millis() as u64,
        workflow.wait.lateness_us = Empty,
    )
}

/// The span of a batch of children.
pub(crate) fn children_span(name: &str, batch: u64, count: usize) -> Span {
    if !on() {
        return Span::none();
    }
    tracing::info_span!(
        "workflow.children",
        workflow.state = name,
        workflow.children.batch = batch,
        workflow.children.count = count,
        workflow.children.failed = Empty,
    )
}

/// The trace context of `span`, to store with a new execution.
#[cfg(feature = "otel")]
pub(crate) fn trace_context(span: &Span) -> Option<String> {
    use opentelemetry::propagation::TextMapPropagator;
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = std::collections::HashMap::new();
    opentelemetry_sdk::propagation::TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.remove("traceparent")
}

#[cfg(not(feature = "otel"))]
pub(crate) fn trace_context(_span: &Span) -> Option<String> {
    None
}

/// Makes `span` (not entered yet) continue the stored trace `traceparent`: a child of
/// the execution's first span.
#[cfg(feature = "otel")]
pub(crate) fn continue_trace(span: &Span, traceparent: &str) {
    use opentelemetry::propagation::TextMapPropagator;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    let carrier =
        std::collections::HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    let cx = opentelemetry_sdk::propagation::TraceContextPropagator::new().extract(&carrier);
    // Refused only for a span no OpenTelemetry layer sees: then there is no trace.
    let _ = span.set_parent(cx);
}

#[cfg(not(feature = "otel"))]
pub(crate) fn continue_trace(_span: &Span, _traceparent: &str) {}

/// The runtime's instruments.
pub(crate) struct Metrics {
    /// `workflow.executions.started`: executions created, by workflow.
    pub(crate) started: Counter<u64>,
    /// `workflow.executions.ended`: executions ended, by workflow and status.
    pub(crate) ended: Counter<u64>,
    /// `workflow.executions.in_flight`: executions driven now, by workflow.
    pub(crate) in_flight: UpDownCounter<i64>,
    /// `workflow.transitions`: steps taken, by workflow.
    pub(crate) transitions: Counter<u64>,
    /// `workflow.timer.lateness`: how late durable timers fire, in seconds.
    pub(crate) timer_lateness: Histogram<f64>,
    /// `workflow.store.checkpoint.duration`: one write of the SQLite store's writer
    /// (a batch of checkpoints), in seconds.
    pub(crate) checkpoint_duration: Histogram<f64>,
    /// `workflow.store.checkpoint.batch_size`: checkpoints committed together.
    pub(crate) checkpoint_batch: Histogram<u64>,
    /// `workflow.store.errors`: store operations that failed, by operation.
    pub(crate) store_errors: Counter<u64>,
}

/// The instruments, made on first use from the global meter provider.
pub(crate) fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let meter = opentelemetry::global::meter(SCOPE);
        Metrics {
            started: meter
                .u64_counter("workflow.executions.started")
                .with_description("Executions created")
                .build(),
            ended: meter
                .u64_counter("workflow.executions.ended")
                .with_description("Executions ended, by status")
                .build(),
            in_flight: meter
                .i64_up_down_counter("workflow.executions.in_flight")
                .with_description("Executions being driven")
                .build(),
            transitions: meter
                .u64_counter("workflow.transitions")
                .with_description("Steps taken")
                .build(),
            timer_lateness: meter
                .f64_histogram("workflow.timer.lateness")
                .with_unit("s")
                .with_description("How long after its deadline a durable timer fired")
                .build(),
            checkpoint_duration: meter
                .f64_histogram("workflow.store.checkpoint.duration")
                .with_unit("s")
                .with_description("One commit of the SQLite store's writer")
                .build(),
            checkpoint_batch: meter
                .u64_histogram("workflow.store.checkpoint.batch_size")
                .with_description("Checkpoints committed together")
                .build(),
            store_errors: meter
                .u64_counter("workflow.store.errors")
                .with_description("Store operations that failed")
                .build(),
        }
    })
}

/// The `workflow.name` attribute.
pub(crate) fn workflow(name: &'static str) -> [KeyValue; 1] {
    [KeyValue::new("workflow.name", name)]
}
