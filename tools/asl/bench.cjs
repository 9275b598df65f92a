// The peer of the benchmark (`cargo run --release --example bench`, workload 4): the
// emitted ASL of the benchmark's workflows run by aws-local-stepfunctions, with Lambda
// Tasks answered by in-process JavaScript handlers.
//
// Usage: node bench.cjs <plan.json> <results.json>
// plan: {"machines": {"<workflow>": <definition>},
//        "record": [{"workflow", "input", "id"}],
//        "runs": [{"label", "workflow", "input", "n", "inflight", "repeat"}]}
// results: [{"label", "seconds": [one figure per repeat]}]
//
// 1. Record: each `record` execution runs once with its Lambda Tasks answered by the Rust
//    step handler over JSON lines (requests on stdout, answers on stdin, as in run.cjs);
//    the answers are kept, in order, per workflow. Then stdout is closed.
// 2. Replay, timed: each run executes its workflow `n` times, at most `inflight` at once,
//    `repeat` times. Lambda Tasks are answered in-process with the recorded answers (a
//    fresh object per call, parsed from the recorded JSON as a Lambda answer would be;
//    each answer carries its position so that the next call knows which answer is next),
//    Wait states are overridden to 0 and child executions (`startExecution.sync:2`) run
//    the child's machine in-process. One StateMachine instance per workflow is built once
//    and reused by every execution.
'use strict';

const fs = require('fs');
const { StateMachine, collectStates, placeholders, stepHandlerOverStdio } = require('./common.cjs');

const [planFile, resultsFile] = process.argv.slice(2);
const plan = JSON.parse(fs.readFileSync(planFile, 'utf8'));

const LAMBDA = 'arn:aws:states:::lambda:invoke';
const CHILD = 'arn:aws:states:::states:startExecution.sync:2';

const byPlaceholder = placeholders(plan.machines);

// One reused StateMachine per workflow; `lambda(workflow)` answers its Lambda Tasks.
function makeRunner(lambda) {
  const machines = {};
  const overrides = {};
  async function run(workflow, input, id) {
    const execution = machines[workflow].run(input, {
      overrides: overrides[workflow],
      context: { Execution: { Id: id, Input: input } },
    });
    return execution.result;
  }
  for (const [workflow, definition] of Object.entries(plan.machines)) {
    const taskResourceLocalHandlers = {};
    const waitTimeOverrides = {};
    for (const [name, state] of collectStates(definition.States, [])) {
      if (state.Type === 'Wait') waitTimeOverrides[name] = 0;
      if (state.Type !== 'Task') continue;
      if (state.Resource === LAMBDA) {
        const answer = lambda(workflow);
        taskResourceLocalHandlers[name] = async (params) => ({ Payload: await answer(params.Payload), StatusCode: 200 });
      } else if (state.Resource === CHILD) {
        taskResourceLocalHandlers[name] = async (params) => {
          const output = await run(byPlaceholder[params.StateMachineArn], params.Input, params.Input.id);
          return { Status: 'SUCCEEDED', Output: output, Input: params.Input };
        };
      }
    }
    machines[workflow] = new StateMachine(definition, { validationOptions: { checkArn: true, checkPaths: true } });
    overrides[workflow] = { taskResourceLocalHandlers, waitTimeOverrides };
  }
  return run;
}

// --- 1. Record, with the Rust step handler over JSON lines ----------------------------
const step = stepHandlerOverStdio();
const recorded = new Map(); // execution id -> answers, in order
function rustStep() {
  return () => (payload) => {
    return step(payload).then((answer) => {
      if (!recorded.has(payload.execution)) recorded.set(payload.execution, []);
      recorded.get(payload.execution).push(answer);
      return answer;
    });
  };
}

// --- 2. Replay --------------------------------------------------------------------------
function replayStep(answers) {
  return (workflow) => {
    const texts = (answers[workflow] ?? []).map((a, k) => JSON.stringify({ ...a, __step: k }));
    return async (payload) => {
      const prev = payload.document.__step;
      const k = prev === undefined ? 0 : prev + 1;
      if (k >= texts.length) throw new Error(`${workflow}: no recorded answer #${k}`);
      return JSON.parse(texts[k]);
    };
  };
}

async function pool(n, inflight, task) {
  let next = 0;
  const workers = [];
  for (let w = 0; w < Math.min(inflight, n); w++) {
    workers.push((async () => {
      while (next < n) {
        const i = next++;
        await task(i);
      }
    })());
  }
  await Promise.all(workers);
}

(async () => {
  const record = makeRunner(rustStep());
  const answers = {};
  for (const r of plan.record) {
    await record(r.workflow, { input: r.input }, r.id);
    answers[r.workflow] = recorded.get(r.id);
  }
  process.stdout.end();
  step.close();

  const replay = makeRunner(replayStep(answers));
  const results = [];
  for (const run of plan.runs) {
    const seconds = [];
    for (let rep = 0; rep < run.repeat; rep++) {
      const t0 = process.hrtime.bigint();
      await pool(run.n, run.inflight, (i) => replay(run.workflow, { input: run.input }, `${run.label}-${rep}-${i}`));
      seconds.push(Number(process.hrtime.bigint() - t0) / 1e9);
    }
    results.push({ label: run.label, seconds });
  }
  fs.writeFileSync(resultsFile, JSON.stringify(results));
  process.exit(0);
})().catch((e) => {
  process.stderr.write(`bench.cjs: ${e.stack ?? e}\n`);
  process.exit(1);
});
