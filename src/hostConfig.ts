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
