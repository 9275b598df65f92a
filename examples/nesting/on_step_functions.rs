//! `cargo run --example nesting -- sfn --endpoint-url URL`: the same workflows on AWS
//! Step Functions (or an engine with its API, such as LocalStack: see
//! `tools/localstack/nesting.sh`), their steps run by this process as an activity
//! worker.
//!
//! It deploys the activity and the two state machines (children first; a second run
//! updates them in place), starts `main_flow` on a batch that needs approval, and
//! prints its typed output and the states it went through. The job service and its
//! approver run in this process, as natively; the approver's answer completes the
//! callback with `SendTaskSuccess`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use workflow::asl::StepHandler;
use workflow::sfn::{ActivityWorker, DeployOptions, StepFunctions};
use workflow::Workflow;

use super::job_server;
use super::workflows::{main_flow, Batch, JobService};

/// Runs the example's workflows on Step Functions.
#[derive(Debug, Parser)]
#[command(name = "nesting sfn")]
pub struct Args {
    /// The Step Functions endpoint (LocalStack: `http://127.0.0.1:4566`); the AWS
    /// default without it.
    #[arg(long, env = "AWS_ENDPOINT_URL_SFN", value_name = "URL")]
    endpoint_url: Option<String>,

    /// The region (else the environment's or the profile's).
    #[arg(long)]
    region: Option<String>,

    /// The IAM role the state machines run as (any role ARN on LocalStack).
    #[arg(
        long,
        env = "WORKFLOW_ROLE_ARN",
        default_value = "arn:aws:iam::000000000000:role/workflow-example"
    )]
    role_arn: String,

    /// Put before every deployed name.
    #[arg(long, default_value = "nesting-example-")]
    prefix: String,

    /// How many jobs the batch runs in parallel; more than `--approve-over` wait for
    /// approval.
    #[arg(long, default_value_t = 10, value_name = "N")]
    parallel: u32,

    /// Batches with more parallel jobs than this wait for approval before they start.
    #[arg(long, default_value_t = 8, value_name = "N")]
    approve_over: usize,
}

pub async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let server = job_server::start(job_server::Config {
        delay: Duration::from_millis(300),
        fail_every: 0,
        refuse_every: 0,
    })
    .await?;
    println!("Job service listening on {}", server.base_url);
    // Step Functions waits in whole seconds: poll every second, for a minute at most.
    let jobs = JobService::new(server.base_url.clone())
        .polling(Duration::from_secs(1), Duration::from_secs(60))
        .approvals(args.approve_over, Duration::from_secs(300));
    let handler = Arc::new(
        StepHandler::builder()
            .register(main_flow) // and run_job, which it calls
            .dependency(jobs)
            .build()?,
    );

    let sfn = StepFunctions::connect(args.endpoint_url.as_deref(), args.region.as_deref()).await;
    server.answer_approvals_on(&sfn);
    tokio::spawn(super::approver(server.base_url.clone(), false));

    let options = DeployOptions::new(&args.role_arn).prefix(&args.prefix);
    let deployment = sfn.deploy(handler.graphs(), &options).await?;
    println!("Deployed (children first):");
    println!("  activity {}", deployment.activity_arn());
    for (workflow, arn) in deployment.state_machines() {
        let how = match deployment.created().contains(workflow) {
            true => "created",
            false => "updated",
        };
        println!("  {workflow}: {arn} ({how})");
    }
    let worker = ActivityWorker::new(&sfn, deployment.activity_arn(), Arc::clone(&handler))
        .concurrency(16)
        .spawn();

    let started = Instant::now();
    let batch = Batch::numbered("sfn", args.parallel);
    let execution = sfn.start::<main_flow>(&deployment, &batch).await?;
    println!("\nStarted {} execution {execution}", main_flow::NAME);
    let result = sfn.result::<main_flow>(&execution).await?;
    println!("It ended after {:.2?}.", started.elapsed());
    let states = sfn.entered_states(&execution).await?;
    println!("States entered ({}): {}", states.len(), states.join(" → "));
    let report = worker.shutdown().await?;
    println!(
        "The activity worker answered {} steps ({} with an error) and sent {} callback token(s).",
        report.succeeded + report.failed,
        report.failed,
        report.tokens_sent
    );
    match result {
        Ok(summary) => {
            super::print_summary(&summary);
            Ok(())
        }
        Err(e) => Err(format!("the execution did not succeed: {e}").into()),
    }
}
