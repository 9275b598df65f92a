// Runs emitted ASL on aws-local-stepfunctions, with every Lambda Task answered by the
// Rust step handler over JSON lines (requests on stdout, answers on stdin), and every
// `startExecution.sync:2` Task answered by running the child's emitted ASL the same way.
//
// Usage: node run.cjs <plan.json> <results.json>
// plan: {"machines": {"<workflow>": <definition>}, "runs": [{"workflow", "input", "id"}]}
// results: [{"id", "workflow", "states": [entered state names], "output"? , "error"?: {name, cause}}]
'use strict';

// aws-local-stepfunctions@3 targets Node >= 22; Node 20 lacks only this.
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function withResolvers() {
    let resolve;
    let reject;
    const promise = new Promise((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { promise, resolve, reject };
  };
}

const fs = require('fs');
const readline = require('readline');
const { StateMachine } = require('aws-local-stepfunctions');

const [planFile, resultsFile] = process.argv.slice(2);
const plan = JSON.parse(fs.readFileSync(planFile, 'utf8'));

// --- The step handler, over JSON lines ---------------------------------------------------
let nextId = 1;
const pending = new Map();
const lines = readline.createInterface({ input: process.stdin });
lines.on('line', (line) => {
  const answer = JSON.parse(line);
  const waiter = pending.get(answer.id);
  if (!waiter) return;
  pending.delete(answer.id);
  if (answer.error) {
    const e = new Error(answer.error.message);
    e.name = answer.error.name;
    waiter.reject(e);
  } else {
    waiter.resolve(answer.ok);
  }
});
function step(payload) {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject });
    process.stdout.write(JSON.stringify({ id, ...payload }) + '\n');
  });
}

// --- Which workflow a `${…Arn}` placeholder names ---------------------------------------
const byPlaceholder = {};
for (const name of Object.keys(plan.machines)) {
  byPlaceholder['${' + name.replace(/[^A-Za-z0-9]/g, '') + 'Arn}'] = name;
}

function collectStates(states, out) {
  for (const [name, state] of Object.entries(states)) {
    out.push([name, state]);
    for (const b of state.Branches ?? []) collectStates(b.States, out);
    if (state.ItemProcessor) collectStates(state.ItemProcessor.States, out);
    if (state.Iterator) collectStates(state.Iterator.States, out);
  }
  return out;
}

async function execute(workflow, input, executionId) {
  const definition = plan.machines[workflow];
  if (!definition) throw Object.assign(new Error(`no machine for ${workflow}`), { name: 'Test.NoMachine' });
  const taskResourceLocalHandlers = {};
  const waitTimeOverrides = {};
  for (const [name, state] of collectStates(definition.States, [])) {
    if (state.Type === 'Wait') waitTimeOverrides[name] = 0;
    if (state.Type !== 'Task') continue;
    if (state.Resource === 'arn:aws:states:::lambda:invoke') {
      // What Lambda's invoke integration returns: the function's answer under Payload.
      taskResourceLocalHandlers[name] = async (params) => ({ Payload: await step(params.Payload), StatusCode: 200 });
    } else if (state.Resource === 'arn:aws:states:::states:startExecution.sync:2') {
      taskResourceLocalHandlers[name] = async (params) => {
        const child = byPlaceholder[params.StateMachineArn];
        const run = await execute(child, params.Input, params.Input.id);
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
    overrides: { taskResourceLocalHandlers, waitTimeOverrides },
    context: { Execution: { Id: executionId, Input: input } },
  });
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
  }
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
