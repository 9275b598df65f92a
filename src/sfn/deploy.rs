//! Creating or updating the activity and the state machines.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::Value;
use workflow_runtime::asl::{
    child_placeholder, StateMachine, Target, STEP_HANDLER_ACTIVITY_PLACEHOLDER,
};
use workflow_runtime::{NodeKind, StateGraph};

use super::{SfnError, StepFunctions};

/// How [`StepFunctions::deploy`] names and creates what it deploys.
#[derive(Clone, Debug)]
pub struct DeployOptions {
    role_arn: String,
    prefix: String,
    activity: String,
    tracing: bool,
}

impl DeployOptions {
    /// The IAM role the state machines run as (it must be allowed to start and stop
    /// executions of the children's state machines and to use the activity).
    pub fn new(role_arn: impl Into<String>) -> Self {
        DeployOptions {
            role_arn: role_arn.into(),
            prefix: String::new(),
            activity: "workflow-step-handler".to_owned(),
            tracing: false,
        }
    }

    /// Put before every state machine's and the activity's name, to keep several
    /// deployments apart in one account (`staging-`, …).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The activity's name (after the prefix); `workflow-step-handler` by default.
    pub fn activity(mut self, name: impl Into<String>) -> Self {
        self.activity = name.into();
        self
    }

    /// Turns AWS X-Ray tracing on for the state machines (off by default; a redeploy
    /// sets it as given). Step Functions then starts a trace for each execution and
    /// passes it to the Lambda step handler, whose spans join it with
    /// `workflow::telemetry::lambda_span` (feature `otel`).
    pub fn tracing(mut self, enabled: bool) -> Self {
        self.tracing = enabled;
        self
    }

    fn tracing_configuration(&self) -> aws_sdk_sfn::types::TracingConfiguration {
        aws_sdk_sfn::types::TracingConfiguration::builder()
            .enabled(self.tracing)
            .build()
    }
}

/// What [`StepFunctions::deploy`] deployed: the activity's ARN and each workflow's
/// state machine ARN.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Deployment {
    activity_arn: String,
    state_machines: BTreeMap<String, String>,
    created: Vec<String>,
}

impl Deployment {
    /// The activity the state machines' Task states hand their steps to.
    pub fn activity_arn(&self) -> &str {
        &self.activity_arn
    }

    /// The state machine ARN of the workflow named `workflow`.
    pub fn state_machine_arn(&self, workflow: &str) -> Option<&str> {
        self.state_machines.get(workflow).map(String::as_str)
    }

    /// Every workflow with its state machine ARN, sorted by workflow.
    pub fn state_machines(&self) -> &BTreeMap<String, String> {
        &self.state_machines
    }

    /// The workflows whose state machine this deploy created (the others were updated).
    pub fn created(&self) -> &[String] {
        &self.created
    }
}

/// The state machine name of workflow `name`: Step Functions allows letters, digits,
/// `-` and `_`, at most 80 of them; anything else becomes `-`.
pub fn state_machine_name(prefix: &str, name: &str) -> String {
    format!("{prefix}{name}")
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' => c,
            _ => '-',
        })
        .take(80)
        .collect()
}

/// The workflows a graph starts as children.
fn children(graph: &StateGraph) -> Vec<&'static str> {
    let mut out = Vec::new();
    for node in graph.nodes {
        match &node.kind {
            NodeKind::Child { workflow } | NodeKind::Map { workflow, .. } => out.push(*workflow),
            NodeKind::Parallel { workflows } => out.extend(workflows.iter().copied()),
            _ => {}
        }
    }
    out
}

