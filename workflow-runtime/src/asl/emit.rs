//! The ASL definition of a workflow, generated from its state graph.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::error::StepError;
use super::{
    child_placeholder, whole_seconds, Layout, NodeStates, Target, ACTIVITY_HEARTBEAT_SECONDS,
    CHILD_TIMEOUT_SECONDS, NO_ROUTE_ERROR, STEP_HANDLER_ACTIVITY_PLACEHOLDER,
    STEP_HANDLER_PLACEHOLDER,
};
use crate::context::STATES_TIMEOUT;
use crate::graph::{NodeKind, StateGraph};
use crate::retry::{Jitter, Policy, RetryPolicy, TaskTimeout};
use crate::workflow::Workflow;

/// A workflow's Amazon States Language definition.
#[derive(Clone, Debug, PartialEq)]
pub struct StateMachine {
    workflow: &'static str,
    definition: Value,
    tokens: BTreeMap<String, String>,
    placeholders: Vec<String>,
}

impl StateMachine {
    /// The ASL definition of the workflow whose state graph is `graph`, for `target`
    /// ([`asl_for`] from a type, this from a [`Catalog`](crate::Catalog)'s graphs).
    pub fn of(graph: &'static StateGraph, target: Target) -> StateMachine {
        emit(graph, target)
    }

    /// The workflow's name.
    pub fn workflow(&self) -> &'static str {
        self.workflow
    }

    /// The definition as JSON (keys sorted, so the text is deterministic).
    pub fn definition(&self) -> &Value {
        &self.definition
    }

    /// The definition as compact JSON text.
    pub fn to_json(&self) -> String {
        self.definition.to_string()
    }

    /// The definition as indented JSON text, for files and reviews.
    pub fn to_pretty(&self) -> String {
        // Serializing a `Value` cannot fail: its keys are strings.
        serde_json::to_string_pretty(&self.definition).unwrap_or_default()
    }

    /// The `${…}` substitution placeholders the definition uses: the step handler's
    /// (its Lambda's or its activity's ARN, see [`Target`]) first, then each child
    /// workflow's state machine ARN.
    pub fn placeholders(&self) -> &[String] {
        &self.placeholders
    }

    /// The graph node an entered state stands for in the native history (see the
    /// module docs): a node name, `Succeed` or `Fail`; `None` for routing states.
    pub fn token(&self, state: &str) -> Option<&str> {
        self.tokens.get(state).map(String::as_str)
    }

    /// Every state that stands for a node, with its node (for tools comparing runs).
    pub fn tokens(&self) -> &BTreeMap<String, String> {
        &self.tokens
    }
}

/// The ASL definition of workflow `W`, its steps run by the step handler as a Lambda
/// function ([`Target::Lambda`]).
pub fn asl<W: Workflow>() -> StateMachine {
    emit(W::graph(), Target::Lambda)
}

/// The ASL definition of workflow `W`, its steps run where `target` says.
pub fn asl_for<W: Workflow>(target: Target) -> StateMachine {
    emit(W::graph(), target)
}

/// `W::asl()` for every workflow.
pub trait AslExt: Workflow {
    /// This workflow's ASL definition; see [`asl`](fn@asl).
    fn asl() -> StateMachine {
        asl::<Self>()
    }

    /// This workflow's ASL definition for `target`; see [`asl_for`].
    fn asl_for(target: Target) -> StateMachine {
        asl_for::<Self>(target)
    }
}

impl<W: Workflow> AslExt for W {}

