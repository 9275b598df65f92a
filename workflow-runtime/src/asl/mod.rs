//! Amazon States Language: the same workflow, deployable to AWS Step Functions.
//!
//! Two halves, both derived at run time from
//! [`Workflow::graph`](crate::Workflow::graph) (the state graph the native driver is
//! written in terms of, so the two cannot drift):
//!
//! - [`asl()`](asl) (the `emit` module) turns the graph into an ASL definition
//!   ([`StateMachine`]);
//! - [`StepHandler`] is the function its Lambda Task states call: JSON in, JSON out, it
//!   resumes the workflow from the serialized state in the request and runs it to the
//!   next yield point with the same generated `step` function the native driver uses.
//!
//! # How a native run maps to states
//!
//! A native *step* runs the Rust code from one resume point to the next yield point and
//! performs the yield if it is a task (the awaited call runs inside the step). Which
//! yield comes next is only known once that code has run (it may pass an `if`, a `match`
//! or a loop), so every Lambda Task state runs the code that *follows* a yield point, and
//! a Choice state then routes on the `next` field of its answer. Per graph node `N`:
//!
//! | node             | states                                                                 |
//! |------------------|------------------------------------------------------------------------|
//! | (start)          | `Start` (Lambda) → `Start: next` (Choice)                               |
//! | task `N`         | `N` (Lambda, entered once the call `N` returned) → `N: next` (Choice)   |
//! | task `N` with a policy | `N` (Lambda that makes the call, with `Retry`, `TimeoutSeconds`, `Catch` → `N: caught`), then the code after it → `N: next` (Choice) |
//! | `sleep!` `N`     | `N` (Wait) → `N: resume` (Lambda) → `N: next` (Choice)                  |
//! | `poll_until!` `N`| `N` (Wait) → `N: attempt` (Lambda) → `N: check` (Choice: wait again, go on, or the Fail states `N: timed out`, `N: too many errors`, `N: attempts exhausted`) |
//! | child `N`        | `N` (Task `startExecution.sync:2`) → `N: resume` (Lambda) → `N: next`   |
//! | parallel `N`     | `N` (Parallel, one `startExecution.sync:2` Task per branch: `N: #1`, …) → `N: resume` → `N: next` |
//! | map `N`          | `N` (Map with `MaxConcurrency`, item Task `N: child`) → `N: resume` → `N: next` |
//! | poll `N` with a policy | as a poll, with `Retry`, `TimeoutSeconds` and `Catch` → `N: caught` (Lambda → `N: check`) on `N: attempt` |
//! | child/parallel/map `N` with a policy | as above; `#[timeout]` is each child Task's `TimeoutSeconds`; a retry goes `N: resume` → `N: next` → `N: retry` (Wait) → `N` |
//! | callback `N`     | `N` (Task `lambda:invoke.waitForTaskToken`: the Lambda sends `$$.Task.Token`; `TimeoutSecondsPath`, `HeartbeatSecondsPath`) → `N: resume` (Lambda) → `N: next` |
//! | `#[workflow(timeout)]` | the definition's top-level `TimeoutSeconds`                     |
//! | `Succeed`/`Fail` | `Succeed` (output = the workflow's output), `Fail` (`Error` = the error's [name](crate::WorkflowError::error_name), `Cause` = its JSON) |
//!
//! Branches and loops are Rust code, so the Lambda evaluates them: each Choice state has
//! one rule per edge of its node in the graph (the yield points and ends the code after
//! it can reach, recorded by the macro as it wrote that code), and a `Default` to a Fail
//! state `…: no route` (error `Workflow.NoRoute`), so an answer the graph does not
//! foresee ends the execution with a named error instead of `States.NoChoiceMatched`.
//!
//! **State sequence.** Each entered state stands for at most one native history entry
//! ([`StateMachine::token`]): a task Lambda `N` for the task's outcome (`TaskSucceeded N`,
//! or for a task with a policy, whose state is entered before the call, also
//! `TaskFailed N`), a Wait `N` for
//! `WaitStarted N`, `N: attempt` for `PollAttempt N`, a child/Parallel/Map state `N` for
//! the batch (the native `ChildStarted N` of the batch's first child), a callback's Task
//! `N` for `CallbackStarted N`, `Succeed`/`Fail`
//! (and the poll's Fail states) for the execution's end; routing and resume states stand
//! for nothing, and so do the `N: caught` states (the rest of the state whose error was
//! caught) and the `N: retry` Waits (natively a retry enters no state; the retried
//! batch's `ChildStarted N` is the child state `N` entered again). Mapped this way, a
//! native run and an ASL run give the same sequence.
//!
//! # Retries, timeouts and caught errors
//!
//! A task with a policy (`#[retry(…)]`, `#[timeout(…)]`, or the workflow's default) is a
//! yield point of its own natively: the step before it checkpoints, and the next step
//! starts with the call, so that a retry re-runs the call and nothing before it. In ASL
//! its Lambda `N` makes the call and then runs on to the next yield point. When the call
//! fails with an error the policy retries, the step handler answers with an error of the
//! same name ([`StepError::Task`]) and the state's `Retry` (the policy's names, or
//! `States.ALL` for every error, after a retrier that never retries the handler's own
//! errors, `Workflow.Panic` among them; interval, backoff, cap and jitter in whole
//! seconds, rounded up) runs the Lambda again. Once it gives up, the `Catch` leads to the Lambda
//! `N: caught`, which hands the error to the code as the call's result, as natively
//! after the last retry. Natively the retries do not enter states (the history has a
//! `RetryScheduled` each); on Step Functions the Task state is entered once and retried
//! inside it. A poll with a policy does the same on its `N: attempt` Lambda.
//!
//! A timeout is enforced by the step handler (`Workflow.Timeout`, the same error as
//! natively); the Task state's `TimeoutSeconds` is a backstop a little above it, for an
//! invocation that hangs, and its `States.Timeout` reaches the code as the same timeout
//! error.
//!
//! ## Nested calls
//!
//! A `call_nested!`'s `#[timeout(d)]` is the `TimeoutSeconds` of its child Task (whole
//! seconds, rounded up; without one, [`CHILD_TIMEOUT_SECONDS`]). ASL has no
//! `TimeoutSeconds` on Parallel or Map states, so a batch's timeout is on each child
//! Task: the first to time out fails the Parallel/Map (which stops the others) with
//! `States.Timeout`, and the resume Lambda gives the code `NestedError::TimedOut`, as
//! natively. The one difference: natively the batch has one deadline from its start,
//! while a Map whose `MaxConcurrency` holds children back gives each its own timeout
//! from when it starts, so such a batch may run longer.
//!
//! Its `#[retry(…)]` is decided by the Rust code, not by a `Retry` field: `.sync:2`
//! reports every failed child as `States.TaskFailed`, so the child's error names would
//! never match on Step Functions. The Task / Parallel / Map `Catch`es every error into
//! the resume Lambda; when the code retries (the child's error is one the policy
//! retries, attempts left), the handler answers the same state with the same calls as
//! the next batch (new ids `{parent}/{batch}.{index}`, as natively), `wait_seconds` =
//! the delay rounded up, and the attempt count as `retries`; the Choice routes to the
//! Wait `N: retry`, which leads back to `N`.
//!
//! A child that runs past its own `#[workflow(timeout)]` ends `TIMED_OUT`; `.sync:2`
//! fails with `States.TaskFailed` describing it with `"Status": "TIMED_OUT"`, which the
//! resume Lambda reads as the child's timeout (`NestedError::TimedOut`, as natively). A
//! top-level execution that times out ends with `States.Timeout` on Step Functions and
//! `Outcome::TimedOut` (`RunError::TimedOut`) natively.
//!
//! # Callbacks
//!
//! A `wait_for_callback!` is a Task on `arn:aws:states:::lambda:invoke.waitForTaskToken`
//! whose payload carries `$$.Task.Token` (the request's `token`). The step handler runs
//! the macro's closure with a [`CallbackToken`](crate::CallbackToken) wrapping it, and
//! the state waits until the token is completed: whoever got it calls Step Functions'
//! `SendTaskSuccess` / `SendTaskFailure` / `SendTaskHeartbeat`, as [`TaskCompletion`]
//! describes (the native [`Runtime::complete`](crate::Runtime::complete) does not know
//! these tokens). The output of `SendTaskSuccess` goes to `$.callback_result`; its
//! failure, `States.Timeout`, `States.HeartbeatTimeout`, and a send that failed
//! (`Workflow.CallbackNotSent`) are caught into `$.callback_error`; either way the
//! Lambda `N: resume` gives the code the value, decoded as the type it is bound with, or
//! the same [`CallbackError`](crate::CallbackError) as natively (`Failed` named as the
//! `SendTaskFailure` error, `TimedOut`, `HeartbeatTimedOut`, `NotSent`).
//!
//! The callback's `timeout` and `heartbeat` are the workflow's own expressions, which
//! may read its locals: the step that reaches the callback evaluates them, and its
//! answer carries them (`callback`, in whole seconds rounded up for the Task's
//! `TimeoutSecondsPath` and `HeartbeatSecondsPath`, and as durations for the errors).
//! Step Functions cannot check the value's type as `Runtime::complete` does: a
//! `SendTaskSuccess` output that does not decode fails the execution at `N: resume`
//! with `Workflow.Fault`.
//!
//! # The execution document
//!
//! An execution's input is `{"input": <the workflow's input>}` (a child also gets the
//! execution id its parent chose as `id`, with the `ticket` that lets it take that id,
//! and `AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID`). Between states the execution's
//! JSON is the step handler's last answer (see [`StepHandler`]): the serialized state
//! enum travels in it, so the Lambda keeps nothing; with a signing key it is signed, and
//! the handler checks every document it gets back (see *The step handler* below).
//!
//! # The step handler
//!
//! [`StepHandler`] answers the Lambda Task states.
//!
//! ## Protocol
//!
//! Request (the Lambda event, built by the Task state's `Parameters`):
//!
//! ```json
//! {"workflow": "Name", "at": "<the Task state's name>", "execution": "<$$.Execution.Id>",
//!  "document": <the execution's JSON: {"input": …} at `Start`, else the last answer>,
//!  "token": "<$$.Task.Token>"}                          // a callback's Task only
//! ```
//!
//! Answer (it becomes the execution's JSON):
//!
//! ```json
//! {"workflow": "Name", "fingerprint": "<u64 as a string>", "execution": "<id>",
//!  "batches": 0, "state": <the state enum>, "next": "<state to go to>",
//!  "wait_seconds": 10,                                  // for a Wait
//!  "children": [{"workflow": "…", "input": …, "id": "…", "ticket": "…"}], // for a child/Parallel/Map
//!  "retries": 1,                // a `call_nested!`'s batch run again: the attempt count
//!  "callback": {"timeout_seconds": 3600, "heartbeat_seconds": 60,  // entering a callback
//!               "timeout": {"secs": 3600, "nanos": 0}, "heartbeat": {…}},
//!  "output": …,                                         // for Succeed
//!  "error": {"name": "Workflow.PollTimedOut", "cause": "<the error as JSON>"}, // for Fail
//!  "clock": 1700000000000000,                           // virtual clock only
//!  "signature": "<hex HMAC-SHA-256>"}                   // with a signing key only
//! ```
//!
//! A child Task, Parallel or Map adds its result as `children_result` (`{"output": …}`,
//! or a list of them) or its failure as `children_error` (`{"Error", "Cause"}`, the
//! `Cause` being the `startExecution.sync:2` description of the failed child, whose
//! `Input.id` says which child it was; a child that timed out is described with
//! `"Status": "TIMED_OUT"`); the resume Lambda decodes them. When the code retries the
//! batch (a `call_nested!` with a retry policy), the resume Lambda answers the same
//! `state`, the same calls as the next batch (new ids), `wait_seconds` (the delay,
//! rounded up), `retries` (read back into the attempt count when the new batch is
//! decoded) and `next` = the node's `N: retry` Wait.
//!
//! A task or poll with a policy adds, in the Lambda that its `Catch` leads to, the
//! error Step Functions caught as `caught` (`{"Error", "Cause"}`); the call is not made
//! again, the error is its result.
//!
//! A callback's Task adds `callback_result` (the `SendTaskSuccess` output) or
//! `callback_error` (`{"Error", "Cause"}`). Its own Lambda (the one that sends the
//! token) answers `{"workflow", "execution", "sent": true}`, which `.waitForTaskToken`
//! ignores, or the error `Workflow.CallbackNotSent`.
//!
//! Bad requests are answered with a [`StepError`], whose [`name`](StepError::name)
//! (`Workflow.InvalidRequest`, `Workflow.UnknownWorkflow`, …) a `Catch` can match. A
//! call that its policy retries is answered with [`StepError::Task`], named as the
//! call's error, which the Task state's `Retry` matches.
//! Fingerprints are strings because JavaScript numbers (and so the JSON of some
//! interpreters) cannot hold every `u64`.
//!
//! ## What the handler checks
//!
//! The handler keeps nothing between invocations, and anyone allowed to invoke its
//! Lambda can send it any request; it trusts none of it. In order:
//!
//! 1. **Size.** A request over [`request_limit`](StepHandler::request_limit) (the
//!    payload limit plus [`REQUEST_ENVELOPE`] for `workflow`, `at` and `execution`) is
//!    refused before it is parsed, with [`StepError::PayloadTooLarge`]; so is an answer
//!    over the [payload limit](StepHandlerBuilder::payload_limit) (256 KiB by default, as
//!    natively and on Step Functions).
//! 2. **Shape.** The request is the JSON above with an `execution`
//!    (`Workflow.InvalidRequest`), of a registered workflow (`Workflow.UnknownWorkflow`),
//!    at one of its Lambda states (`Workflow.InvalidRequest`).
//! 3. **The execution id** is `$$.Execution.Id` (the request's `execution`), never a
//!    field of the execution's input: an `"id"` in a top-level input is ignored. A child
//!    execution takes the native id its parent chose (`{parent}/{batch}.{index}`), which
//!    its parent's answer put in the child's input (`id`), only with a valid `ticket`
//!    beside it: an HMAC of the child's workflow, id and input under the signing key,
//!    which a top-level start cannot make. An id with `/` that did not come that way is
//!    refused (`Workflow.InvalidRequest`), so a top-level execution never takes a
//!    child's id. Without a signing key there are no tickets, and every execution's id,
//!    a child's too, is its `$$.Execution.Id` (on Step Functions an ARN, without `/`).
//!    Step Functions' execution *name* (`$$.Execution.Name`) cannot carry the native id
//!    instead: names are at most 80 characters without `/`, while a child's id holds
//!    its parent's whole id, and a top-level start chooses its own name.
//! 4. **The signature** (with a key): every document but the start's must carry the
//!    signature the handler's answer gave it (`Workflow.InvalidState` if it is missing or
//!    does not match). See *Signed states* below.
//! 5. **The state belongs at `at`** (with or without a key): the document is this
//!    workflow's with this definition's fingerprint (`Workflow.IncompatibleState`), its
//!    `next` names the node of `at` (the answer's `next` is the node's state or its
//!    `N: retry` Wait, and the Lambda `at` comes after it), and its state enum variant
//!    resumes at that node: after the task or wait `N` for the Lambda `N` or
//!    `N: resume`, waiting in `N` for a task with a policy, a poll's attempt or a batch
//!    of children (`Workflow::resumes_at`, generated by the macro from the same IR as
//!    the step function). Anything else is `Workflow.InvalidState`: the start's state
//!    sent to a later Lambda, a later state sent to an earlier one, a final state sent
//!    to skip the code in between. This holds for every workflow without special
//!    cases, since both sides come from the graph.
//!
//! A panic anywhere in a step (the workflow's code, or a `Deserialize` of its types)
//! answers that request with `Workflow.Panic`; the handler goes on serving.
//!
//! ## Signed states
//!
//! With [`signing_key`](StepHandlerBuilder::signing_key), every answer carries
//! `signature`: an HMAC-SHA-256, under the key, of the execution's `$$.Execution.Id`
//! and of every field of the answer (`workflow`, `fingerprint`, `execution`, `state`,
//! `batches`, `children` with their ids and tickets, `retries`, `wait_seconds`, `next`,
//! `clock`, …), in a canonical JSON form that survives Step Functions' rewriting (keys
//! sorted, `1.0` and `1` alike). A request whose document was changed, made up, or
//! answered for another execution is refused before any of it is used, compared in
//! constant time. So someone who may invoke the Lambda, but does not have the key,
//! cannot skip a step (a payment) with a made-up result, rewind or advance the virtual
//! clock, give a child an id, or move a document to another execution.
//!
//! What a signature cannot cover:
//!
//! - **What Step Functions adds between two Lambda states**: a child's result
//!   (`children_result`) or failure (`children_error`), a caught error (`caught`), and
//!   a callback's value or error (`callback_result`, `callback_error`: whoever has the
//!   task token can complete it with any value, as natively whoever has the token).
//!   They are not the handler's answer, so a forger who may invoke the Lambda can still
//!   make up a child's output or a call's error at a resume or `…: caught` state. A
//!   child's own answers are signed by the same key, but its Succeed state outputs only
//!   `output` (the execution's output is the workflow's output), and `.sync:2` hands
//!   the parent only that; checking it would take the child's signed document as its
//!   output. Only Step Functions should invoke the Lambda: give `lambda:InvokeFunction`
//!   to the state machines' role alone.
//! - **Replays**: a genuine earlier document of the same execution, sent again to the
//!   state it was answered for, is valid; that is also what Step Functions does when it
//!   retries a Lambda after a transient error (tasks are at-least-once, as natively).
//! - **A start**: the execution's input comes from whoever starts the execution, and
//!   is not signed. Whoever may invoke the Lambda can also send a `Start` request of
//!   their own: it runs the workflow from an input of their choosing, as starting an
//!   execution would, under an id without `/`; the documents it answers are then
//!   genuine, and the code between them runs as written.
//! - **Changing the key** fails the executions in flight at their next Lambda state
//!   (`Workflow.InvalidState`); change it when none are.
//!
//! Without a key, checks 1–3 and 5 still hold, but a document is whatever the request
//! says: anyone who may invoke the Lambda can make up a state of the right variant.
//!
//! # Waits
//!
//! ASL waits in whole seconds: `wait_seconds` is the native duration rounded **up**
//! (250 ms → 1 s, 0 → 0). A `poll_until!` with a sub-second `every` therefore polls less
//! often on Step Functions than natively; its `timeout` is still measured on the clock.
//!
//! # Substitutions
//!
//! Lambda states call `${StepHandlerArn}`; a child workflow named `X` is started as
//! `${XArn}` (non-alphanumeric characters removed from the name). Fill them with
//! CloudFormation/SAM `DefinitionSubstitutions`; [`StateMachine::placeholders`] lists them.

