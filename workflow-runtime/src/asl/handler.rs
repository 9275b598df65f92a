//! The step handler: the function behind the Lambda Task states of the emitted ASL.
//!
//! Its protocol (the JSON it takes and gives), the checks it makes on every request
//! and what signed states protect against are documented on the public `asl` module
//! (`mod.rs`), under *The step handler*.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;
use serde::Serialize;
use serde_json::Value;

use super::document::Request;
use super::document::StepClock;
use super::error::{StepError, StepPayload};
use super::sign::StateKey;
use super::{emit, StateMachine, Target};
use crate::deps::{Deps, Fault};
use crate::error::BuildError;
use crate::error::DEFAULT_PAYLOAD_LIMIT;
use crate::graph::StateGraph;
use crate::registry::{self, View, WorkflowRef};
use crate::workflow::{BoxFuture, Workflow};

/// The environment variable [`StepHandlerBuilder::signing_key_from_env`] reads in the
/// example binary (`examples/step_handler.rs`).
pub const STATE_KEY_VAR: &str = "WORKFLOW_STATE_KEY";

/// The room a request has beyond the payload limit, for what wraps the document
/// (`workflow`, `at`, `execution`, a JSON line's `id`): a document at the limit still
/// fits.
pub const REQUEST_ENVELOPE: usize = 4 * 1024;

/// Builds a [`StepHandler`].
pub struct StepHandlerBuilder {
    entries: Vec<WorkflowRef<Entries>>,
    deps: Deps,
    clock: StepClock,
    /// The key's bytes, or why there are none (an unset variable), for `build`.
    key: Option<Result<Vec<u8>, String>>,
    payload_limit: usize,
}

impl Default for StepHandlerBuilder {
    fn default() -> Self {
        StepHandlerBuilder {
            entries: Vec::new(),
            deps: Deps::default(),
            clock: StepClock::default(),
            key: None,
            payload_limit: DEFAULT_PAYLOAD_LIMIT,
        }
    }
}

impl StepHandlerBuilder {
    /// Serves workflow `W`, and every workflow it calls with `call_nested!` (each child
    /// execution invokes the same handler).
    pub fn register<W: Workflow>(mut self, _workflow: W) -> Self {
        self.entries.push(WorkflowRef::of::<W>());
        self
    }

    /// Provides the value injected into every `&T` workflow parameter.
    pub fn dependency<T: Send + Sync + 'static>(self, value: T) -> Self {
        self.dependency_arc(Arc::new(value))
    }

    /// Like [`dependency`](Self::dependency), for a value that is already shared.
    pub fn dependency_arc<T: Send + Sync + 'static>(mut self, value: Arc<T>) -> Self {
        self.deps.insert_arc(value);
        self
    }

    /// Which clock steps read; [`StepClock::Wall`] by default.
    pub fn clock(mut self, clock: StepClock) -> Self {
        self.clock = clock;
        self
    }

    /// Signs every answer with HMAC-SHA-256 under `key` and refuses every document
    /// that does not carry a valid signature (see *Signed states* in the
    /// [`asl`](super) module docs).
    /// At least 32 bytes, random (e.g. `openssl rand -base64 48`), the same for every
    /// instance of the Lambda; [`build`](Self::build) refuses a shorter one.
    pub fn signing_key(mut self, key: impl AsRef<[u8]>) -> Self {
        self.key = Some(Ok(key.as_ref().to_vec()));
        self
    }

    /// [`signing_key`](Self::signing_key) with the value of environment variable `var`
    /// (its UTF-8 bytes; [`STATE_KEY_VAR`] in the example binary).
    /// [`build`](Self::build) fails if it is unset, not UTF-8 or too short.
    pub fn signing_key_from_env(mut self, var: &str) -> Self {
        self.key = Some(match std::env::var(var) {
            Ok(key) => Ok(key.into_bytes()),
            Err(e) => Err(format!("environment variable `{var}`: {e}")),
        });
        self
    }

    /// The largest answer, in bytes of JSON ([`DEFAULT_PAYLOAD_LIMIT`], 256 KiB, if not
    /// set: Step Functions' limit on an execution's JSON, and the native runtime's
    /// default). A request may be [`REQUEST_ENVELOPE`] bigger.
    pub fn payload_limit(mut self, bytes: usize) -> Self {
        self.payload_limit = bytes;
        self
    }

    /// Checks that every dependency is there (the same checks as
    /// [`Builder::build`](crate::Builder::build)), and the signing key if one was given.
    pub fn build(self) -> Result<StepHandler, BuildError> {
        let key = match self.key {
            None => None,
            Some(key) => Some(
                key.and_then(|k| StateKey::new(&k))
                    .map_err(|message| BuildError::SigningKey { message })?,
            ),
        };
        let workflows = registry::link(self.entries, Some(&self.deps))?
            .into_iter()
            .map(|(name, w)| (name, w.view))
            .collect();
        Ok(StepHandler {
            workflows,
            config: Config {
                deps: self.deps,
                clock: self.clock,
                key,
            },
            payload_limit: self.payload_limit,
        })
    }
}