pub(crate) fn emit(graph: &'static StateGraph, target: Target) -> StateMachine {
    let layout = Layout::of(graph);
    let wf = graph.workflow;
    let mut states = Map::new();
    let mut tokens = BTreeMap::new();
    let mut placeholders = vec![target.placeholder().to_owned()];
    let mut placeholder = |workflow: &str| {
        let p = child_placeholder(workflow);
        if !placeholders.contains(&p) {
            placeholders.push(p.clone());
        }
        p
    };

    states.insert(
        layout.start.clone(),
        step(
            target,
            wf,
            &layout.start,
            &layout.start_next,
            "Starts the workflow from {\"input\": …} and runs it to its first yield point.",
        ),
    );
    route(
        &mut states,
        &layout.start_next,
        layout.targets(graph, None),
        &layout.start_no_route,
    );

    for (i, node) in graph.nodes.iter().enumerate() {
        let n = &layout.nodes[i];
        let Some(main) = n.main.clone() else { continue };
        let after = |k: usize| layout.targets(graph, Some(k));
        let no_route = n.no_route.as_deref().unwrap_or_default();
        match &node.kind {
            NodeKind::Task => {
                let next = n.next.clone().unwrap_or_default();
                match &n.caught {
                    None => {
                        let comment = format!(
                            "Entered once the call `{}` returned; runs the code after it up to the next yield point.",
                            node.name
                        );
                        states.insert(main.clone(), step(target, wf, &main, &next, &comment));
                    }
                    Some(caught) => {
                        let comment = format!(
                            "Makes the call `{}` (retried and timed out as its policy says), then runs the code after it up to the next yield point.",
                            node.name
                        );
                        let mut task = step(target, wf, &main, &next, &comment);
                        with_policy(&mut task, &node.policy(), caught);
                        states.insert(main.clone(), task);
                        let comment = format!(
                            "The call `{}` failed after its retries: hands the error to the code after it, which runs up to the next yield point.",
                            node.name
                        );
                        states.insert(caught.clone(), step(target, wf, caught, &next, &comment));
                    }
                }
                route(&mut states, &next, after(i), no_route);
                tokens.insert(main, node.name.to_owned());
            }
            NodeKind::Wait => {
                let resume = n.resume.clone().unwrap_or_default();
                let next = n.next.clone().unwrap_or_default();
                states.insert(main.clone(), wait(&resume));
                let comment = "Runs the code after the wait up to the next yield point.";
                states.insert(resume.clone(), step(target, wf, &resume, &next, comment));
                route(&mut states, &next, after(i), no_route);
                tokens.insert(main, node.name.to_owned());
            }
            NodeKind::Poll => {
                let attempt = n.attempt.clone().unwrap_or_default();
                let check = n.check.clone().unwrap_or_default();
                states.insert(main.clone(), wait(&attempt));
                let comment = "One call of the poll; if ready, also the code after the poll up to the next yield point.";
                let mut task = step(target, wf, &attempt, &check, comment);
                if let Some(caught) = &n.caught {
                    with_policy(&mut task, &node.policy(), caught);
                    let comment = "The poll's call failed after its retries: counts the error, and if the poll is done, runs the code after it up to the next yield point.";
                    states.insert(caught.clone(), step(target, wf, caught, &check, comment));
                }
                states.insert(attempt.clone(), task);
                let mut targets = vec![main.clone()];
                targets.extend(after(i));
                targets.extend(n.give_up.iter().cloned());
                route(&mut states, &check, targets, no_route);
                for g in &n.give_up {
                    states.insert(g.clone(), fail());
                    tokens.insert(g.clone(), "Fail".to_owned());
                }
                tokens.insert(attempt, node.name.to_owned());
                tokens.insert(main, node.name.to_owned());
            }
            NodeKind::Child { workflow } => {
                let resume = n.resume.clone().unwrap_or_default();
                let arn = placeholder(workflow);
                let mut task = child_task(&arn, "$.children[0]", &node.policy());
                task["ResultPath"] = json!("$.children_result");
                task["Next"] = json!(resume);
                task["Catch"] = catch(&resume);
                states.insert(main.clone(), task);
                children_tail(&mut states, target, wf, &resume, n, after(i));
                retry_wait(&mut states, n, &main);
                tokens.insert(main, node.name.to_owned());
            }
            NodeKind::Parallel { workflows } => {
                let resume = n.resume.clone().unwrap_or_default();
                let policy = node.policy();
                let branches: Vec<Value> = workflows
                    .iter()
                    .zip(&n.children)
                    .enumerate()
                    .map(|(b, (w, name))| {
                        let mut task =
                            child_task(&placeholder(w), &format!("$.children[{b}]"), &policy);
                        task["End"] = json!(true);
                        json!({"StartAt": name, "States": {name.as_str(): task}})
                    })
                    .collect();
                states.insert(
                    main.clone(),
                    json!({
                        "Type": "Parallel",
                        "Comment": "The children of a `call_nested!(parallel(…))`; the first failure stops the others.",
                        "Branches": branches,
                        "ResultPath": "$.children_result",
                        "Catch": catch(&resume),
                        "Next": resume,
                    }),
                );
                children_tail(&mut states, target, wf, &resume, n, after(i));
                retry_wait(&mut states, n, &main);
                tokens.insert(main, node.name.to_owned());
            }
            NodeKind::Map {
                workflow,
                max_concurrency,
            } => {
                let resume = n.resume.clone().unwrap_or_default();
                let child = n.children.first().cloned().unwrap_or_default();
                let mut task = child_task(&placeholder(workflow), "$", &node.policy());
                task["End"] = json!(true);
                states.insert(
                    main.clone(),
                    json!({
                        "Type": "Map",
                        "Comment": "The children of a `call_nested!(for … => …)`; the first failure stops the others.",
                        "ItemsPath": "$.children",
                        // 0 is "unbounded" in ASL, as `None` is natively.
                        "MaxConcurrency": max_concurrency.unwrap_or(0),
                        "ItemProcessor": {
                            "ProcessorConfig": {"Mode": "INLINE"},
                            "StartAt": child,
                            "States": {child.as_str(): task},
                        },
                        "ResultPath": "$.children_result",
                        "Catch": catch(&resume),
                        "Next": resume,
                    }),
                );
                children_tail(&mut states, target, wf, &resume, n, after(i));
                retry_wait(&mut states, n, &main);
                tokens.insert(main, node.name.to_owned());
            }
            NodeKind::Callback { heartbeat, .. } => {
                let resume = n.resume.clone().unwrap_or_default();
                let next = n.next.clone().unwrap_or_default();
                states.insert(
                    main.clone(),
                    callback_task(target, wf, &main, &resume, *heartbeat),
                );
                let comment = "Hands the callback's value (or why there is none) to the workflow and runs the code after it up to the next yield point.";
                states.insert(resume.clone(), step(target, wf, &resume, &next, comment));
                route(&mut states, &next, after(i), no_route);
                tokens.insert(main, node.name.to_owned());
            }
            NodeKind::Succeed => {
                states.insert(
                    main.clone(),
                    json!({"Type": "Succeed", "OutputPath": "$.output"}),
                );
                tokens.insert(main, "Succeed".to_owned());
            }
            NodeKind::Fail => {
                states.insert(main.clone(), fail());
                tokens.insert(main, "Fail".to_owned());
            }
        }
    }

    prune(&mut states, &layout.start);
    if target == Target::Activity {
        heartbeats(&mut states);
    }
    tokens.retain(|state, _| states.contains_key(state));

    // No top-level `QueryLanguage`: JSONPath is the default, and statelint@1 (which only
    // knows JSONPath) refuses the field.
    let mut definition = json!({
        "Comment": format!(
            "Workflow `{wf}`, generated from its state graph by the `workflow` crate; do not edit. Execution input: {{\"input\": …}}."
        ),
        "StartAt": layout.start,
        "States": states,
    });
    // `#[workflow(timeout = …)]`: the execution times out (`States.Timeout`, status
    // `TIMED_OUT`) as natively (`Outcome::TimedOut`).
    if let Some(t) = graph.timeout {
        definition["TimeoutSeconds"] = json!(whole_seconds(t()).max(1));
    }
    StateMachine {
        workflow: wf,
        definition,
        tokens,
        placeholders,
    }
}

