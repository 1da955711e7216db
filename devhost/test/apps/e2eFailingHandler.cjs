'use strict';
// Not part of the app: the end-to-end test (devhost/test/endToEnd.test.ts) has the local host's worker
// load this after the app's own entry points (hostProcess.js --entry-point). It adds a handler for
// lead Create that fails while the file named by E2E_FAIL_FLAG exists, and writes the worker's pid
// so that the test can check the worker is gone after Ctrl-C.
const { existsSync, writeFileSync } = require('node:fs');
const path = require('node:path');
const { on } = require(path.resolve(__dirname, '..', '..', '..', 'dist', 'src', 'handlers', 'index.js'));

writeFileSync(process.env.E2E_WORKER_PID_FILE, String(process.pid));

on({ name: 'e2e-failing', entity: 'lead', message: 'Create' }, (_event, ctx) => {
  if (existsSync(process.env.E2E_FAIL_FLAG)) throw new Error('failing on purpose (end-to-end test)');
  ctx.log.info('e2e handler ran');
});
