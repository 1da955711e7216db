'use strict';
// Runs the built telemetry module in a process of its own (NODE_EXTRA_CA_CERTS and the SDK's
// global providers are per process): makes the calls in TELEMETRY_CALLS, shuts telemetry down
// (which flushes), and prints what it saw as one JSON line.
const path = require('node:path');
const modulePath = path.resolve(__dirname, '..', '..', 'dist', 'src', 'observability', 'telemetry.js');
const { startTelemetry, telemetry, shutdownTelemetry } = require(modulePath);

async function run() {
  // As the Functions host does: the app entry point loads first and starts telemetry itself.
  if (process.env.LOAD_APP_ENTRY) require(path.resolve(__dirname, '..', '..', 'dist', 'src', 'index.js'));
  const startedByAppEntry = telemetry().enabled;
  const warnings = [];
  const started = startTelemetry({ warn: (message) => warnings.push(message) });
  const again = startTelemetry();
  let threw = null;
  try {
    for (const call of JSON.parse(process.env.TELEMETRY_CALLS ?? '[]')) {
      if (call.kind === 'event') telemetry().event(call.name, call.properties, call.measurements);
      else telemetry().metric(call.name, call.value, call.properties);
    }
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
