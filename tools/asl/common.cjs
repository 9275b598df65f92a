// What run.cjs (the differential tests) and bench.cjs (the benchmark's peer) share:
// aws-local-stepfunctions made to run on Node 20, the states of a definition, the
// workflow a `${…Arn}` placeholder names, and the Rust step handler over JSON lines.
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

const readline = require('readline');
const { StateMachine } = require('aws-local-stepfunctions');

/** Every state of a definition, those inside Parallel branches and Map processors too. */
function collectStates(states, out = []) {
  for (const [name, state] of Object.entries(states)) {
    out.push([name, state]);
    for (const b of state.Branches ?? []) collectStates(b.States, out);
    if (state.ItemProcessor) collectStates(state.ItemProcessor.States, out);
    if (state.Iterator) collectStates(state.Iterator.States, out);
  }
  return out;
}

/** `${<Name>Arn}` → workflow name, for the workflows of `machines`. */
function placeholders(machines) {
  const byPlaceholder = {};
  for (const name of Object.keys(machines)) {
    byPlaceholder['${' + name.replace(/[^A-Za-z0-9]/g, '') + 'Arn}'] = name;
  }
  return byPlaceholder;
}

/**
 * The Rust step handler, answering on stdin the requests written on stdout (one JSON
 * object a line, matched by id). Returns `step(payload) -> Promise<answer>`; an error
 * answer rejects with an Error whose `name` is the handler's error name. `step.close()`
 * stops reading stdin.
 */
function stepHandlerOverStdio() {
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
  step.close = () => lines.close();
  return step;
}

module.exports = { StateMachine, collectStates, placeholders, stepHandlerOverStdio };
