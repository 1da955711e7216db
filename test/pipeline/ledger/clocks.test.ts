import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { beforeEach, describe, expect, it } from 'vitest';
import { deliveryKey } from '../../../src/pipeline/deliveryKey';
import type { EventEnvelope } from '../../../src/pipeline/envelope';
import { Ledger, SERVICE_CLOCK_MARGIN_MS } from '../../../src/pipeline/ledger/ledger';
import type { ProcessOutcome } from '../../../src/pipeline/process';
import type { StorageClients } from '../../../src/storage/clients';
import { fixtureContext } from '../../support/fixtures';
import { instance, type Run } from '../../support/instances';
import { queuedEnvelope } from '../../support/processing';
import { isolatedStorage } from '../../support/storage';

/**
 * Clocks (issue 26, 3). A unit's lease is measured on the Table service's own clock by whoever
 * finds it held, and on its holder's monotonic clock by the holder (src/pipeline/ledger/): an
 * instance whose clock runs ahead or behind changes nothing (docs/reliability.md, Clocks and
 * stalls). The stalls: stalls.test.ts.
 */

const oneEnvelope = (storage: StorageClients): Promise<EventEnvelope> =>
  queuedEnvelope(storage, JSON.stringify({ ...fixtureContext('06-'), CorrelationId: randomUUID() }));

describe('instances whose clocks disagree', () => {
  let storage: StorageClients;
  beforeEach(async () => {
    storage = await isolatedStorage();
  });

  it('an instance whose clock runs ahead by more than the lease never runs a unit another holds, however often it looks', async () => {
    const leaseMs = 2_000;
    const runs: Run[] = [];
    const holder = instance('holder', storage, { runMs: 2.5 * leaseMs, leaseMs, runs });
    const ahead = instance('ahead', storage, { clockMs: 10 * leaseMs, runMs: 100, leaseMs, runs });
    const envelope = await oneEnvelope(storage);

    const held = holder(envelope);
    const copies: string[] = [];
    while (runs[0]?.end === undefined || Number.isNaN(runs[0].end)) {
      await sleep(300);
      copies.push((await ahead(envelope)).status);
    }
    expect((await held).status).toBe('processed');
    // Every copy it took while the unit was held came back later; the first after is a duplicate.
    expect(copies.length).toBeGreaterThanOrEqual(10);
    expect(new Set(copies.slice(0, -1))).toEqual(new Set(['deferred']));
    expect((await ahead(envelope)).status).toBe('duplicate');
    expect(runs.map((run) => [run.by, run.effect])).toEqual([['holder', true]]);
  }, 30_000);

  it('a dead holder whose clock ran an hour ahead holds its unit no longer than its lease (and the margin) on the service clock', async () => {
    const leaseMs = 2_000;
    const runs: Run[] = [];
    const behind = instance('next', storage, { clockMs: -60_000, runMs: 100, leaseMs, runs });
    const envelope = await oneEnvelope(storage);
    // Claimed by an instance whose clock is an hour ahead, which then dies.
    const ahead = new Ledger(storage.ledger, () => Date.now() + 3_600_000);
    const claimedAt = Date.now();
    expect((await ahead.claimUnit(deliveryKey(envelope.summary), 'slow', envelope.eventId, leaseMs)).kind).toBe('claimed');

    let outcome: ProcessOutcome['status'] = 'deferred';
    while (outcome === 'deferred' && Date.now() - claimedAt < 10_000) {
      await sleep(250);
      outcome = (await behind(envelope)).status;
    }
    expect(outcome).toBe('processed');
    const tookOverAfterMs = runs[0]!.start - claimedAt;
    expect(tookOverAfterMs).toBeGreaterThanOrEqual(leaseMs);
    // The lease, the margin, the second the service's Date is cut to, and a poll.
    expect(tookOverAfterMs).toBeLessThan(leaseMs + SERVICE_CLOCK_MARGIN_MS + 1_000 + 500);
  }, 30_000);
});
