//! The step handler as a Step Functions activity worker.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use workflow_runtime::asl::{is_token_sent, StepError, StepHandler};

use super::{SfnError, StepFunctions};

/// Step Functions' limit on a task failure's `Cause`, in characters.
const MAX_CAUSE: usize = 32_768;

/// Step Functions' limit on a task failure's `Error`, in characters.
const MAX_ERROR: usize = 256;

/// Works on the tasks of one activity with a [`StepHandler`]: each task is a request
/// of the step handler's protocol (see [`asl`](crate::asl)), its answer the task's
/// output.
///
/// - **Concurrency**: at most [`concurrency`](Self::concurrency) steps at once, each
///   taken by its own long poll (`GetActivityTask`), so the worker never takes a task it
///   has no room to run.
/// - **Heartbeats**: while a step runs, `SendTaskHeartbeat` three times per the Task
///   state's `HeartbeatSeconds`, which the task's input carries (`heartbeat_seconds`;
///   see [`ACTIVITY_HEARTBEAT_SECONDS`](crate::asl::ACTIVITY_HEARTBEAT_SECONDS)). A
///   callback's Task has none: once the step has sent the token, the task is left open
///   for whoever completes it.
/// - **Errors**: a [`StepError`] is sent as `SendTaskFailure` with its
///   [name](StepError::name) as `Error` (the states' `Retry` and `Catch` match them) and
///   its message as `Cause`. A transient failure to reach Step Functions is retried; an
///   activity that does not exist stops the worker with an error.
/// - **Shutdown** ([`WorkerHandle::shutdown`]): no new task is taken, the steps in
///   flight finish and are answered. A long poll cut short by the shutdown may already
///   have been given a task: Step Functions gives up on it after the Task's
///   `HeartbeatSeconds` and runs the step again elsewhere (the states retry
///   `States.HeartbeatTimeout`).
pub struct ActivityWorker {
    sfn: StepFunctions,
    activity_arn: String,
    handler: Arc<StepHandler>,
    concurrency: usize,
    name: String,
}

/// What a worker did, once it has stopped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkerReport {
    /// Tasks answered with `SendTaskSuccess`.
    pub succeeded: u64,
    /// Tasks answered with `SendTaskFailure`.
    pub failed: u64,
    /// Callback Tasks whose token the step sent: left open for whoever completes them.
    pub tokens_sent: u64,
    /// Answers Step Functions refused (the task had timed out, …).
    pub unanswered: u64,
}

#[derive(Default)]
struct Counters {
    succeeded: AtomicU64,
    failed: AtomicU64,
    tokens_sent: AtomicU64,
    unanswered: AtomicU64,
}

impl Counters {
    fn report(&self) -> WorkerReport {
        WorkerReport {
            succeeded: self.succeeded.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            tokens_sent: self.tokens_sent.load(Ordering::Relaxed),
            unanswered: self.unanswered.load(Ordering::Relaxed),
        }
    }
}

/// A running [`ActivityWorker`].
pub struct WorkerHandle {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<WorkerReport, SfnError>>,
}

impl WorkerHandle {
    /// Stops taking tasks, waits for the steps in flight to be answered, and reports.
    pub async fn shutdown(self) -> Result<WorkerReport, SfnError> {
        self.stop.cancel();
        self.join().await
    }

