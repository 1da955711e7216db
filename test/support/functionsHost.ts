import { FunctionsWorker } from '../../devhost/functionsCore';

/**
 * Loaded before every test file (vitest.config.mts setupFiles): the app's function modules (src/functions/*) register
 * their functions as they load, and without a worker's `@azure/functions-core` the library falls
 * back to its test mode and prints a WARNING for each. Here the dev host's stand-in of the worker
 * (devhost/functionsCore.ts) takes the registrations, as the Functions host's worker would; the
 * tests still call the exported adapters directly.
 */
export const functionsHost = new FunctionsWorker({ log: () => undefined });
functionsHost.install();