mod callback;
mod document;
mod emit;
mod error;
pub(crate) mod handler;
mod serve;
mod sign;
mod step;

use std::collections::HashSet;
use std::time::Duration;

use crate::graph::{NodeKind, StateGraph};

pub use callback::TaskCompletion;
pub use document::StepClock;
pub(crate) use emit::emit;
pub use emit::{asl, asl_for, AslExt, StateMachine};
pub use error::{StepError, StepPayload};
pub use handler::{StepHandler, StepHandlerBuilder, REQUEST_ENVELOPE, STATE_KEY_VAR};
pub use serve::serve_json_lines;

/// The longest state name Step Functions accepts.
pub const MAX_STATE_NAME: usize = 80;

/// A child Task's `TimeoutSeconds` without a `#[timeout]`: a week. Step Functions would
/// wait up to a year without one; a stuck child should fail its parent sooner. (It also
/// stays below the 2³¹ ms a JavaScript timer can hold, which local interpreters rely on.)
pub const CHILD_TIMEOUT_SECONDS: u64 = 7 * 24 * 3600;

/// The error of the Fail state a Choice defaults to.
pub const NO_ROUTE_ERROR: &str = "Workflow.NoRoute";

/// The suffix of the Lambda a task or poll goes to when its call's error was caught.
const CAUGHT: &str = ": caught";