    /// Waits for the worker to stop by itself (an error, such as an activity that
    /// does not exist).
    pub async fn join(self) -> Result<WorkerReport, SfnError> {
        match self.task.await {
            Ok(result) => result,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
}

impl ActivityWorker {
    /// A worker on activity `activity_arn` (see [`Deployment::activity_arn`](super::Deployment::activity_arn)), running steps with `handler`.
    pub fn new(
        sfn: &StepFunctions,
        activity_arn: impl Into<String>,
        handler: Arc<StepHandler>,
    ) -> Self {
        ActivityWorker {
            sfn: sfn.clone(),
            activity_arn: activity_arn.into(),
            handler,
            concurrency: 8,
            name: format!("workflow-{}", std::process::id()),
        }
    }

    /// At most this many steps at once (8 by default; at least 1).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// The worker name Step Functions records in the history (`workflow-<pid>` by
    /// default).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Starts the worker on the current tokio runtime.
    pub fn spawn(self) -> WorkerHandle {
        let stop = CancellationToken::new();
        let task = tokio::spawn(self.run(stop.clone()));
        WorkerHandle { stop, task }
    }

    /// Runs the worker until `stop` is cancelled (then finishes the steps in flight) or
    /// it cannot go on.
    pub async fn run(self, stop: CancellationToken) -> Result<WorkerReport, SfnError> {
        let worker = Arc::new(self);
        let counters = Arc::new(Counters::default());
        let mut pollers = tokio::task::JoinSet::new();
        for _ in 0..worker.concurrency {
            pollers.spawn(Arc::clone(&worker).poll(stop.clone(), Arc::clone(&counters)));
        }
        let mut outcome = Ok(());
        while let Some(done) = pollers.join_next().await {
            match done {
                Ok(Ok(())) => {}
                // One poller's fatal error stops the others (after their steps).
                Ok(Err(e)) => {
                    stop.cancel();
                    if outcome.is_ok() {
                        outcome = Err(e);
                    }
                }
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            }
        }
        outcome.map(|()| counters.report())
    }

    /// One long poll after another, each task run to its answer before the next poll.
    async fn poll(
        self: Arc<Self>,
        stop: CancellationToken,
        counters: Arc<Counters>,
    ) -> Result<(), SfnError> {
        let mut backoff = Duration::from_millis(200);
        loop {
            let request = self
                .sfn
                .client
                .get_activity_task()
                .activity_arn(&self.activity_arn)
                .worker_name(&self.name)
                .send();
            let task = tokio::select! {
                () = stop.cancelled() => return Ok(()),
                task = request => task,
            };
            let task = match task {
                Ok(task) => {
                    backoff = Duration::from_millis(200);
                    task
                }
                Err(e) => {
                    let e = SfnError::service("GetActivityTask", e);
                    if matches!(e.code(), Some("ActivityDoesNotExist" | "InvalidArn")) {
                        return Err(e);
                    }
                    tracing::warn!(error = %e, "the activity worker could not poll; trying again");
                    tokio::select! {
                        () = stop.cancelled() => return Ok(()),
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    continue;
                }
            };
            // An empty answer: the long poll ended without a task.
            let Some(token) = task.task_token().filter(|t| !t.is_empty()) else {
                continue;
            };
            // An activity task carries no trace context: each is a trace of its own,
            // the step's spans under this one.
            let span = tracing::info_span!("workflow.activity_task", activity.worker = %self.name);
            self.work(token, task.input().unwrap_or_default(), &counters)
                .instrument(span)
                .await;
        }
    }

    /// Runs one task's step, heartbeating, and answers it.
    async fn work(&self, token: &str, input: &str, counters: &Counters) {
        let answer = match request(token, input) {
            Err(e) => Err(e),
            Ok((request, None)) => self.handler.handle(request).await,
            Ok((request, Some(every))) => {
                let step = self.handler.handle(request);
                tokio::pin!(step);
                let mut beat = tokio::time::interval(every);
                beat.tick().await;
                loop {
                    tokio::select! {
                        answer = &mut step => break answer,
                        _ = beat.tick() => {
                            let sent = self.sfn.client.send_task_heartbeat().task_token(token).send().await;
                            if let Err(e) = sent {
                                let e = SfnError::service("SendTaskHeartbeat", e);
                                tracing::warn!(error = %e, "a step's heartbeat was refused");
                            }
                        }
                    }
                }
            }
        };
        let answer = match answer {
            Ok(answer) if is_token_sent(&answer) => {
                counters.tokens_sent.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Ok(answer) => Ok(answer.to_string()),
            Err(e) => Err((
                truncate(e.name(), MAX_ERROR),
                truncate(&e.to_string(), MAX_CAUSE),
            )),
        };
        // A transport error, throttling or a failure of the service is tried again; a
        // refusal (the task timed out meanwhile, …) is final.
        let mut attempt = 0;
        let (counter, result) = loop {
            attempt += 1;
            let (counter, result) = match &answer {
                Ok(output) => (
                    &counters.succeeded,
                    self.sfn
                        .client
                        .send_task_success()
                        .task_token(token)
                        .output(output)
                        .send()
                        .await
                        .map(drop)
                        .map_err(|e| SfnError::service("SendTaskSuccess", e)),
                ),
                Err((error, cause)) => (
                    &counters.failed,
                    self.sfn
                        .client
                        .send_task_failure()
                        .task_token(token)
                        .error(error)
                        .cause(cause)
                        .send()
                        .await
                        .map(drop)
                        .map_err(|e| SfnError::service("SendTaskFailure", e)),
                ),
            };
            let transient = matches!(&result, Err(e) if e.is_transient());
            if !transient || attempt == 5 {
                break (counter, result);
            }
            tokio::time::sleep(Duration::from_millis(250 * attempt)).await;
        };
        match result {
            Ok(()) => {
                counter.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                counters.unanswered.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "a step's answer was refused");
            }
        }
    }
}

/// The step handler's request in a task's input, with the task's token added (a
/// callback's Task sends it), and how often to heartbeat while it runs.
fn request(token: &str, input: &str) -> Result<(Value, Option<Duration>), StepError> {
    let mut request: Value = serde_json::from_str(input)
        .map_err(|e| StepError::InvalidRequest(format!("the activity's input is not JSON: {e}")))?;
    let Some(fields) = request.as_object_mut() else {
        return Err(StepError::InvalidRequest(
            "the activity's input is not a JSON object".into(),
        ));
    };
    let every = fields
        .remove("heartbeat_seconds")
        .and_then(|s| s.as_u64())
        .map(|s| Duration::from_millis(s.saturating_mul(1000) / 3).max(Duration::from_millis(100)));
    fields.insert("token".to_owned(), Value::String(token.to_owned()));
    Ok((request, every))
}

/// At most `max` characters of `text`.
fn truncate(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_gets_the_token_and_loses_the_heartbeat() {
        let input = r#"{"workflow":"w","at":"Start","execution":"arn:x","document":{"input":1},"heartbeat_seconds":60}"#;
        let (asked, every) = request("tok", input).unwrap();
        assert_eq!(every, Some(Duration::from_secs(20)));
        assert_eq!(
            asked,
            serde_json::json!({"workflow":"w","at":"Start","execution":"arn:x","document":{"input":1},"token":"tok"})
        );
        // A callback's Task: no heartbeat while its token is sent.
        let (_, every) = request("tok", r#"{"workflow":"w","at":"c"}"#).unwrap();
        assert_eq!(every, None);
    }

    #[test]
    fn a_bad_input_is_an_invalid_request() {
        for input in ["not json", "[1, 2]", "\"text\""] {
            let e = request("tok", input).unwrap_err();
            assert_eq!(e.name(), "Workflow.InvalidRequest", "{input}: {e}");
        }
    }

    #[test]
    fn failures_fit_step_functions_limits() {
        let long = "é".repeat(MAX_CAUSE + 10);
        assert_eq!(truncate(&long, MAX_CAUSE).chars().count(), MAX_CAUSE);
        assert_eq!(truncate("short", MAX_ERROR), "short");
    }
}
