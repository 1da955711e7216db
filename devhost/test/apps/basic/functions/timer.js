const { appendFileSync } = require('node:fs');
const { app } = require('@azure/functions');

// What each timer invocation saw; the first one fails, and the schedule goes on.
let invocations = 0;
app.timer('tick', {
  schedule: '%TICK_SCHEDULE%',
  runOnStartup: process.env.TICK_ON_STARTUP === 'true',
  handler: async (timer, context) => {
    invocations++;
    appendFileSync(
      process.env.TICKS_FILE,
      `${JSON.stringify({ invocationId: context.invocationId, timer, at: new Date().toISOString(), invocations })}\n`,
    );
    if (invocations === 1) throw new Error('first tick fails');
  },
});
