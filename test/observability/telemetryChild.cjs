'use strict';
// Runs the built telemetry module in a process of its own (NODE_EXTRA_CA_CERTS and the SDK's
// global providers are per process): makes the calls in TELEMETRY_CALLS, shuts telemetry down
// (which flushes), and prints what it saw as one JSON line.
const path = require('node:path');
const modulePath = path.resolve(__dirname, '..', '..', 'dist', 'src', 'observability', 'telemetry.js');
const { continueHostTrace, startTelemetry, telemetry, shutdownTelemetry } = require(modulePath);

async function run() {
  // As the Functions host does: the app entry point loads first and starts telemetry itself.
  if (process.env.LOAD_APP_ENTRY) require(path.resolve(__dirname, '..', '..', 'dist', 'src', 'index.js'));
  const startedByAppEntry = telemetry().enabled;
  const warnings = [];
  const started = startTelemetry({ warn: (message) => warnings.push(message) });
  const again = startTelemetry();
  let threw = null;
  // As the Functions host calls a handler: through the preInvocation hook, with its trace context.
  const hook = {
    invocationContext: { traceContext: { traceParent: process.env.HOST_TRACE_PARENT } },
    functionHandler: async () => {
      await new Promise((resolve) => setTimeout(resolve, 5));
      for (const call of JSON.parse(process.env.TELEMETRY_CALLS ?? '[]')) {
        if (call.kind === 'event') telemetry().event(call.name, call.properties, call.measurements);
        else telemetry().metric(call.name, call.value, call.properties);
      }
    },
  };
  continueHostTrace(hook);
  try {
    await hook.functionHandler();
  } catch (error) {
    threw = String(error);
  }
  const enabledAfterCalls = telemetry().enabled;
  await shutdownTelemetry();
  const sdkLoaded = Object.keys(require.cache).some((file) => file.includes(`${path.sep}applicationinsights${path.sep}`));
  process.stdout.write(`${JSON.stringify({ startedByAppEntry, startedEnabled: started.enabled, sameOnSecondStart: started === again, enabledAfterCalls, threw, warnings, sdkLoaded })}\n`);
}

run().catch((error) => {
  process.stderr.write(`child failed: ${error && error.stack}\n`);
  process.exit(3);
});
