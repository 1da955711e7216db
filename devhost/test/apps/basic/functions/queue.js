const { appendFileSync } = require('node:fs');
const { app } = require('@azure/functions');

// What the function saw, one JSON line per invocation; what it does depends on the message.
app.storageQueue('work', {
  queueName: '%WORK_QUEUE%',
  connection: 'AzureWebJobsStorage',
  handler: async (message, context) => {
    const { dequeueCount } = context.triggerMetadata;
    appendFileSync(
      process.env.RESULTS_FILE,
      `${JSON.stringify({ invocationId: context.invocationId, pid: process.pid, messageType: typeof message, message, triggerMetadata: context.triggerMetadata })}\n`,
    );
    context.log('working on', message.name);
    if (message.action === 'hang-first' && dequeueCount === 1) await new Promise(() => undefined);
    if (message.action === 'slow-first' && dequeueCount === 1) await new Promise((resolve) => setTimeout(resolve, 120_000));
    if (message.action === 'fail') throw new Error(`failing ${message.name}`);
  },
});