/// The suffix of the Fail state a node's Choice defaults to.
const NO_ROUTE: &str = ": no route";

/// The suffix of the Wait a `call_nested!` with a retry policy waits in before its
/// batch runs again.
const RETRY: &str = ": retry";

/// The placeholder of the step handler's Lambda ARN ([`Target::Lambda`]).
pub const STEP_HANDLER_PLACEHOLDER: &str = "${StepHandlerArn}";

/// The placeholder of the step handler's activity ARN ([`Target::Activity`]).
pub const STEP_HANDLER_ACTIVITY_PLACEHOLDER: &str = "${StepHandlerActivityArn}";

/// The `HeartbeatSeconds` of an activity's step Task: a worker that stopped
/// heartbeating (it crashed, hangs, or lost its connection) is given up on after this
/// long, and the step is run again (`States.HeartbeatTimeout` is retried). The interval
/// is also in the task's input, as `heartbeat_seconds`, for the worker, which heartbeats
/// three times as often. Step Tasks have no `TimeoutSeconds` on an activity: the step
/// handler enforces a call's timeout, and a task that waits for a free worker has not
/// timed out.
pub const ACTIVITY_HEARTBEAT_SECONDS: u64 = 60;

/// Where the emitted Task states have the step handler run a step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Target {
    /// A Lambda function (`arn:aws:states:::lambda:invoke`, the function's ARN in
    /// [`STEP_HANDLER_PLACEHOLDER`]), which runs the step handler per invocation
    /// (`examples/step_handler.rs --lambda`).
    #[default]
    Lambda,
    /// A Step Functions *activity* ([`STEP_HANDLER_ACTIVITY_PLACEHOLDER`]): any process
    /// that polls it (`GetActivityTask`) runs the step and answers with
    /// `SendTaskSuccess` / `SendTaskFailure`, heartbeating while it runs (at least every
    /// [`ACTIVITY_HEARTBEAT_SECONDS`]); for programs on ECS, EC2 or one's own servers.
    /// `workflow::sfn::ActivityWorker` is such a worker.
    Activity,
}

