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
    // Three files at a time on CI's two cores: most of the suite waits on leases, timers, child
    // processes and Azurite rather than on the CPU (one file at a time, vitest's default for two
    // cores, left the CPU idle over half the run: 412 s against 167-200 s with three).
    maxWorkers: 3,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Tests load the app entry point, which starts Application Insights from this setting: a
    // developer's own connection string must never receive test telemetry.
    env: { APPLICATIONINSIGHTS_CONNECTION_STRING: '' },
  },
});