/// Drops the states no transition reaches from `start`: the states of an end the code
/// cannot reach (a `Fail` of a workflow whose code never fails, a `Succeed` after a
/// `loop` without `break`), which Step Functions' validators refuse.
fn prune(states: &mut Map<String, Value>, start: &str) {
    let mut reached = std::collections::HashSet::new();
    let mut todo = vec![start.to_owned()];
    while let Some(name) = todo.pop() {
        let Some(state) = states.get(&name) else {
            continue;
        };
        if !reached.insert(name) {
            continue;
        }
        let nested = |key: &str| {
            state[key]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r["Next"].as_str())
        };
        todo.extend(
            [&state["Next"], &state["Default"]]
                .into_iter()
                .filter_map(Value::as_str)
                .chain(nested("Choices"))
                .chain(nested("Catch"))
                .map(str::to_owned),
        );
    }
    states.retain(|name, _| reached.contains(name));
}

/// A Task state that runs one step in the step handler. The whole execution document
/// goes in (`document`), the handler's answer becomes the document: a Lambda's through
/// `OutputPath` (`lambda:invoke` wraps it in `Payload`), an activity's as it is (the
/// worker's `SendTaskSuccess` output is the state's result).
fn step(target: Target, workflow: &str, at: &str, next: &str, comment: &str) -> Value {
    let request = json!({
        "workflow": workflow,
        "at": at,
        "execution.$": "$$.Execution.Id",
        "document.$": "$",
    });
    match target {
        Target::Lambda => json!({
            "Type": "Task",
            "Comment": comment,
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": STEP_HANDLER_PLACEHOLDER, "Payload": request},
            "OutputPath": "$.Payload",
            "Retry": [lambda_retrier()],
            "Next": next,
        }),
        Target::Activity => json!({
            "Type": "Task",
            "Comment": comment,
            "Resource": STEP_HANDLER_ACTIVITY_PLACEHOLDER,
            "Parameters": request,
            "HeartbeatSeconds": ACTIVITY_HEARTBEAT_SECONDS,
            "Retry": [activity_retrier()],
            "Next": next,
        }),
    }
}

