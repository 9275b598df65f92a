//! Starting executions and reading them back, in the workflow's own types.

use std::time::Duration;

use aws_sdk_sfn::types::{ExecutionStatus, HistoryEvent, HistoryEventType};
use serde_json::{json, Value};
use workflow_runtime::{Workflow, WorkflowError};

use super::{Deployment, SfnError, StepFunctions};

/// An execution's status on Step Functions.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RemoteStatus {
    /// Still running.
    Running,
    /// Ended at its `Succeed` state.
    Succeeded,
    /// Ended with an error.
    Failed,
    /// Ran past its `TimeoutSeconds` (`#[workflow(timeout)]`).
    TimedOut,
    /// Stopped (`StopExecution`).
    Aborted,
    /// A status this version does not know (`PENDING_REDRIVE`, …), as Step Functions
    /// spells it.
    Other(String),
}

impl RemoteStatus {
    /// Whether the execution has ended.
    pub fn is_terminal(&self) -> bool {
        !matches!(self, RemoteStatus::Running | RemoteStatus::Other(_))
    }
}

/// What `DescribeExecution` says of an execution.
#[derive(Clone, Debug, PartialEq)]
pub struct Description {
    /// Its status.
    pub status: RemoteStatus,
    /// The output of a succeeded execution: the workflow's output as JSON.
    pub output: Option<Value>,
    /// The error of a failed execution: for a workflow's own error, its
    /// [name](WorkflowError::error_name).
    pub error: Option<String>,
    /// The cause of a failed execution: for a workflow's own error, its JSON.
    pub cause: Option<String>,
}

/// Why an execution on Step Functions did not give its workflow's output.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum RemoteError<E> {
    /// The workflow returned its error (decoded from the `Fail` state's cause).
    #[error("execution failed: {0}")]
    Failed(E),
    /// The execution ran past its workflow's timeout.
    #[error("execution timed out")]
    TimedOut,
    /// The execution was stopped.
    #[error("execution was aborted")]
    Aborted,
    /// It failed with an error that is not one of the workflow's: a fault of the step
    /// handler (`Workflow.Panic`, `Workflow.Fault`, …) or of Step Functions (`States.…`).
    #[error("execution faulted: {error}: {cause}")]
    Faulted {
        /// The error's name.
        error: String,
        /// Its cause.
        cause: String,
    },
}

impl StepFunctions {
    /// Starts workflow `W` (as deployed by `deployment`) on `input`; returns the
    /// execution's ARN.
    pub async fn start<W: Workflow>(
        &self,
        deployment: &Deployment,
        input: &W::Input,
    ) -> Result<String, SfnError> {
        let arn = deployment
            .state_machine_arn(W::NAME)
            .ok_or_else(|| SfnError::NotDeployed(W::NAME.to_owned()))?;
        let input = serde_json::to_value(input)
            .map_err(|e| SfnError::Json(format!("the input of `{}`: {e}", W::NAME)))?;
        self.start_json(arn, input).await
    }

    /// Starts the state machine `state_machine_arn` with the workflow input `input`
    /// (sent as the execution input `{"input": …}`); returns the execution's ARN.
    pub async fn start_json(
        &self,
        state_machine_arn: &str,
        input: Value,
    ) -> Result<String, SfnError> {
        Ok(self
            .client
            .start_execution()
            .state_machine_arn(state_machine_arn)
            .input(json!({ "input": input }).to_string())
            .send()
            .await
            .map_err(|e| SfnError::service("StartExecution", e))?
            .execution_arn()
            .to_owned())
    }