/// What every step of a handler reads besides its request.
pub(crate) struct Config {
    pub(crate) deps: Deps,
    pub(crate) clock: StepClock,
    pub(crate) key: Option<StateKey>,
}

/// Runs one step of a registered workflow per request; see *The step handler* in the
/// [`asl`](super) module docs for the JSON it takes and gives, what it checks and what
/// signing protects against.
///
/// ```no_run
/// # async fn f(request: serde_json::Value) {
/// use workflow_runtime::asl::{StepHandler, STATE_KEY_VAR};
/// let handler = StepHandler::builder() /* .register(run_job).dependency(svc) */
///     .signing_key_from_env(STATE_KEY_VAR)
///     .build()
///     .unwrap();
/// match handler.handle(request).await {
///     Ok(document) => { /* the next execution JSON */ }
///     Err(e) => eprintln!("{}: {e}", e.name()),
/// }
/// # }
/// ```
pub struct StepHandler {
    workflows: HashMap<&'static str, Arc<dyn Entry>>,
    config: Config,
    payload_limit: usize,
}

impl std::fmt::Debug for StepHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepHandler")
            .field("workflows", &self.workflows())
            .field("clock", &self.config.clock)
            .field("signing", &self.signing())
            .field("payload_limit", &self.payload_limit)
            .finish()
    }
}

impl StepHandler {
    /// A builder.
    pub fn builder() -> StepHandlerBuilder {
        StepHandlerBuilder::default()
    }

    /// The registered workflows' names, sorted.
    pub fn workflows(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = self.workflows.keys().copied().collect();
        names.sort_unstable();
        names
    }

