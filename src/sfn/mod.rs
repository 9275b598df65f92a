//! AWS Step Functions, through the official SDK (`aws-sdk-sfn`): deploy the workflows'
//! state machines, run their steps in this process as an activity worker, start
//! executions and read their results and histories. Feature `sfn` (also part of `cli`).
//!
//! The same definitions run natively and on Step Functions (see [`asl`](crate::asl)).
//! With [`Target::Activity`](crate::asl::Target::Activity), their Task states hand each
//! step to a Step Functions *activity*, which any process can work on: an
//! [`ActivityWorker`] long-polls it and runs the steps with the same
//! [`StepHandler`](crate::asl::StepHandler) a Lambda would, so programs on ECS, EC2 or
//! one's own servers need no Lambda.
//!
//! ```no_run
//! use std::sync::Arc;
//! use workflow::asl::StepHandler;
//! use workflow::prelude::*;
//! use workflow::sfn::{ActivityWorker, DeployOptions, StepFunctions};
//!
//! #[workflow]
//! async fn double(x: u32) -> Result<u32, NoError> {
//!     Ok(x * 2)
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // The default AWS credential chain and region; an endpoint for a local engine.
//! let sfn = StepFunctions::connect(Some("http://127.0.0.1:4566"), None).await;
//! let handler = Arc::new(StepHandler::builder().register(double).build()?);
//!
//! // Creates (or updates) the activity and one state machine per workflow.
//! let options = DeployOptions::new("arn:aws:iam::000000000000:role/workflows");
//! let deployment = sfn.deploy(handler.graphs(), &options).await?;
//!
//! // Works on the activity's tasks until it is stopped.
//! let worker = ActivityWorker::new(&sfn, deployment.activity_arn(), handler).spawn();
//!
//! let execution = sfn.start::<double>(&deployment, &21).await?;
//! assert_eq!(sfn.result::<double>(&execution).await?, Ok(42));
//! worker.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! # What runs where
//!
//! - **Deploy** ([`StepFunctions::deploy`]) creates the activity (Step Functions'
//!   `CreateActivity` is idempotent) and each workflow's state machine, children before
//!   their parents, the substitutions filled in; a state machine that exists is updated
//!   in place, so a second deploy changes nothing but the definitions.
//! - **The worker** ([`ActivityWorker`]) takes a task with `GetActivityTask`, runs its
//!   step, and answers `SendTaskSuccess` with the step handler's answer, or
//!   `SendTaskFailure` named as the [`StepError`](crate::asl::StepError) (the call's own
//!   error name for a call its policy retries), so the states' `Retry` and `Catch` match
//!   as they do for the Lambda. While a step runs it sends `SendTaskHeartbeat`; a worker
//!   that stops heartbeating (it crashed) is given up on after
//!   [`ACTIVITY_HEARTBEAT_SECONDS`](crate::asl::ACTIVITY_HEARTBEAT_SECONDS) and the step
//!   runs again on another worker, as natively after a crash.
//! - **Executions** ([`StepFunctions::start`], [`result`](StepFunctions::result),
//!   [`describe`](StepFunctions::describe), [`entered_states`](StepFunctions::entered_states))
//!   take and give the workflow's own types.
//!
//! Enable X-Ray tracing on the state machines to follow an execution into its children.

mod deploy;
mod executions;
mod worker;

use aws_sdk_sfn::config::http::HttpResponse;
use aws_sdk_sfn::config::Credentials;
use aws_sdk_sfn::error::{DisplayErrorContext, ProvideErrorMetadata};

pub use aws_sdk_sfn::Client;
pub use deploy::{state_machine_name, DeployOptions, Deployment};
pub use executions::{Description, RemoteError, RemoteStatus};
pub use worker::{ActivityWorker, WorkerHandle, WorkerReport};

/// A connection to Step Functions (a cheap handle; clones share it).
#[derive(Clone, Debug)]
pub struct StepFunctions {
    client: Client,
}

