//! The step handler of the nesting example's workflows: what the Task states of their
//! emitted ASL invoke (see the README's "Deploying to AWS Step Functions").
//!
//! ```text
//! # A long-lived local process: one JSON request per line on stdin, one answer per line.
//! JOB_SERVICE_URL=http://127.0.0.1:8080 cargo run --example step_handler
//!
//! # The same handler as an AWS Lambda function (build it for Lambda, e.g. with cargo-lambda).
//! cargo build --release --example step_handler --features lambda
//! ```
//!
//! With `--features lambda`, the binary serves Lambda invocations when it runs inside
//! Lambda (the `AWS_LAMBDA_RUNTIME_API` variable is set) and JSON lines otherwise. An
//! invalid request fails the invocation with an error whose type is the handler's error
//! name (`Workflow.InvalidState`, …), which a `Catch` or `Retry` in the ASL can match.
//!
//! The signing key is read from `WORKFLOW_STATE_KEY` (at least 32 bytes; see the
//! README's deploy section): inside Lambda it must be set, or the function refuses to
//! start; for local JSON lines it is used if set.

#[path = "nesting/workflows.rs"]
#[allow(dead_code)]
mod workflows;

use workflow::asl::{serve_json_lines, StepHandler, STATE_KEY_VAR};

use workflows::{main_flow, JobService};

/// The handler; `signed` makes a missing or short `WORKFLOW_STATE_KEY` an error.
fn handler(signed: bool) -> Result<StepHandler, Box<dyn std::error::Error>> {
    let url = std::env::var("JOB_SERVICE_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let mut builder = StepHandler::builder()
        .register(main_flow) // and run_job, which it calls
        .dependency(JobService::new(url));
    if signed || std::env::var_os(STATE_KEY_VAR).is_some() {
        builder = builder.signing_key_from_env(STATE_KEY_VAR);
    }
    Ok(builder.build()?)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    #[cfg(feature = "lambda")]
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        // Anyone allowed to invoke the function could otherwise make up states.
        return lambda::serve(handler(true)?);
    }
    let handler = handler(false)?;
    if !handler.signing() {
        eprintln!("step_handler: {STATE_KEY_VAR} is not set; documents are not signed");
    }
    let stdin = std::io::stdin();
    serve_json_lines(&handler, stdin.lock(), std::io::stdout().lock())?;
    Ok(())
}

#[cfg(feature = "lambda")]
mod lambda {
    use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
    use serde_json::value::RawValue;
    use tracing::Instrument;
    use workflow::asl::StepHandler;
    use workflow::telemetry::{lambda_span, Telemetry};

    pub fn serve(handler: StepHandler) -> Result<(), Box<dyn std::error::Error>> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        // Spans and metrics to the collector `OTEL_EXPORTER_OTLP_ENDPOINT` names, if set
        // (inside the runtime: the exporters may need one).
        let _guard = runtime.enter();
        let telemetry = match std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT") {
            Some(_) => Some(Telemetry::otlp()?),
            None => None,
        };
        let telemetry = &telemetry;
        runtime
            .block_on(async {
                let handler = &handler;
                // The event as text: the handler measures it before parsing it.
                lambda_runtime::run(service_fn(
                    move |event: LambdaEvent<Box<RawValue>>| async move {
                        let request = event.payload.get().as_bytes();
                        // In the X-Ray trace Step Functions started (with tracing on
                        // for the state machine): the step's spans join the execution's.
                        let span = lambda_span(event.context.xray_trace_id.as_deref());
                        let answer = handler.handle_bytes(request).instrument(span).await;
                        if let Some(telemetry) = &telemetry {
                            // A Lambda may be frozen between invocations: send now.
                            telemetry.flush();
                        }
                        answer.map_err(|e| Diagnostic {
                            error_type: e.name().to_owned(),
                            error_message: e.to_string(),
                        })
                    },
                ))
                .await
            })
            .map_err(|e| e as Box<dyn std::error::Error>)
    }
}
