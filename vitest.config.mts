import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // The engine's tests, the dev host's, and your handlers' tests beside them in src/handlers.
    include: ['test/**/*.test.ts', 'devhost/test/**/*.test.ts', 'src/**/*.test.ts'],
    globalSetup: ['test/support/globalSetup.ts'],
    // Tests that load src/functions register functions as the modules load: the dev host's stand-in of
    // the worker's @azure/functions-core takes them, as the Functions host would (no test-mode WARNINGs).
    setupFiles: ['test/support/functionsHost.ts'],
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Tests load the app entry point, which starts Application Insights from this setting: a
    // developer's own connection string must never receive test telemetry.
    env: { APPLICATIONINSIGHTS_CONNECTION_STRING: '' },
  },
});
