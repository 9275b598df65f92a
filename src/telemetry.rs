//! OpenTelemetry export of the runtime's spans and metrics (feature `otel`).
//!
//! The runtime describes what it does with `tracing` spans (`workflow.execution`,
//! `workflow.step`, `workflow.task`, `workflow.poll`, `workflow.wait`,
//! `workflow.children`) and OpenTelemetry metrics (`workflow.executions.started`,
//! `workflow.executions.ended`, `workflow.executions.in_flight`, `workflow.transitions`,
//! `workflow.timer.lateness`, `workflow.store.checkpoint.duration`,
//! `workflow.store.checkpoint.batch_size`, `workflow.store.errors`). One line sends both
//! to an OTLP collector, configured by the standard variables
//! (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_SERVICE_NAME`, …):
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Before the runtime is built: its instruments come from the meter provider set here.
//! let telemetry = workflow::telemetry::Telemetry::otlp()?;
//! // … build the runtime, run executions …
//! telemetry.shutdown(); // flushes what is buffered (dropping it does too)
//! # Ok(()) }
//! ```
//!
//! Each execution's spans form one tree: a child's `workflow.execution` is a child of its
//! parent's `workflow.children` span, and a top-level execution's is a child of the span
//! current where it was started. The execution's trace context is stored with it, so an
//! execution resumed after a restart (or a crash) continues the same trace: its new
//! `workflow.execution` span is a child of the first one, with `workflow.resumed = true`.
//!
//! On Step Functions, [`lambda_span`] continues the trace that Step Functions passes to
//! the Lambda (its X-Ray header), so that a deployed execution's steps appear under it.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The instrumentation scope of the runtime's spans and metrics.
pub const SCOPE: &str = "workflow";

/// Why telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TelemetryError {
    /// An OTLP exporter could not be built (a malformed endpoint, say).
    #[error("cannot build the OTLP {signal} exporter: {source}")]
    Exporter {
        /// `"span"` or `"metric"`.
        signal: &'static str,
        /// The exporter's error.
        #[source]
        source: opentelemetry_otlp::ExporterBuildError,
    },
    /// A global `tracing` subscriber was set already (by this or other code).
    #[error("a global tracing subscriber is set already: {0}")]
    SubscriberSet(#[from] tracing_subscriber::util::TryInitError),
}

/// Installed telemetry: the tracer and meter providers behind the global `tracing`
/// subscriber and meter provider. Dropping it (or [`shutdown`](Self::shutdown)) flushes
/// and stops both.
#[must_use = "dropping it stops the export"]
pub struct Telemetry {
    tracer: SdkTracerProvider,
    meter: SdkMeterProvider,
}

impl Telemetry {
    /// Exports spans and metrics over OTLP (HTTP, protobuf) to the collector the
    /// standard `OTEL_EXPORTER_OTLP_*` variables name (`http://localhost:4318` by
    /// default), and logs the runtime's events to stderr as `RUST_LOG` filters them
    /// (`warn` by default). Spans are batched and sent from a thread of their own.
    pub fn otlp() -> Result<Telemetry, TelemetryError> {
        let spans = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
            .map_err(|source| TelemetryError::Exporter {
                signal: "span",
                source,
            })?;
        let metrics = opentelemetry_otlp::MetricExporter::builder()
            .with_http()
            .build()
            .map_err(|source| TelemetryError::Exporter {
                signal: "metric",
                source,
            })?;
        let resource = Resource::builder().build();
        let tracer = SdkTracerProvider::builder()
            .with_batch_exporter(spans)
            .with_resource(resource.clone())
            .build();
        let meter = SdkMeterProvider::builder()
            .with_periodic_exporter(metrics)
            .with_resource(resource)
            .build();
        Telemetry::install(tracer, meter)
    }

    /// Installs providers built elsewhere (another exporter, an in-memory one in a test)
    /// as [`otlp`](Self::otlp) installs its own: the meter provider and W3C trace-context
    /// propagation globally, and a global `tracing` subscriber that turns spans into
    /// OpenTelemetry spans and logs events to stderr as `RUST_LOG` filters them.
    pub fn install(
        tracer: SdkTracerProvider,
        meter: SdkMeterProvider,
    ) -> Result<Telemetry, TelemetryError> {
        let spans = tracing_opentelemetry::layer().with_tracer(tracer.tracer(SCOPE));
        let logs = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(
                EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
            );
        tracing_subscriber::registry()
            .with(spans)
            .with(logs)
            .try_init()?;
        opentelemetry::global::set_meter_provider(meter.clone());
        opentelemetry::global::set_tracer_provider(tracer.clone());
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        Ok(Telemetry { tracer, meter })
    }

    /// Sends what is buffered now (spans ended, metrics so far).
    pub fn flush(&self) {
        // Export errors are the exporter's to report (it logs them); nothing to undo here.
        let _ = self.tracer.force_flush();
        let _ = self.meter.force_flush();
    }

    /// Flushes, then stops both providers.
    pub fn shutdown(self) {
        // `Drop` does it.
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.flush();
        let _ = self.tracer.shutdown();
        let _ = self.meter.shutdown();
    }
}

/// A span for one Lambda invocation of the step handler, in the trace Step Functions
/// passed to it: `xray_trace_id` is the X-Ray trace header the Lambda runtime exposes
/// (`lambda_runtime::Context::xray_trace_id`, or the `_X_AMZN_TRACE_ID` variable), as
/// `Root=1-…;Parent=…;Sampled=1`. Without one (or with one that does not parse) the
/// span starts a trace of its own. Run the handler in it:
///
/// ```
/// # async fn doc(handler: workflow::asl::StepHandler, event: serde_json::Value) {
/// use tracing::Instrument;
/// let header = Some("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1");
/// let answer = handler.handle(event).instrument(workflow::telemetry::lambda_span(header)).await;
/// # let _ = answer; }
/// ```
///
/// Turn tracing on for the state machine (`DeployOptions::tracing`) so that Step
/// Functions starts the trace.
pub fn lambda_span(xray_trace_id: Option<&str>) -> tracing::Span {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    let span = tracing::info_span!("workflow.lambda", otel.kind = "server");
    if let Some(parent) =
        xray_trace_id.and_then(opentelemetry_aws::trace::xray_propagator::span_context_from_str)
    {
        let cx = opentelemetry::Context::new().with_remote_span_context(parent);
        // Refused only when no OpenTelemetry layer sees the span: nothing to continue.
        let _ = span.set_parent(cx);
    }
    span
}
