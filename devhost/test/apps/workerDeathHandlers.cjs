'use strict';
// Not part of the app: devhost/test/workerDeath.test.ts has the local host's worker load this after the
// app's own entry points (hostProcess.js --entry-point). It adds a handler for lead Update that
// writes one JSON line per start and per effect to WORKER_DEATH_LOG, after WORKER_DEATH_SLOW_MS of
// work; for the record WORKER_DEATH_PILL it kills its own worker process instead, every time (a
// pill: a crash, an out-of-memory kill). Each worker appends its pid to the same log as it loads.
const { appendFileSync } = require('node:fs');
const path = require('node:path');
const dist = path.resolve(__dirname, '..', '..', '..', 'dist', 'src');
const { handlerFiles } = require(path.join(dist, 'handlers', 'index.js'));
const { on } = require(path.join(dist, 'handlerApi', 'index.js'));

const log = (line) => appendFileSync(process.env.WORKER_DEATH_LOG, `${JSON.stringify({ ...line, pid: process.pid, at: Date.now() })}\n`);
log({ kind: 'worker' });

handlerFiles.push({
  workerDeath: on({ name: 'worker-death', entity: 'lead', message: 'Update' }, async (event, ctx) => {
    const recordId = event.primaryEntityId;
    log({ kind: 'start', recordId, eventId: ctx.eventId, deliveryCount: ctx.deliveryCount });
    if (recordId === process.env.WORKER_DEATH_PILL) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      process.kill(process.pid, 'SIGKILL');
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, Number(process.env.WORKER_DEATH_SLOW_MS)));
    log({ kind: 'effect', recordId, eventId: ctx.eventId, deliveryCount: ctx.deliveryCount });
  }),
});