    /// The registered workflows' state graphs, sorted by name.
    pub fn graphs(&self) -> Vec<&'static StateGraph> {
        self.workflows()
            .into_iter()
            .filter_map(|n| self.workflows.get(n))
            .map(|e| e.graph())
            .collect()
    }

    /// Whether answers are signed and documents checked (a signing key was given).
    pub fn signing(&self) -> bool {
        self.config.key.is_some()
    }

    /// The largest request accepted, in bytes: the payload limit plus
    /// [`REQUEST_ENVELOPE`].
    pub fn request_limit(&self) -> usize {
        self.payload_limit.saturating_add(REQUEST_ENVELOPE)
    }

    /// The ASL of every registered workflow, sorted by name, for the step handler as
    /// a Lambda function.
    pub fn state_machines(&self) -> Vec<StateMachine> {
        self.state_machines_for(Target::Lambda)
    }

    /// The ASL of every registered workflow, sorted by name, for `target`.
    pub fn state_machines_for(&self, target: Target) -> Vec<StateMachine> {
        self.workflows()
            .into_iter()
            .filter_map(|n| self.workflows.get(n))
            .map(|e| emit::emit(e.graph(), target))
            .collect()
    }

    /// Writes `<name>.asl.json` (pretty) for every registered workflow into `dir`.
    pub fn write_asl(&self, dir: &std::path::Path) -> std::io::Result<Vec<std::path::PathBuf>> {
        std::fs::create_dir_all(dir)?;
        let mut written = Vec::new();
        for m in self.state_machines() {
            let path = dir.join(format!("{}.asl.json", m.workflow()));
            std::fs::write(&path, m.to_pretty() + "\n")?;
            written.push(path);
        }
        Ok(written)
    }

    /// Runs one step for `request` and answers the next execution document. A request
    /// that was already parsed is measured as JSON before anything else; prefer
    /// [`handle_bytes`](Self::handle_bytes) where the bytes are at hand.
    pub async fn handle(&self, request: Value) -> Result<Value, StepError> {
        let limit = self.request_limit();
        let size = json_size(&request);
        if size > limit {
            return Err(StepError::PayloadTooLarge {
                what: StepPayload::Request,
                size,
                limit,
            });
        }
        self.handle_parsed(request).await
    }

    /// [`handle`](Self::handle) for a request as JSON text, refused before it is parsed
    /// if it is over [`request_limit`](Self::request_limit).
    pub async fn handle_bytes(&self, request: &[u8]) -> Result<Value, StepError> {
        let limit = self.request_limit();
        if request.len() > limit {
            return Err(StepError::PayloadTooLarge {
                what: StepPayload::Request,
                size: request.len(),
                limit,
            });
        }
        let request: Value = serde_json::from_slice(request)
            .map_err(|e| StepError::InvalidRequest(format!("not JSON: {e}")))?;
        self.handle_parsed(request).await
    }

    /// Answers a request already known to be within the request limit.
    pub(crate) async fn handle_parsed(&self, request: Value) -> Result<Value, StepError> {
        let request: Request = serde_json::from_value(request)
            .map_err(|e| StepError::InvalidRequest(e.to_string()))?;
        let (&name, entry) = self
            .workflows
            .get_key_value(request.workflow.as_str())
            .ok_or_else(|| StepError::UnknownWorkflow(request.workflow.clone()))?;
        // The step catches a panic of the workflow's code; this one also what runs
        // around it (a `Deserialize` of the workflow's types), so that one request's
        // panic never takes the handler down.
        let answer = AssertUnwindSafe(entry.run(request, &self.config))
            .catch_unwind()
            .await
            .map_err(|payload| StepError::Fault(Fault::panic(name, &*payload)))??;
        let size = json_size(&answer);
        if size > self.payload_limit {
            return Err(StepError::PayloadTooLarge {
                what: StepPayload::Answer,
                size,
                limit: self.payload_limit,
            });
        }
        Ok(answer)
    }
}

/// The size of `value` as compact JSON, without writing it anywhere.
pub(crate) fn json_size(value: &impl Serialize) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Counting cannot fail, nor can serializing a `Value`.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

/// The step handler's view of the registered workflows: an [`Entry`] each.
pub(crate) struct Entries;

impl View for Entries {
    type Of = Arc<dyn Entry>;
    fn of<W: Workflow>() -> Arc<dyn Entry> {
        Arc::new(Typed::<W>(PhantomData))
    }
}

/// The handler's view of a workflow type.
pub(crate) trait Entry: Send + Sync {
    fn graph(&self) -> &'static StateGraph;
    fn run<'a>(
        &'a self,
        request: Request,
        config: &'a Config,
    ) -> BoxFuture<'a, Result<Value, StepError>>;
}

pub(crate) struct Typed<W>(pub(crate) PhantomData<fn() -> W>);

impl<W: Workflow> Entry for Typed<W> {
    fn graph(&self) -> &'static StateGraph {
        W::graph()
    }
    fn run<'a>(
        &'a self,
        request: Request,
        config: &'a Config,
    ) -> BoxFuture<'a, Result<Value, StepError>> {
        Box::pin(super::step::run::<W>(request, config))
    }
}