impl StepFunctions {
    /// Connects with the default AWS configuration (credential chain, region from the
    /// environment or profile), `region` overriding the region and `endpoint_url` the
    /// service's address (a local engine such as LocalStack).
    ///
    /// With an endpoint override, credentials and region come from the environment
    /// (`AWS_ACCESS_KEY_ID`, `AWS_REGION`, …) or the profile files only, then fixed local
    /// ones (`us-east-1`): a local engine takes any, and the default chains end at the
    /// EC2 instance metadata service (`169.254.169.254`), which a machine off EC2
    /// answers only after a time-out and a sandbox may refuse outright.
    pub async fn connect(endpoint_url: Option<&str>, region: Option<&str>) -> Self {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(url) = endpoint_url {
            use aws_config::environment::{
                EnvironmentVariableCredentialsProvider, EnvironmentVariableRegionProvider,
            };
            use aws_config::meta::credentials::CredentialsProviderChain;
            use aws_config::meta::region::RegionProviderChain;
            use aws_config::profile::{ProfileFileCredentialsProvider, ProfileFileRegionProvider};
            let credentials = CredentialsProviderChain::first_try(
                "Environment",
                EnvironmentVariableCredentialsProvider::new(),
            )
            .or_else("Profile", ProfileFileCredentialsProvider::builder().build())
            .or_else(
                "Local",
                Credentials::new("local", "local", None, None, "workflow-local"),
            );
            let local_region =
                RegionProviderChain::first_try(EnvironmentVariableRegionProvider::new())
                    .or_else(ProfileFileRegionProvider::builder().build())
                    .or_else(aws_config::Region::from_static("us-east-1"));
            loader = loader
                .endpoint_url(url)
                .credentials_provider(credentials)
                .region(local_region);
        }
        if let Some(region) = region {
            loader = loader.region(aws_config::Region::new(region.to_owned()));
        }
        let config = loader.load().await;
        StepFunctions {
            client: Client::new(&config),
        }
    }

    /// Uses a client configured elsewhere.
    pub fn from_client(client: Client) -> Self {
        StepFunctions { client }
    }

    /// The SDK client, for what this module does not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Sends a callback's completion (`SendTaskSuccess`, `SendTaskFailure` or
    /// `SendTaskHeartbeat`), as [`TaskCompletion`](crate::asl::TaskCompletion) describes it:
    /// what completes a `wait_for_callback!` on Step Functions.
    pub async fn send(&self, completion: &crate::asl::TaskCompletion) -> Result<(), SfnError> {
        let token = completion.task_token().to_owned();
        let body = completion.body();
        let text = |key: &str| body.get(key).and_then(|v| v.as_str()).map(str::to_owned);
        match completion.action() {
            "SendTaskSuccess" => self
                .client
                .send_task_success()
                .task_token(token)
                .output(completion.output().unwrap_or("null"))
                .send()
                .await
                .map(drop)
                .map_err(|e| SfnError::service("SendTaskSuccess", e)),
            "SendTaskFailure" => self
                .client
                .send_task_failure()
                .task_token(token)
                .set_error(text("error"))
                .set_cause(text("cause"))
                .send()
                .await
                .map(drop)
                .map_err(|e| SfnError::service("SendTaskFailure", e)),
            _ => self
                .client
                .send_task_heartbeat()
                .task_token(token)
                .send()
                .await
                .map(drop)
                .map_err(|e| SfnError::service("SendTaskHeartbeat", e)),
        }
    }
}

/// What went wrong talking to Step Functions.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SfnError {
    /// A call to the service failed: the operation, the service's error code (empty for
    /// a transport error) and the message.
    #[error("Step Functions {operation} failed: {message}")]
    Service {
        /// The API operation (`CreateStateMachine`, …).
        operation: &'static str,
        /// The service's error code (`ExecutionDoesNotExist`, …), or empty.
        code: String,
        /// Everything the SDK says about the failure.
        message: String,
        /// Whether trying again may succeed: no answer came (a timeout, a connection
        /// refused), or the service was throttling or failed itself (a 5xx).
        transient: bool,
    },
    /// A workflow calls a child that is not among the workflows given to
    /// [`StepFunctions::deploy`].
    #[error("workflow `{parent}` calls `{child}`, which is not among the workflows deployed")]
    MissingChild {
        /// The calling workflow.
        parent: String,
        /// The workflow it calls.
        child: String,
    },
    /// A workflow was not part of the [`Deployment`].
    #[error("workflow `{0}` was not deployed")]
    NotDeployed(String),
    /// An input or output did not convert to or from the workflow's type.
    #[error("{0}")]
    Json(String),
}

impl SfnError {
    fn service<E>(operation: &'static str, e: aws_sdk_sfn::error::SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        // A service error's own message; the whole chain (it may hold the raw
        // response) for a transport error.
        let message = match (e.code(), e.message()) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => code.to_owned(),
            _ => DisplayErrorContext(&e).to_string(),
        };
        let transient = match e.raw_response() {
            None => true,
            Some(r) => r.status().is_server_error() || r.status().as_u16() == 429,
        } || e.code() == Some("ThrottlingException");
        SfnError::Service {
            operation,
            code: e.code().unwrap_or_default().to_owned(),
            message,
            transient,
        }
    }

    /// Whether trying again may succeed (see [`SfnError::Service`]).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            SfnError::Service {
                transient: true,
                ..
            }
        )
    }

    /// The service's error code, if the service answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            SfnError::Service { code, .. } if !code.is_empty() => Some(code),
            _ => None,
        }
    }
}