/// The graphs in deployment order, children before the workflows that call them, and
/// the workflows that are part of a cycle (a workflow that calls itself, directly or
/// not), whose state machines must exist before any of them can be defined.
fn order(
    graphs: &[&'static StateGraph],
) -> Result<(Vec<&'static StateGraph>, HashSet<&'static str>), SfnError> {
    let by_name: HashMap<&str, &'static StateGraph> =
        graphs.iter().map(|g| (g.workflow, *g)).collect();
    let mut done: HashSet<&str> = HashSet::new();
    let mut on_path: Vec<&str> = Vec::new();
    let mut cyclic: HashSet<&'static str> = HashSet::new();
    let mut out = Vec::new();
    // Iterative depth-first post-order: (graph, whether its children were pushed).
    for root in graphs {
        let mut stack = vec![(*root, false)];
        while let Some((g, expanded)) = stack.pop() {
            if done.contains(g.workflow) {
                continue;
            }
            if expanded {
                on_path.retain(|n| *n != g.workflow);
                done.insert(g.workflow);
                out.push(g);
                continue;
            }
            on_path.push(g.workflow);
            stack.push((g, true));
            for child in children(g) {
                let Some(c) = by_name.get(child) else {
                    return Err(SfnError::MissingChild {
                        parent: g.workflow.to_owned(),
                        child: child.to_owned(),
                    });
                };
                if on_path.contains(&child) {
                    let from = on_path.iter().position(|n| *n == child).unwrap_or(0);
                    cyclic.extend(on_path[from..].iter().map(|n| by_name[n].workflow));
                } else if !done.contains(child) {
                    stack.push((c, false));
                }
            }
        }
    }
    Ok((out, cyclic))
}

/// Replaces every string of `value` that is a key of `with` by its value.
fn substitute(value: &mut Value, with: &HashMap<String, String>) {
    match value {
        Value::String(s) => {
            if let Some(arn) = with.get(s.as_str()) {
                *s = arn.clone();
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| substitute(v, with)),
        Value::Object(map) => map.values_mut().for_each(|v| substitute(v, with)),
        _ => {}
    }
}

impl StepFunctions {
    /// Creates or updates the activity and a state machine for every workflow of
    /// `graphs` (for instance [`Catalog::graphs`](crate::Catalog::graphs) or
    /// [`StepHandler::graphs`](crate::asl::StepHandler::graphs)), with the definitions
    /// for [`Target::Activity`], children before the workflows that call them, every
    /// substitution filled in. Idempotent: a state machine of that name is updated in
    /// place. Every child a workflow calls must be among `graphs`.
    pub async fn deploy(
        &self,
        graphs: impl IntoIterator<Item = &'static StateGraph>,
        options: &DeployOptions,
    ) -> Result<Deployment, SfnError> {
        let graphs: Vec<&'static StateGraph> = graphs.into_iter().collect();
        let (ordered, cyclic) = order(&graphs)?;

        let activity_name = state_machine_name(&options.prefix, &options.activity);
        let activity_arn = self
            .client
            .create_activity()
            .name(&activity_name)
            .send()
            .await
            .map_err(|e| SfnError::service("CreateActivity", e))?
            .activity_arn()
            .to_owned();

        let mut existing: HashMap<String, String> = HashMap::new();
        let mut pages = self.client.list_state_machines().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| SfnError::service("ListStateMachines", e))?;
            for m in page.state_machines() {
                existing.insert(m.name().to_owned(), m.state_machine_arn().to_owned());
            }
        }

        let mut deployment = Deployment {
            activity_arn: activity_arn.clone(),
            ..Deployment::default()
        };
        let mut substitutions =
            HashMap::from([(STEP_HANDLER_ACTIVITY_PLACEHOLDER.to_owned(), activity_arn)]);
        // A workflow in a cycle is called before it can be defined: it starts as a
        // one-state machine, defined for real in its turn below.
        for g in &ordered {
            if cyclic.contains(g.workflow) && !existing.contains_key(g.workflow) {
                let name = state_machine_name(&options.prefix, g.workflow);
                let stub =
                    r#"{"StartAt":"Deploying","States":{"Deploying":{"Type":"Pass","End":true}}}"#;
                let arn = self.create(&name, stub, options).await?;
                existing.insert(name, arn);
                deployment.created.push(g.workflow.to_owned());
            }
        }
        for g in &ordered {
            let name = state_machine_name(&options.prefix, g.workflow);
            if let Some(arn) = existing.get(&name) {
                substitutions.insert(child_placeholder(g.workflow), arn.clone());
            }
        }
        for g in ordered {
            let name = state_machine_name(&options.prefix, g.workflow);
            let mut definition = StateMachine::of(g, Target::Activity).definition().clone();
            substitute(&mut definition, &substitutions);
            let definition = definition.to_string();
            let arn = match existing.get(&name) {
                Some(arn) => {
                    self.client
                        .update_state_machine()
                        .state_machine_arn(arn)
                        .definition(&definition)
                        .role_arn(&options.role_arn)
                        .tracing_configuration(options.tracing_configuration())
                        .send()
                        .await
                        .map_err(|e| SfnError::service("UpdateStateMachine", e))?;
                    arn.clone()
                }
                None => {
                    deployment.created.push(g.workflow.to_owned());
                    self.create(&name, &definition, options).await?
                }
            };
            substitutions.insert(child_placeholder(g.workflow), arn.clone());
            deployment.state_machines.insert(g.workflow.to_owned(), arn);
        }
        Ok(deployment)
    }

    async fn create(
        &self,
        name: &str,
        definition: &str,
        options: &DeployOptions,
    ) -> Result<String, SfnError> {
        Ok(self
            .client
            .create_state_machine()
            .name(name)
            .definition(definition)
            .role_arn(&options.role_arn)
            .tracing_configuration(options.tracing_configuration())
            .send()
            .await
            .map_err(|e| SfnError::service("CreateStateMachine", e))?
            .state_machine_arn()
            .to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keep_what_step_functions_allows() {
        assert_eq!(
            state_machine_name("", "NestingPattern.v2"),
            "NestingPattern-v2"
        );
        assert_eq!(state_machine_name("dev-", "a_b"), "dev-a_b");
        assert_eq!(state_machine_name("", &"x".repeat(100)).len(), 80);
    }

    #[test]
    fn substitution_replaces_whole_strings_only() {
        let mut v =
            serde_json::json!({"a": "${XArn}", "b": ["${XArn} and more", {"c": "${XArn}"}]});
        let with = HashMap::from([("${XArn}".to_owned(), "arn:x".to_owned())]);
        substitute(&mut v, &with);
        assert_eq!(
            v,
            serde_json::json!({"a": "arn:x", "b": ["${XArn} and more", {"c": "arn:x"}]})
        );
    }
}
