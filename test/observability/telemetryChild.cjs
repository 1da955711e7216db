'use strict';
// Runs the built telemetry module in a process of its own (NODE_EXTRA_CA_CERTS and the SDK's
// global providers are per process): makes the calls in TELEMETRY_CALLS, shuts telemetry down
// (which flushes), and prints what it saw as one JSON line.
const path = require('node:path');
const modulePath = path.resolve(__dirname, '..', '..', 'dist', 'src', 'observability', 'telemetry.js');
const { continueHostTrace, startTelemetry, telemetry, shutdownTelemetry } = require(modulePath);

/**
 * The app's hooks as the Node worker keeps them (its @azure/functions-core registerHook), so the
 * child can end as the worker does: by running the appTerminate hooks.
 */
function captureHooks() {
  const Module = require('node:module');
  const hooks = {};
  const core = {
    version: '4.0.0-test',
    hostVersion: '4.0.0-test',
    setProgrammingModel: () => undefined,
    getProgrammingModel: () => undefined,
    registerHook: (name, callback) => {
      (hooks[name] ??= []).push(callback);
      return { dispose: () => undefined };
    },
    registerFunction: () => ({ dispose: () => undefined }),
    log: () => undefined,
  };
  const resolve = Module._resolveFilename;
  Module._resolveFilename = function (request, ...rest) {
    return request === '@azure/functions-core' ? '/virtual/azure-functions-core.js' : resolve.call(this, request, ...rest);
  };
  const fake = new Module('/virtual/azure-functions-core.js');
  fake.exports = core;
  fake.loaded = true;
  Module._cache['/virtual/azure-functions-core.js'] = fake;
  return hooks;
}

async function run() {
  const hooks = process.env.END_WITH_APP_TERMINATE ? captureHooks() : null;
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
  if (hooks) {
    // As the worker ends: only the app's own hooks send what is buffered.
    for (const hook of hooks.appTerminate ?? []) await hook({ hookData: {}, appHookData: {} });
    if (!(hooks.appTerminate ?? []).length) throw new Error('the app registered no appTerminate hook');
  } else {
    await shutdownTelemetry();
  }
  const sdkLoaded = Object.keys(require.cache).some((file) => file.includes(`${path.sep}applicationinsights${path.sep}`));
  process.stdout.write(
    `${JSON.stringify({ startedByAppEntry, startedEnabled: started.enabled, sameOnSecondStart: started === again, enabledAfterCalls, threw, warnings, sdkLoaded })}\n`,
  );
}

run().catch((error) => {
  process.stderr.write(`child failed: ${error?.stack}\n`);
  process.exit(3);
});