    /// The execution's status, and its output or error once it has ended.
    pub async fn describe(&self, execution_arn: &str) -> Result<Description, SfnError> {
        let d = self
            .client
            .describe_execution()
            .execution_arn(execution_arn)
            .send()
            .await
            .map_err(|e| SfnError::service("DescribeExecution", e))?;
        let status = match d.status() {
            ExecutionStatus::Running => RemoteStatus::Running,
            ExecutionStatus::Succeeded => RemoteStatus::Succeeded,
            ExecutionStatus::Failed => RemoteStatus::Failed,
            ExecutionStatus::TimedOut => RemoteStatus::TimedOut,
            ExecutionStatus::Aborted => RemoteStatus::Aborted,
            other => RemoteStatus::Other(other.as_str().to_owned()),
        };
        let output = match d.output() {
            Some(text) => Some(serde_json::from_str(text).map_err(|e| {
                SfnError::Json(format!("the output of {execution_arn} is not JSON: {e}"))
            })?),
            None => None,
        };
        Ok(Description {
            status,
            output,
            error: d.error().map(str::to_owned),
            cause: d.cause().map(str::to_owned),
        })
    }

    /// Waits until the execution has ended (asking every 200 ms at first, then every
    /// 2 s at most) and describes it.
    pub async fn wait(&self, execution_arn: &str) -> Result<Description, SfnError> {
        let mut every = Duration::from_millis(200);
        loop {
            let d = self.describe(execution_arn).await?;
            if d.status.is_terminal() {
                return Ok(d);
            }
            tokio::time::sleep(every).await;
            every = (every * 3 / 2).min(Duration::from_secs(2));
        }
    }

    /// Waits until the execution of workflow `W` has ended; its output, or why there is
    /// none, in `W`'s types.
    pub async fn result<W: Workflow>(
        &self,
        execution_arn: &str,
    ) -> Result<Result<W::Output, RemoteError<W::Error>>, SfnError> {
        let d = self.wait(execution_arn).await?;
        Ok(match d.status {
            RemoteStatus::Succeeded => {
                let output = d.output.unwrap_or(Value::Null);
                Ok(serde_json::from_value(output)
                    .map_err(|e| SfnError::Json(format!("the output of `{}`: {e}", W::NAME)))?)
            }
            RemoteStatus::TimedOut => Err(RemoteError::TimedOut),
            RemoteStatus::Aborted => Err(RemoteError::Aborted),
            _ => {
                let error = d.error.unwrap_or_default();
                let cause = d.cause.unwrap_or_default();
                // The workflow's own error: its JSON, and the name it gives itself.
                match serde_json::from_str::<W::Error>(&cause) {
                    Ok(e) if e.error_name() == error => Err(RemoteError::Failed(e)),
                    _ => Err(RemoteError::Faulted { error, cause }),
                }
            }
        })
    }

    /// The execution's whole history, oldest first.
    pub async fn history(&self, execution_arn: &str) -> Result<Vec<HistoryEvent>, SfnError> {
        let mut events = Vec::new();
        let mut pages = self
            .client
            .get_execution_history()
            .execution_arn(execution_arn)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| SfnError::service("GetExecutionHistory", e))?;
            events.extend(page.events().iter().cloned());
        }
        Ok(events)
    }

    /// The names of the states the execution entered, in order (from its history).
    pub async fn entered_states(&self, execution_arn: &str) -> Result<Vec<String>, SfnError> {
        Ok(self
            .history(execution_arn)
            .await?
            .iter()
            .filter(|e| is_state_entered(e.r#type()))
            .filter_map(|e| e.state_entered_event_details())
            .map(|d| d.name().to_owned())
            .collect())
    }
}

/// The history events of a state being entered, of every kind of state.
fn is_state_entered(kind: &HistoryEventType) -> bool {
    matches!(
        kind,
        HistoryEventType::ChoiceStateEntered
            | HistoryEventType::FailStateEntered
            | HistoryEventType::MapStateEntered
            | HistoryEventType::ParallelStateEntered
            | HistoryEventType::PassStateEntered
            | HistoryEventType::SucceedStateEntered
            | HistoryEventType::TaskStateEntered
            | HistoryEventType::WaitStateEntered
    )
}