impl Target {
    /// The placeholder of the step handler's ARN in definitions for this target.
    pub fn placeholder(self) -> &'static str {
        match self {
            Target::Lambda => STEP_HANDLER_PLACEHOLDER,
            Target::Activity => STEP_HANDLER_ACTIVITY_PLACEHOLDER,
        }
    }
}

/// Whether `answer`, the step handler's answer at a callback's Task, says the token was
/// sent: `.waitForTaskToken` (or an activity worker) must then leave the task open for
/// whoever got the token, instead of completing it with the answer.
pub fn is_token_sent(answer: &serde_json::Value) -> bool {
    answer.get("sent") == Some(&serde_json::Value::Bool(true))
}

/// Why a poll gave up: the suffix of its Fail state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GiveUp {
    TimedOut,
    TooManyErrors,
    AttemptsExhausted,
}

impl GiveUp {
    const ALL: [GiveUp; 3] = [
        GiveUp::TimedOut,
        GiveUp::TooManyErrors,
        GiveUp::AttemptsExhausted,
    ];

    fn suffix(self) -> &'static str {
        match self {
            GiveUp::TimedOut => ": timed out",
            GiveUp::TooManyErrors => ": too many errors",
            GiveUp::AttemptsExhausted => ": attempts exhausted",
        }
    }
}

