/**
 * Facts of host.json that the app's own code depends on. host.json is read by the Functions host,
 * not by the app, so these are copies: test/functions/registrations.test.ts fails when they differ.
 */

/** host.json `functionTimeout` (00:05:00). Past it the host restarts the whole Node worker. */
export const FUNCTION_TIMEOUT_MS = 5 * 60_000;

/**
 * What the processor keeps in hand below `functionTimeout`: handlers are cut off and the ledger's
 * writes given up this long before it, so an invocation always returns to the host by itself.
 */
export const INVOCATION_MARGIN_MS = 30_000;

/** The longest a queue invocation of ours may run. */
export const INVOCATION_BUDGET_MS = FUNCTION_TIMEOUT_MS - INVOCATION_MARGIN_MS;

/**
 * host.json `extensions.queues.maxDequeueCount` (5): the attempts a message gets before the host
 * moves it to the poison queue. The processor holds a unit's attempts in the ledger to the same
 * number, deferred copies (new messages, whose dequeue count starts again at 1) included.
 */
export const MAX_DEQUEUE_COUNT = 5;

/**
 * maxDequeueCount as the host applies it: the app setting
 * `AzureFunctionsJobHost__extensions__queues__maxDequeueCount` wins over host.json
 * (https://learn.microsoft.com/azure/azure-functions/functions-host-json#override-hostjson-values;
 * keys without regard to case, as .NET configuration reads them). The worker sees the same app settings.
 */
export function maxDequeueCount(env: NodeJS.ProcessEnv = process.env): number {
  const name = 'azurefunctionsjobhost__extensions__queues__maxdequeuecount';
  const entry = Object.entries(env).find(([key, value]) => key.toLowerCase() === name && value !== undefined && value.trim() !== '');
  const value = entry ? Number(entry[1]) : NaN;
  return Number.isInteger(value) && value > 0 ? value : MAX_DEQUEUE_COUNT;
}