/// Lambda's own transient failures; the step is re-run, as after a crash natively
/// (tasks are at-least-once).
fn lambda_retrier() -> Value {
    json!({
        "ErrorEquals": [
            "Lambda.ServiceException",
            "Lambda.AWSLambdaException",
            "Lambda.SdkClientException",
            "Lambda.TooManyRequestsException",
        ],
        "IntervalSeconds": 1,
        "MaxAttempts": 3,
        "BackoffRate": 2,
    })
}

/// A worker that stopped sending heartbeats (it crashed, or lost its connection) is
/// given up on after [`ACTIVITY_HEARTBEAT_SECONDS`]; the step runs again on another
/// worker, as natively after a crash (tasks are at-least-once). `States.Timeout` too:
/// a step Task on an activity has no `TimeoutSeconds`, so that error is only ever a
/// heartbeat's timeout as LocalStack names it (it loses a task now and then).
fn activity_retrier() -> Value {
    json!({
        "ErrorEquals": ["States.HeartbeatTimeout", "States.Timeout"],
        "IntervalSeconds": 1,
        "MaxAttempts": 3,
        "BackoffRate": 2,
    })
}

/// An activity's step Tasks have no `TimeoutSeconds`: the step handler enforces a
/// call's timeout itself, and a worker that died or hangs stops heartbeating
/// ([`ACTIVITY_HEARTBEAT_SECONDS`], retried as `States.HeartbeatTimeout`). A Lambda's
/// backstop would be wrong here: an activity's timeout runs from when the task is
/// scheduled, so a task that waited for a free worker would count as a call that timed
/// out. The worker reads the heartbeat interval from the task's input
/// (`heartbeat_seconds`) and sends a heartbeat three times as often.
fn heartbeats(states: &mut Map<String, Value>) {
    for state in states.values_mut() {
        if state.get("HeartbeatSeconds").is_none() {
            continue;
        }
        if let Some(task) = state.as_object_mut() {
            task.remove("TimeoutSeconds");
        }
        state["Parameters"]["heartbeat_seconds"] = json!(ACTIVITY_HEARTBEAT_SECONDS);
    }
}

/// The Task state of a `wait_for_callback!`: `.waitForTaskToken` invokes the step handler
/// with `$$.Task.Token`, which it hands to the closure that sends it, then waits for
/// `SendTaskSuccess` (its output goes to `$.callback_result`), `SendTaskFailure`, a
/// missed heartbeat or the timeout (their errors go to `$.callback_error`); either way
/// the document goes on to `resume`, which gives the workflow its value or its
/// `CallbackError`. The timeout and the heartbeat interval are the workflow's own
/// values, evaluated by the step that reached the callback: its answer carries them
/// (`callback`), whence the `…SecondsPath` fields.
fn callback_task(target: Target, workflow: &str, at: &str, resume: &str, heartbeat: bool) -> Value {
    let mut request = json!({
        "workflow": workflow,
        "at": at,
        "execution.$": "$$.Execution.Id",
        "document.$": "$",
    });
    let mut task = match target {
        Target::Lambda => {
            request["token.$"] = json!("$$.Task.Token");
            json!({
                "Comment": "Sends the callback's token (the step handler runs the closure of `wait_for_callback!` with $$.Task.Token), then waits until it is completed, failed or times out.",
                "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                "Parameters": {"FunctionName": STEP_HANDLER_PLACEHOLDER, "Payload": request},
                "Retry": [lambda_retrier()],
            })
        }
        // An activity task has a token of its own: the worker hands it to the step
        // handler, which sends it, and leaves the task open for whoever completes it.
        Target::Activity => json!({
            "Comment": "Sends the callback's token (the activity worker runs the closure of `wait_for_callback!` with its task's token), then waits until it is completed, failed or times out.",
            "Resource": STEP_HANDLER_ACTIVITY_PLACEHOLDER,
            "Parameters": request,
        }),
    };
    task["Type"] = json!("Task");
    task["TimeoutSecondsPath"] = json!("$.callback.timeout_seconds");
    task["ResultPath"] = json!("$.callback_result");
    task["Catch"] =
        json!([{"ErrorEquals": ["States.ALL"], "ResultPath": "$.callback_error", "Next": resume}]);
    task["Next"] = json!(resume);
    if heartbeat {
        task["HeartbeatSecondsPath"] = json!("$.callback.heartbeat_seconds");
    }
    task
}

