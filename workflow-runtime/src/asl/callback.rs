//! Callbacks on Step Functions: the step handler hands the closure of a
//! `wait_for_callback!` a [`CallbackToken`] wrapping `$$.Task.Token`, and whoever gets
//! it completes it through Step Functions, with the call [`TaskCompletion`] describes.

use serde::Serialize;
use serde_json::{json, Value};

use crate::callback::{CallbackToken, CompletionError, Parts};
use crate::retry::check_name;

/// Step Functions' limits on what completes a task token.
const MAX_OUTPUT: usize = 256 * 1024;
const MAX_ERROR: usize = 256;
const MAX_CAUSE: usize = 32_768;

/// A completion of a callback token handed out by the step handler of a deployed
/// workflow: the Step Functions API call that completes it (`SendTaskSuccess`,
/// `SendTaskFailure` or `SendTaskHeartbeat`), the counterpart of
/// [`Runtime::complete`](crate::Runtime::complete), [`fail`](crate::Runtime::fail) and
/// [`heartbeat`](crate::Runtime::heartbeat) for a native token.
///
/// This crate does not call AWS: hand the call to the AWS SDK, or to any HTTP client
/// that signs requests (SigV4).
///
/// ```
/// use workflow::asl::TaskCompletion;
/// use workflow::CallbackToken;
///
/// // What the closure of `wait_for_callback!` got on Step Functions.
/// let token: CallbackToken = "sfn1.AAAAKgAAAAIAAAAAAAAAAQ".parse()?;
/// let done = TaskCompletion::success(&token, &serde_json::json!({"approved": true}))?;
/// assert_eq!(done.action(), "SendTaskSuccess");
/// assert_eq!(done.task_token(), "AAAAKgAAAAIAAAAAAAAAAQ");
/// assert_eq!(done.output(), Some(r#"{"approved":true}"#));
/// // With the AWS SDK (`aws-sdk-sfn`):
/// //   client.send_task_success()
/// //       .task_token(done.task_token())
/// //       .output(done.output().unwrap())
/// //       .send().await?;
/// // Or over HTTP: POST https://states.{region}.amazonaws.com/, signed with SigV4,
/// // `X-Amz-Target: {done.target()}`, `Content-Type: application/x-amz-json-1.0`,
/// // and `done.body()` as the JSON body.
/// assert_eq!(done.target(), "AWSStepFunctions.SendTaskSuccess");
/// assert_eq!(done.body()["taskToken"], "AAAAKgAAAAIAAAAAAAAAAQ");
/// # Ok::<(), workflow::CompletionError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct TaskCompletion {
    action: &'static str,
    body: Value,
}

impl TaskCompletion {
    /// `SendTaskSuccess` with `value` (as JSON) as the task's output: the
    /// `wait_for_callback!` gives the workflow `value`, decoded as the type it is bound
    /// with. Step Functions cannot check that type: a value that does not decode fails
    /// the execution at the callback's resume state, with `Workflow.Fault`.
    pub fn success<T: Serialize + ?Sized>(
        token: &CallbackToken,
        value: &T,
    ) -> Result<Self, CompletionError> {
        let task_token = task_token(token)?;
        let output = serde_json::to_string(value).map_err(|e| CompletionError::InvalidValue {
            reason: format!("it does not serialize: {e}"),
        })?;
        if output.len() > MAX_OUTPUT {
            return Err(CompletionError::InvalidValue {
                reason: format!(
                    "it is {} bytes, over Step Functions' {MAX_OUTPUT}-byte limit",
                    output.len()
                ),
            });
        }
        Ok(TaskCompletion {
            action: "SendTaskSuccess",
            body: json!({"taskToken": task_token, "output": output}),
        })
    }

