// Runs emitted ASL on aws-local-stepfunctions, with every Lambda Task answered by the
// Rust step handler over JSON lines (requests on stdout, answers on stdin), and every
// `startExecution.sync:2` Task answered by running the child's emitted ASL the same way.
//
// Usage: node run.cjs <plan.json> <results.json>
// plan: {"machines": {"<workflow>": <definition>}, "runs": [{"workflow", "input", "id"}]}
// results: [{"id", "workflow", "states": [entered state names], "output"? , "error"?: {name, cause}}]
'use strict';

const fs = require('fs');
const { StateMachine, collectStates, placeholders, stepHandlerOverStdio } = require('./common.cjs');

const [planFile, resultsFile] = process.argv.slice(2);
const plan = JSON.parse(fs.readFileSync(planFile, 'utf8'));

const step = stepHandlerOverStdio();
const byPlaceholder = placeholders(plan.machines);

// `timeoutMs`: a parent Task's `TimeoutSeconds`, after which the interpreter fails that
// Task with States.Timeout; the child is then aborted too, as the native runtime cancels
// the children of a batch past its deadline (so it makes no more calls meanwhile).
async function execute(workflow, input, executionId, timeoutMs) {
  const definition = plan.machines[workflow];
  if (!definition) throw Object.assign(new Error(`no machine for ${workflow}`), { name: 'Test.NoMachine' });
  const taskResourceLocalHandlers = {};
  const waitTimeOverrides = {};
  const retryIntervalOverrides = {};
  for (const [name, state] of collectStates(definition.States, [])) {
    if (state.Type === 'Wait') waitTimeOverrides[name] = 0;
    // Retries at once too (the native run waits in virtual time).
    if (state.Retry) retryIntervalOverrides[name] = 0;
    if (state.Type !== 'Task') continue;
    if (state.Resource === 'arn:aws:states:::lambda:invoke') {
      // What Lambda's invoke integration returns: the function's answer under Payload.
      taskResourceLocalHandlers[name] = async (params) => ({ Payload: await step(params.Payload), StatusCode: 200 });
    } else if (state.Resource === 'arn:aws:states:::states:startExecution.sync:2') {
      taskResourceLocalHandlers[name] = async (params) => {
        const child = byPlaceholder[params.StateMachineArn];
        // The interpreter's own default for a Task without TimeoutSeconds is 60 s.
        const run = await execute(child, params.Input, params.Input.id, (state.TimeoutSeconds ?? 60) * 1000);
        if (run.timedOut) {
          // A child past its execution's TimeoutSeconds: `.sync:2` fails with
          // States.TaskFailed and describes the child as TIMED_OUT.
          const e = new Error(JSON.stringify({ Status: 'TIMED_OUT', Input: params.Input }));
          e.name = 'States.TaskFailed';
          throw e;
        }
        if (run.error) {
          // What `.sync:2` fails with: States.TaskFailed, the child's description as cause.
          const e = new Error(JSON.stringify({ Status: 'FAILED', Error: run.error.name, Cause: run.error.cause, Input: params.Input }));
          e.name = 'States.TaskFailed';
          throw e;
        }
        return { Status: 'SUCCEEDED', Output: run.output, Input: params.Input };
      };
    }
  }
  const machine = new StateMachine(definition, { validationOptions: { checkArn: true, checkPaths: true } });
  const execution = machine.run(input, {
    overrides: { taskResourceLocalHandlers, waitTimeOverrides, retryIntervalOverrides },
    context: { Execution: { Id: executionId, Input: input } },
  });
  // A little after the Task's own timer, so that the Task fails with States.Timeout and not
  // with this abort.
  const stop = timeoutMs === undefined ? undefined : setTimeout(() => execution.abort(), timeoutMs + 100);
  const states = [];
  const logging = (async () => {
    for await (const event of execution.eventLogs) {
      // Only this execution's own states: a branch or an item's states carry their
      // parent state, and children run as executions of their own.
      if (event.type === 'StateEntered') states.push(event.state.name);
    }
  })();
  let outcome;
  try {
    outcome = { output: await execution.result };
  } catch (e) {
    // The interpreter wraps what ended the execution (a Fail state's error, or a Task's
    // error nothing caught) in an ExecutionError.
    const cause = e.name === 'ExecutionError' && e.cause ? e.cause : e;
    outcome = { error: { name: cause.name, cause: cause.message } };
    if (e.name === 'ExecutionTimeoutError') {
      // The definition's TimeoutSeconds: Step Functions ends the execution TIMED_OUT
      // with the error States.Timeout.
      outcome = { error: { name: 'States.Timeout', cause: e.message }, timedOut: true };
    }
  }
  clearTimeout(stop);
  await logging.catch(() => {});
  return { workflow, states, ...outcome };
}

(async () => {
  const results = [];
  for (const run of plan.runs) {
    const r = await execute(run.workflow, { input: run.input }, run.id);
    results.push({ id: run.id, ...r });
  }
  fs.writeFileSync(resultsFile, JSON.stringify(results));
  process.stdout.end();
  process.exit(0);
})().catch((e) => {
  process.stderr.write(`run.cjs: ${e.stack ?? e}\n`);
  process.exit(1);
});