/// Step Functions' side of a call's policy, on the Task state `task` that makes the call:
///
/// - `Retry`: the policy's retrier after the Lambda one. The step handler answers with
///   an error named as the call's error whenever the policy would retry it (it cannot
///   know how often Step Functions already did, so `MaxAttempts` decides when to stop);
/// - `TimeoutSeconds`: a backstop above the call's timeout, which the handler enforces
///   exactly (`Workflow.Timeout`); Step Functions' own `States.Timeout` only fires for an
///   invocation that hangs, and is handed to the code as the same timeout error;
/// - `Catch`: what the retrier gave up on (and a `States.Timeout`) goes to the `caught`
///   Lambda, which gives the error to the code as the call's result.
///
/// A policy for every error (`on` empty) retries and catches `States.ALL`, after a
/// retrier that never retries the faults (`Workflow.Panic`, `Workflow.Fault`, the
/// handler's refusals): natively a policy for every error retries the call's errors, not
/// a panic or a fault. The `caught` Lambda re-raises a fault it is handed, so the
/// execution fails with it, as natively.
fn with_policy(task: &mut Value, policy: &Policy, caught: &str) {
    let timeout = policy.timeout;
    // `States.Timeout` only where there is a state timeout that `call_with_timeout` maps.
    let names = |retry: &RetryPolicy| -> Vec<String> {
        if retry.on.is_empty() {
            // Every error: `States.ALL` must stand alone (and last).
            return vec!["States.ALL".to_owned()];
        }
        let mut names: Vec<String> = retry.on.iter().map(|n| (*n).to_owned()).collect();
        if timeout.is_some() && retry.matches(TaskTimeout::NAME) {
            names.push(STATES_TIMEOUT.to_owned());
        }
        names
    };
    if let Some(retry) = &policy.retry {
        let mut retrier = json!({
            "ErrorEquals": names(retry),
            "IntervalSeconds": whole_seconds(retry.interval).max(1),
            "MaxAttempts": retry.max_attempts,
            "BackoffRate": number(retry.backoff_rate),
            "JitterStrategy": match retry.jitter {
                Jitter::None => "NONE",
                Jitter::Full => "FULL",
            },
        });
        if let Some(max) = retry.max_delay {
            retrier["MaxDelaySeconds"] = json!(whole_seconds(max).max(1));
        }
        if let Some(retriers) = task["Retry"].as_array_mut() {
            if retry.on.is_empty() {
                // The first retrier that matches an error decides; this one, never.
                retriers.push(json!({"ErrorEquals": StepError::OWN, "MaxAttempts": 0}));
            }
            retriers.push(retrier);
        }
    }
    if let Some(t) = timeout {
        task["TimeoutSeconds"] = json!(backstop_seconds(t));
    }
    let mut errors = match &policy.retry {
        Some(retry) => names(retry),
        None => Vec::new(),
    };
    if timeout.is_some()
        && !errors
            .iter()
            .any(|e| e == STATES_TIMEOUT || e == "States.ALL")
    {
        errors.push(STATES_TIMEOUT.to_owned());
    }
    if !errors.is_empty() {
        task["Catch"] = json!([{"ErrorEquals": errors, "ResultPath": "$.caught", "Next": caught}]);
    }
}

/// `2` rather than `2.0` for a whole number, as one writes ASL by hand.
fn number(x: f64) -> Value {
    if x.fract() == 0.0 && (0.0..=u32::MAX as f64).contains(&x) {
        json!(x as u32)
    } else {
        json!(x)
    }
}