/// The ASL states of one graph node.
#[derive(Debug, Default)]
pub(crate) struct NodeStates {
    /// The state named after the node.
    pub(crate) main: Option<String>,
    /// The Lambda that runs the code after a wait or a batch of children.
    pub(crate) resume: Option<String>,
    /// The Choice after this node's Lambda.
    pub(crate) next: Option<String>,
    /// The Fail state its Choice (`next`, or a poll's `check`) defaults to.
    pub(crate) no_route: Option<String>,
    /// The Lambda a task or poll with a policy goes to when Step Functions caught its
    /// call's error (retries exhausted, or its timeout): it hands the error to the code.
    pub(crate) caught: Option<String>,
    /// A poll's attempt Lambda and the Choice after it.
    pub(crate) attempt: Option<String>,
    pub(crate) check: Option<String>,
    /// A poll's Fail states, in [`GiveUp::ALL`] order.
    pub(crate) give_up: Vec<String>,
    /// The Task of each child inside a Parallel (one per branch) or Map (one).
    pub(crate) children: Vec<String>,
    /// The Wait before a `call_nested!` with a retry policy runs its batch again.
    pub(crate) retry: Option<String>,
}

/// Every state name of a workflow's definition, shared by the emitter and the step
/// handler so that the `next` the handler answers is always a state of the definition.
#[derive(Debug)]
pub(crate) struct Layout {
    pub(crate) start: String,
    pub(crate) start_next: String,
    pub(crate) start_no_route: String,
    pub(crate) nodes: Vec<NodeStates>,
    pub(crate) succeed: usize,
    pub(crate) fail: Option<usize>,
}

