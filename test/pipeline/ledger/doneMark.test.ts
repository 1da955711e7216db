import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { on } from '../../../src/handlerApi';
import { registryOf } from '../../../src/handlerApi/load';
import { silentLog } from '../../../src/observability/log';
import type { EventEnvelope } from '../../../src/pipeline/envelope';
import { SERVICE_CLOCK_MARGIN_MS } from '../../../src/pipeline/ledger/ledger';
import { type ProcessOutcome, processEnvelope } from '../../../src/pipeline/process';
import { readProcessSettings } from '../../../src/settings';
import { createStorageClients, type StorageClients } from '../../../src/storage/clients';
import { type FaultyStorage, faultyStorage } from '../../support/faultyProxy';
import { fixtureContext } from '../../support/fixtures';
import { queuedEnvelope } from '../../support/processing';
import { isolatedStorage } from '../../support/storage';

/**
 * The done-mark outlives the lease (issue 26, 4): after the handler returns, its unit's lease is
 * renewed until the done-mark lands, so a done-mark that takes longer than the lease (storage slow
 * for that one request) does not let another copy run the finished effect again.
 */

describe("a unit's done-mark", () => {
  let faulty: FaultyStorage;
  let storage: StorageClients;
  beforeEach(async () => {
    faulty = await faultyStorage();
    // A try waits longer than the hold below, so the held done-mark is not sent again on a new
    // connection (src/storage/tryTimeout.ts) before the hold ends: storage slow for that one request.
    storage = await isolatedStorage({ connectionString: faulty.connectionString, retry: { maxTries: 2, tryTimeoutMs: 10_000 } });
  });
  afterEach(() => faulty.close());

  it('held up for longer than the lease: the lease is renewed meanwhile, no copy runs the unit again, and the done-mark lands', async () => {
    const leaseMs = 2_000;
    const settings = { ...readProcessSettings({}), leaseMs, deferJitterMs: 0 };
    const runs: string[] = [];
    const effect = (by: string) =>
      registryOf([
        on({ name: 'effect', entity: '*', message: '*' }, () => {
          runs.push(by);
        }),
      ]);
    const envelope = await queuedEnvelope(storage, JSON.stringify({ ...fixtureContext('06-'), CorrelationId: randomUUID() }));

    // The done-mark (the unit's conditional Replace) waits, unsent, for the lease, its margin and two seconds more.
    const held = faulty.table.hold((request) => request.method === 'PUT' && request.path.includes(`/${storage.ledger.tableName}(`));
    const first = processEnvelope(envelope, { storage, handlers: effect('first'), settings, log: silentLog, deliveryCount: 1 });
    await held.held;
    const heldUntil = Date.now() + leaseMs + SERVICE_CLOCK_MARGIN_MS + 2_000;

    // Another instance, straight to storage, takes a copy every 300 ms meanwhile.
    const elsewhere = createStorageClients(inject('azuriteConnectionString'), { names: storage.names });
    const other = (copy: EventEnvelope) =>
      processEnvelope(copy, { storage: elsewhere, handlers: effect('other'), settings, log: silentLog, deliveryCount: 2 });
    const copies: ProcessOutcome['status'][] = [];
    while (Date.now() < heldUntil) {
      await sleep(300);
      copies.push((await other(envelope)).status);
    }
    held.release();
    expect((await first).status).toBe('processed');

    expect(copies.length).toBeGreaterThanOrEqual(10);
    expect(new Set(copies)).toEqual(new Set(['deferred']));
    expect(runs).toEqual(['first']);
    expect((await other(envelope)).status).toBe('duplicate');
  }, 30_000);
});
