'use strict';
// Not part of the app: the end-to-end test (devhost/test/endToEnd.test.ts) has the local host's worker
// load this after the app's own entry points (hostProcess.js --entry-point). It adds the test's own
// handlers to the app's list (src/handlers/index.ts `handlerFiles`) before the functions first use
// it, so the test depends on none of the app's handlers: one that logs every event, one for
// e2e_widget Create that fails while the file named by E2E_FAIL_FLAG exists, and an inline one for
// e2e_gate Create that refuses an amount above 1000. It also writes the worker's pid, so that the
// test can check the worker is gone after Ctrl-C.
const { existsSync, writeFileSync } = require('node:fs');
const path = require('node:path');
const dist = path.resolve(__dirname, '..', '..', '..', 'dist', 'src');
const { handlerFiles } = require(path.join(dist, 'handlers', 'index.js'));
const { allow, decide, on, reject } = require(path.join(dist, 'handlerApi', 'index.js'));

writeFileSync(process.env.E2E_WORKER_PID_FILE, String(process.pid));

handlerFiles.push({
  seen: on({ name: 'e2e-seen', entity: '*', message: '*' }, (event, ctx) => {
    ctx.log.info('e2e saw the event', { table: event.primaryEntityName });
  }),
  failing: on({ name: 'e2e-failing', entity: 'e2e_widget', message: 'Create' }, (_event, ctx) => {
    if (existsSync(process.env.E2E_FAIL_FLAG)) throw new Error('failing on purpose (end-to-end test)');
    ctx.log.info('e2e handler ran');
  }),
  gate: decide({ name: 'e2e-gate', entity: 'e2e_gate', message: 'Create', stage: 'PreValidation' }, (_event, ctx) => {
    const amount = ctx.attribute('amount');
    return typeof amount === 'number' && amount > 1000 ? reject('Above 1000', { code: 'e2e-too-much' }) : allow();
  }),
});