impl Layout {
    pub(crate) fn of(graph: &StateGraph) -> Layout {
        let mut names = Names::default();
        let start = names.alloc("Start", "");
        let mut nodes: Vec<NodeStates> =
            graph.nodes.iter().map(|_| NodeStates::default()).collect();
        // Node names first, so that they are kept exactly; sub-states may then be cut.
        for (i, node) in graph.nodes.iter().enumerate() {
            nodes[i].main = Some(names.alloc(node.name, ""));
        }
        let start_next = names.alloc("Start", ": next");
        let start_no_route = names.alloc("Start", NO_ROUTE);
        for (i, node) in graph.nodes.iter().enumerate() {
            let n = &mut nodes[i];
            match &node.kind {
                NodeKind::Task => {
                    if node.policy.is_some() {
                        n.caught = Some(names.alloc(node.name, CAUGHT));
                    }
                    n.next = Some(names.alloc(node.name, ": next"));
                }
                NodeKind::Wait | NodeKind::Child { .. } | NodeKind::Callback { .. } => {
                    n.resume = Some(names.alloc(node.name, ": resume"));
                    n.next = Some(names.alloc(node.name, ": next"));
                }
                NodeKind::Poll => {
                    n.attempt = Some(names.alloc(node.name, ": attempt"));
                    if node.policy.is_some() {
                        n.caught = Some(names.alloc(node.name, CAUGHT));
                    }
                    n.check = Some(names.alloc(node.name, ": check"));
                    n.give_up = GiveUp::ALL
                        .iter()
                        .map(|g| names.alloc(node.name, g.suffix()))
                        .collect();
                }
                NodeKind::Parallel { workflows } => {
                    n.children = (1..=workflows.len())
                        .map(|b| names.alloc(node.name, &format!(": #{b}")))
                        .collect();
                    n.resume = Some(names.alloc(node.name, ": resume"));
                    n.next = Some(names.alloc(node.name, ": next"));
                }
                NodeKind::Map { .. } => {
                    n.children = vec![names.alloc(node.name, ": child")];
                    n.resume = Some(names.alloc(node.name, ": resume"));
                    n.next = Some(names.alloc(node.name, ": next"));
                }
                NodeKind::Succeed | NodeKind::Fail => {}
            }
            if !matches!(node.kind, NodeKind::Succeed | NodeKind::Fail) {
                n.no_route = Some(names.alloc(node.name, NO_ROUTE));
            }
            let is_children = matches!(
                node.kind,
                NodeKind::Child { .. } | NodeKind::Parallel { .. } | NodeKind::Map { .. }
            );
            if is_children && node.policy().retry.is_some() {
                n.retry = Some(names.alloc(node.name, RETRY));
            }
        }
        let find = |kind: fn(&NodeKind) -> bool| graph.nodes.iter().position(|n| kind(&n.kind));
        Layout {
            start,
            start_next,
            start_no_route,
            nodes,
            // A graph always ends in `Succeed`; index 0 only guards a hand-made graph.
            succeed: find(|k| matches!(k, NodeKind::Succeed)).unwrap_or(0),
            fail: find(|k| matches!(k, NodeKind::Fail)),
        }
    }