    /// `SendTaskFailure` with `error` and `cause`: the workflow gets
    /// [`CallbackError::Failed`](crate::CallbackError::Failed), named `error`. The same
    /// names are accepted as by [`Runtime::fail`](crate::Runtime::fail).
    pub fn failure(
        token: &CallbackToken,
        error: &str,
        cause: &str,
    ) -> Result<Self, CompletionError> {
        let task_token = task_token(token)?;
        let invalid = |reason: String| Err(CompletionError::InvalidFailure { reason });
        if let Err(reason) = check_name(error) {
            return invalid(reason);
        }
        if error.chars().count() > MAX_ERROR {
            return invalid(format!("the error name is over {MAX_ERROR} characters"));
        }
        if cause.chars().count() > MAX_CAUSE {
            return invalid(format!("the cause is over {MAX_CAUSE} characters"));
        }
        Ok(TaskCompletion {
            action: "SendTaskFailure",
            body: json!({"taskToken": task_token, "error": error, "cause": cause}),
        })
    }

    /// `SendTaskHeartbeat`: the callback's heartbeat interval starts over.
    pub fn heartbeat(token: &CallbackToken) -> Result<Self, CompletionError> {
        Ok(TaskCompletion {
            action: "SendTaskHeartbeat",
            body: json!({"taskToken": task_token(token)?}),
        })
    }

    /// The API action: `SendTaskSuccess`, `SendTaskFailure` or `SendTaskHeartbeat`.
    pub fn action(&self) -> &'static str {
        self.action
    }

    /// The `X-Amz-Target` header of the action's HTTP request
    /// (`AWSStepFunctions.SendTaskSuccess`, …).
    pub fn target(&self) -> String {
        format!("AWSStepFunctions.{}", self.action)
    }

    /// The action's JSON body (`taskToken`, and `output`, or `error` and `cause`).
    pub fn body(&self) -> &Value {
        &self.body
    }

    /// The Step Functions task token.
    pub fn task_token(&self) -> &str {
        self.body["taskToken"].as_str().unwrap_or_default()
    }

    /// The output of a `SendTaskSuccess`, as JSON text.
    pub fn output(&self) -> Option<&str> {
        self.body["output"].as_str()
    }
}

fn task_token(token: &CallbackToken) -> Result<&str, CompletionError> {
    match token.parts() {
        Parts::StepFunctions(task_token) => Ok(task_token),
        Parts::Native { .. } => Err(CompletionError::NativeToken),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aws() -> CallbackToken {
        "sfn1.AAAAKgAAAAIAAAAAAAAAAQ".parse().unwrap()
    }

    #[test]
    fn failures_and_heartbeats_are_the_other_two_calls() {
        let failure = TaskCompletion::failure(&aws(), "Approval.Withdrawn", "no").unwrap();
        assert_eq!(failure.target(), "AWSStepFunctions.SendTaskFailure");
        assert_eq!(
            failure.body(),
            &json!({"taskToken": "AAAAKgAAAAIAAAAAAAAAAQ", "error": "Approval.Withdrawn", "cause": "no"})
        );
        assert_eq!(failure.output(), None);
        let beat = TaskCompletion::heartbeat(&aws()).unwrap();
        assert_eq!(beat.action(), "SendTaskHeartbeat");
        assert_eq!(beat.body(), &json!({"taskToken": "AAAAKgAAAAIAAAAAAAAAAQ"}));
    }

    #[test]
    fn what_step_functions_would_refuse_is_refused_here() {
        let native: CallbackToken = "wf1.0123456789abcdef.0123456789abcdef0123456789abcdef.run"
            .parse()
            .unwrap();
        assert!(matches!(
            TaskCompletion::heartbeat(&native),
            Err(CompletionError::NativeToken)
        ));
        for (error, cause) in [
            ("", "x"),
            ("States.Timeout", "x"),
            ("E", &*"c".repeat(32_769)),
        ] {
            assert!(matches!(
                TaskCompletion::failure(&aws(), error, cause),
                Err(CompletionError::InvalidFailure { .. })
            ));
        }
        let big = "x".repeat(MAX_OUTPUT);
        assert!(matches!(
            TaskCompletion::success(&aws(), &big),
            Err(CompletionError::InvalidValue { .. })
        ));
    }
}
