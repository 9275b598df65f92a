// Validates ASL files with both community validators and prints one JSON report:
// {"<file>": {"asl-validator": [errors], "statelint": [errors]}}. Exit code 0 even when
// a definition is invalid: the Rust test reads the report and says which one and why.
'use strict';
const fs = require('fs');
const path = require('path');
const aslValidator = require('asl-validator');
const statelint = require('@wmfs/statelint')();

const report = {};
for (const file of process.argv.slice(2)) {
  const definition = JSON.parse(fs.readFileSync(file, 'utf8'));
  // asl-validator adds QueryLanguage to every state of what it is given: give it a copy.
  const clone = structuredClone(definition);
  const { isValid, errors } = aslValidator(clone, { checkArn: true, checkPaths: true });
  report[path.basename(file)] = {
    'asl-validator': isValid ? [] : errors.map((e) => e.message ?? JSON.stringify(e)),
    statelint: statelint.validate(structuredClone(definition)),
  };
}
process.stdout.write(JSON.stringify(report) + '\n');