    /// The state named after node `i` (`Succeed`, `Fail`, a task's Lambda, a Wait, …).
    pub(crate) fn main(&self, i: usize) -> &str {
        self.nodes
            .get(i)
            .and_then(|n| n.main.as_deref())
            .unwrap_or(&self.start)
    }

    pub(crate) fn succeed(&self) -> &str {
        self.main(self.succeed)
    }

    pub(crate) fn fail(&self) -> Option<&str> {
        self.fail.map(|f| self.main(f))
    }

    /// Where a Lambda that ran the code after `from` (or from the start) may route: the
    /// main states of the node's edges, in the graph's order. A map over no items starts
    /// no children and the handler runs on past it (natively it enters no state either),
    /// so a map's own edges are routes too.
    pub(crate) fn targets(&self, graph: &StateGraph, from: Option<usize>) -> Vec<String> {
        let edges = match from {
            None => graph.start,
            Some(k) => graph.nodes[k].edges,
        };
        let mut out: Vec<String> = Vec::new();
        let mut todo: Vec<usize> = edges.iter().rev().map(|e| e.to).collect();
        let mut seen = HashSet::new();
        while let Some(to) = todo.pop() {
            if !seen.insert(to) {
                continue;
            }
            out.push(self.main(to).to_owned());
            if let Some(node) = graph.nodes.get(to) {
                if matches!(node.kind, NodeKind::Map { .. }) {
                    todo.extend(node.edges.iter().rev().map(|e| e.to));
                }
            }
        }
        out
    }
}