/// A Task state's `TimeoutSeconds` for a call of timeout `t`: whole seconds, plus room for
/// the Lambda to start and for the code after the call (a tenth, at least 5 s).
pub(crate) fn backstop_seconds(t: Duration) -> u64 {
    let secs = whole_seconds(t);
    secs.saturating_add((secs / 10).max(5))
}

fn wait(next: &str) -> Value {
    json!({"Type": "Wait", "SecondsPath": "$.wait_seconds", "Next": next})
}

fn fail() -> Value {
    json!({"Type": "Fail", "ErrorPath": "$.error.name", "CausePath": "$.error.cause"})
}

/// A child failure (or timeout) is the parent's to handle: it goes to the resume
/// Lambda, which hands it to the Rust code as a `NestedError`.
fn catch(resume: &str) -> Value {
    json!([{"ErrorEquals": ["States.ALL"], "ResultPath": "$.children_error", "Next": resume}])
}

/// A nested execution: `call` is the path of the `{workflow, input, id, ticket}` it
/// runs (the ticket lets the child take the id; see the step handler).
///
/// Its `TimeoutSeconds` is the `call_nested!`'s `#[timeout]` (whole seconds, rounded up),
/// else [`CHILD_TIMEOUT_SECONDS`]. ASL has no `TimeoutSeconds` on a Parallel or Map state,
/// so a batch's timeout is on each of its child Tasks: the first to time out fails the
/// Parallel/Map, which stops the others, as natively the batch's deadline cancels them.
/// Children that all start together share the native deadline; a Map whose
/// `MaxConcurrency` holds some back gives each its own timeout from when it starts.
fn child_task(arn: &str, call: &str, policy: &Policy) -> Value {
    json!({
        "Type": "Task",
        "Resource": "arn:aws:states:::states:startExecution.sync:2",
        "Parameters": {
            "StateMachineArn": arn,
            "Input": {
                "input.$": format!("{call}.input"),
                "id.$": format!("{call}.id"),
                "ticket.$": format!("{call}.ticket"),
                "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID.$": "$$.Execution.Id",
            },
        },
        "TimeoutSeconds": policy
            .timeout
            .map_or(CHILD_TIMEOUT_SECONDS, |t| whole_seconds(t).max(1)),
        "ResultSelector": {"output.$": "$.Output"},
    })
}

fn children_tail(
    states: &mut Map<String, Value>,
    target: Target,
    wf: &str,
    resume: &str,
    n: &NodeStates,
    after: Vec<String>,
) {
    let next = n.next.as_deref().unwrap_or_default();
    // A retried batch goes back through `N: retry`; the rest is the code after the node.
    let targets: Vec<String> = n.retry.iter().cloned().chain(after).collect();
    let comment = "Hands the children's results to the workflow and runs the code after them up to the next yield point.";
    states.insert(resume.to_owned(), step(target, wf, resume, next, comment));
    route(
        states,
        next,
        targets,
        n.no_route.as_deref().unwrap_or_default(),
    );
}

/// The Choice `name` that routes on the step handler's `next` to `targets`, and the Fail
/// state `no_route` it defaults to: an answer the graph did not foresee is a named
/// error, never a dead end (`States.NoChoiceMatched`).
fn route(states: &mut Map<String, Value>, name: &str, targets: Vec<String>, no_route: &str) {
    let rules: Vec<Value> = targets
        .iter()
        .map(|t| json!({"Variable": "$.next", "StringEquals": t, "Next": t}))
        .collect();
    states.insert(
        name.to_owned(),
        json!({"Type": "Choice", "Choices": rules, "Default": no_route}),
    );
    states.insert(
        no_route.to_owned(),
        json!({
            "Type": "Fail",
            "Error": NO_ROUTE_ERROR,
            "Cause": format!("the step handler answered a `next` that `{name}` does not route to: the native run and this definition disagree"),
        }),
    );
}

/// A `call_nested!` with a retry policy: when the resume Lambda's code retries the
/// batch (`Step::Retry`), it answers the same state with a new batch and the delay, and
/// this Wait leads back to the node's child Task / Parallel / Map. Natively a retry
/// enters no state, so it stands for nothing; the batch it leads to is the node again.
fn retry_wait(states: &mut Map<String, Value>, n: &NodeStates, main: &str) {
    if let Some(retry) = &n.retry {
        states.insert(retry.clone(), wait(main));
    }
}
