// Runs emitted ASL on aws-local-stepfunctions, with every Lambda Task answered by the
// Rust step handler over JSON lines (requests on stdout, answers on stdin), and every
// `startExecution.sync:2` Task answered by running the child's emitted ASL the same way.
//
// aws-local-stepfunctions (v3) has no `.waitForTaskToken`, no `$$.Task.Token`, no
// heartbeats and no SendTask* API: this harness implements them from the ASL spec
// (see `waitForTaskToken` below). Its task tokens are `{api}#{random}`, where `{api}`
// is the URL of a local endpoint that takes SendTaskSuccess, SendTaskFailure and
// SendTaskHeartbeat as Step Functions does (a POST with `X-Amz-Target:
// AWSStepFunctions.<Action>` and the action's JSON body), so that whoever gets a token
// knows where to complete it.
//
// Usage: node run.cjs <plan.json> <results.json>
// plan: {"machines": {"<workflow>": <definition>}, "runs": [{"workflow", "input", "id"}]}
// results: [{"id", "workflow", "states": [entered state names], "output"? , "error"?: {name, cause}}]
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const { StateMachine, collectStates, placeholders, stepHandlerOverStdio } = require('./common.cjs');

const [planFile, resultsFile] = process.argv.slice(2);
const plan = JSON.parse(fs.readFileSync(planFile, 'utf8'));

const step = stepHandlerOverStdio();
const byPlaceholder = placeholders(plan.machines);

// --- Callbacks: task tokens and the SendTask* API. --------------------------------------

/** Tokens handed out and not settled yet: token → {resolve, reject, heartbeat()}. */
const tokens = new Map();
let api = '';

function stepFunctionsError(name, message) {
  const e = new Error(message);
  e.name = name;
  return e;
}

/** The SendTask* actions, as Step Functions answers them (errors as `{__type, message}`). */
const server = http.createServer((req, res) => {
  let body = '';
  req.on('data', (chunk) => { body += chunk; });
  req.on('end', () => {
    const answer = (status, value) => {
      res.writeHead(status, { 'Content-Type': 'application/x-amz-json-1.0' });
      res.end(JSON.stringify(value));
    };
    const action = String(req.headers['x-amz-target'] ?? '').replace('AWSStepFunctions.', '');
    let request;
    try {
      request = JSON.parse(body);
    } catch (e) {
      return answer(400, { __type: 'InvalidRequest', message: 'not JSON' });
    }
    const waiting = tokens.get(request.taskToken);
    if (!waiting) return answer(400, { __type: 'TaskDoesNotExist', message: 'no such task token' });
    switch (action) {
      case 'SendTaskSuccess': {
        let output;
        try {
          output = JSON.parse(request.output);
        } catch (e) {
          return answer(400, { __type: 'InvalidOutput', message: 'the output is not JSON' });
        }
        tokens.delete(request.taskToken);
        waiting.resolve(output);
        return answer(200, {});
      }
      case 'SendTaskFailure':
        tokens.delete(request.taskToken);
        waiting.reject(stepFunctionsError(request.error ?? '', request.cause ?? ''));
        return answer(200, {});
      case 'SendTaskHeartbeat':
        waiting.heartbeats += 1;
        return answer(200, {});
      default:
        return answer(400, { __type: 'UnknownOperation', message: action });
    }
  });
});

/** The value at a reference path (`$.a.b`) of `doc`. */
function at(path, doc) {
  return path.replace(/^\$\.?/, '').split('.').filter(Boolean).reduce((v, k) => v?.[k], doc);
}

/**
 * A `.waitForTaskToken` Task invoking the step handler: the token (`$$.Task.Token`, in
 * the Payload) is registered before the Lambda runs, so that a completion made while it
 * runs is kept; the Lambda's answer is not the state's result (an error of the Lambda
 * fails the state); the result is the output of SendTaskSuccess, or the error of
 * SendTaskFailure. Time is compressed as it is for Wait states (and for the native run,
 * under virtual time): a token that nothing completed by the time its Lambda returns has
 * waited its whole timeout, and fails with `States.HeartbeatTimeout` if the state has a
 * heartbeat interval shorter than its timeout (nothing sent a heartbeat), else with
 * `States.Timeout`.
 *
 * The state's `TimeoutSecondsPath` and `HeartbeatSecondsPath` are read here, from the
 * state's input (the Payload's `document`, which is `$`), as the spec says, and taken
 * out of the definition the interpreter gets: it would read them from the Task's
 * Parameters instead.
 */
function waitForTaskToken(state) {
  const timeoutPath = state.TimeoutSecondsPath;
  const heartbeatPath = state.HeartbeatSecondsPath;
  delete state.TimeoutSecondsPath;
  delete state.HeartbeatSecondsPath;
  return async (params) => {
    const token = params.Payload.token;
    let settle;
    const settled = new Promise((resolve, reject) => {
      settle = { resolve, reject };
    });
    const waiting = { resolve: (v) => settle.resolve(v), reject: (e) => settle.reject(e), heartbeats: 0, done: false };
    tokens.set(token, waiting);
    settled.then(() => { waiting.done = true; }, () => { waiting.done = true; });
    try {
      await step(params.Payload);
    } catch (e) {
      tokens.delete(token);
      throw e;
    }
    // Let a completion already on its way in (an HTTP request the Lambda made) land.
    await new Promise((resolve) => setImmediate(resolve));
    if (!waiting.done) {
      tokens.delete(token);
      const input = params.Payload.document;
      const timeout = timeoutPath === undefined ? state.TimeoutSeconds : at(timeoutPath, input);
      const heartbeat = heartbeatPath === undefined ? state.HeartbeatSeconds : at(heartbeatPath, input);
      if (heartbeat !== undefined && (timeout === undefined || heartbeat < timeout)) {
        throw stepFunctionsError('States.HeartbeatTimeout', 'no heartbeat within HeartbeatSeconds');
      }
      throw stepFunctionsError('States.Timeout', 'the task token was not completed within TimeoutSeconds');
    }
    return settled;
  };
}

// `timeoutMs`: a parent Task's `TimeoutSeconds`, after which the interpreter fails that
// Task with States.Timeout; the child is then aborted too, as the native runtime cancels
// the children of a batch past its deadline (so it makes no more calls meanwhile).
async function execute(workflow, input, executionId, timeoutMs) {
  // A copy: the harness takes what it implements itself out of the definition.
  const definition = structuredClone(plan.machines[workflow]);
  if (!definition) throw Object.assign(new Error(`no machine for ${workflow}`), { name: 'Test.NoMachine' });
  const taskResourceLocalHandlers = {};
  const waitTimeOverrides = {};
  const retryIntervalOverrides = {};
  for (const [name, state] of collectStates(definition.States, [])) {
    if (state.Type === 'Wait') waitTimeOverrides[name] = 0;
    // Retries at once too (the native run waits in virtual time).
    if (state.Retry) retryIntervalOverrides[name] = 0;
    if (state.Type !== 'Task') continue;
    if (state.Resource === 'arn:aws:states:::lambda:invoke.waitForTaskToken') {
      taskResourceLocalHandlers[name] = waitForTaskToken(state);
    } else if (state.Resource === 'arn:aws:states:::lambda:invoke') {
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
    context: {
      Execution: { Id: executionId, Input: input },
      // `$$.Task.Token`: a new token each time a Task's Parameters read it.
      Task: {
        get Token() {
          return `${api}#${crypto.randomBytes(18).toString('base64url')}`;
        },
      },
    },
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
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  api = `http://127.0.0.1:${server.address().port}/`;
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
