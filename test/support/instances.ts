import { setTimeout as sleep } from 'node:timers/promises';
import { inject } from 'vitest';
import { on } from '../../src/handlerApi';
import { registryOf } from '../../src/handlerApi/load';
import { silentLog } from '../../src/observability/log';
import type { EventEnvelope } from '../../src/pipeline/envelope';
import { type ProcessOutcome, processEnvelope } from '../../src/pipeline/process';
import { readProcessSettings } from '../../src/settings';
import { createStorageClients, type StorageClients } from '../../src/storage/clients';

/** One run of a handler: who ran it, when (wall clock, comparable across the machine's processes), and whether it had its effect. */
export interface Run {
  by: string;
  start: number;
  end: number;
  effect: boolean;
}

/**
 * Another app instance processing the test's events: its own storage clients on the same account
 * and names, its own clock (`clockMs` ahead of the machine's, or behind), and one handler, `slow`,
 * that runs `runMs` (cut short by its signal, as a handler should be) and records its runs.
 */
export function instance(
  name: string,
  storage: StorageClients,
  options: { clockMs?: number; runMs: number; leaseMs: number; runs: Run[] },
): (envelope: EventEnvelope) => Promise<ProcessOutcome> {
  const own = createStorageClients(inject('azuriteConnectionString'), { names: storage.names });
  const slow = on({ name: 'slow', entity: '*', message: '*' }, async (_event, ctx) => {
    const run: Run = { by: name, start: Date.now(), end: Number.NaN, effect: false };
    options.runs.push(run);
    try {
      await sleep(options.runMs, undefined, { signal: ctx.signal });
      run.effect = true;
    } finally {
      run.end = Date.now();
    }
  });
  const handlers = registryOf([slow]);
  const settings = { ...readProcessSettings({}), leaseMs: options.leaseMs, deferJitterMs: 0 };
  const now = () => Date.now() + (options.clockMs ?? 0);
  return (envelope) => processEnvelope(envelope, { storage: own, handlers, settings, log: silentLog, deliveryCount: 1, now });
}

/** The pairs of runs that overlap in time, each pair once. */
export function overlapping(runs: Run[]): Array<[string, string]> {
  const pairs: Array<[string, string]> = [];
  for (const [i, a] of runs.entries()) for (const b of runs.slice(i + 1)) if (a.start < b.end && b.start < a.end) pairs.push([a.by, b.by]);
  return pairs;
}