/// Allocates unique state names of at most [`MAX_STATE_NAME`] characters.
#[derive(Default)]
struct Names {
    used: HashSet<String>,
}

impl Names {
    fn alloc(&mut self, base: &str, suffix: &str) -> String {
        let mut n = 1;
        loop {
            let tag = if n == 1 {
                String::new()
            } else {
                format!(" ~{n}")
            };
            let room = MAX_STATE_NAME.saturating_sub(suffix.chars().count() + tag.chars().count());
            let base: String = if base.chars().count() > room {
                // Cut the node's name, not the suffix that says what the state does.
                base.chars()
                    .take(room.saturating_sub(1))
                    .chain(['…'])
                    .collect()
            } else {
                base.to_owned()
            };
            let name = format!("{base}{tag}{suffix}");
            if self.used.insert(name.clone()) {
                return name;
            }
            n += 1;
        }
    }
}

/// Whole seconds for ASL, rounded up so that a wait is never shorter than asked.
pub(crate) fn whole_seconds(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// The substitution placeholder of child workflow `name`'s state machine ARN.
pub fn child_placeholder(name: &str) -> String {
    let clean: String = name.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    format!("${{{clean}Arn}}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_short() {
        let mut n = Names::default();
        let long = "x".repeat(80);
        let a = n.alloc(&long, ": too many errors");
        let b = n.alloc(&long, ": too many errors");
        assert_ne!(a, b);
        assert!(a.chars().count() <= 80 && b.chars().count() <= 80);
        assert!(a.ends_with(": too many errors") && b.ends_with(": too many errors"));
        assert_eq!(n.alloc("Start", ""), "Start");
        assert_eq!(n.alloc("Start", ""), "Start ~2");
    }

    #[test]
    fn placeholders_are_alphanumeric() {
        assert_eq!(
            child_placeholder("NestingPattern.v2"),
            "${NestingPatternv2Arn}"
        );
    }
}
