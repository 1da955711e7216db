import { TableClient } from '@azure/data-tables';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { on } from '../../../src/handlerApi';
import { registryOf } from '../../../src/handlerApi/load';
import { silentLog } from '../../../src/observability/log';
import { deliveryKey } from '../../../src/pipeline/deliveryKey';
import { type EventEnvelope, parseEnvelope } from '../../../src/pipeline/envelope';
import { failureStore, recordPoisonedMessage, replayFailures } from '../../../src/pipeline/failures';
import type { HandlerRegistry } from '../../../src/pipeline/handlerRegistry';
import { DIED_ERROR, Ledger, SERVICE_CLOCK_MARGIN_MS } from '../../../src/pipeline/ledger/ledger';
import { LeaseLostError } from '../../../src/pipeline/ledger/unitLease';
import { type ProcessDependencies, processEnvelope } from '../../../src/pipeline/process';
import { HandlerFailedError } from '../../../src/pipeline/runUnit';
import { type ProcessSettings, readProcessSettings } from '../../../src/settings';
import type { StorageClients } from '../../../src/storage/clients';
import { type FaultyStorage, faultyStorage } from '../../support/faultyProxy';
import { fixture, fixtureContext } from '../../support/fixtures';
import { ingest, queuedEnvelope } from '../../support/processing';
import { drainQueue, isolatedStorage } from '../../support/storage';

/**
 * The unit lease, renewed by its holder, and the attempts the ledger counts whichever message
 * carries them (README "Effects once"; src/pipeline/ledger/). The
 * worker deaths themselves, in a real worker process, are in devhost/test/workerDeath.test.ts.
 */

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
/** Until a lease is over as others see it, on the service's clock: the lease, the margin, and the second its Date is cut to. */
const leaseOver = (leaseMs: number) => sleep(leaseMs + SERVICE_CLOCK_MARGIN_MS + 1_000);

function deps(
  storage: StorageClients,
  handlers: HandlerRegistry,
  settings: ProcessSettings,
  more: Partial<ProcessDependencies> = {},
): ProcessDependencies {
  return { storage, handlers, settings, log: silentLog, deliveryCount: 1, ...more };
}

const oneEnvelope = (storage: StorageClients): Promise<EventEnvelope> => queuedEnvelope(storage, fixture('06-').body);

async function unitRow(storage: StorageClients, envelope: EventEnvelope, unit: string) {
  return storage.ledger.getEntity<{ state: string; attempts: number; leaseUntil: number; retryAfterMs?: number; lastError?: string }>(
    deliveryKey(envelope.summary),
    unit,
  );
}

describe('a unit lease its holder renews', () => {
  let storage: StorageClients;
  beforeEach(async () => {
    storage = await isolatedStorage();
  });

  it('keeps a live handler that runs for several leases from being run twice: every copy meanwhile is deferred', async () => {
    const settings = { ...readProcessSettings({}), leaseMs: 2_000, deferJitterMs: 0 };
    let runs = 0;
    let aborted = false;
    const registry = registryOf([
      on({ name: 'slow', entity: '*', message: '*' }, async (_event, ctx) => {
        runs++;
        await sleep(5_000);
        aborted = ctx.signal.aborted;
      }),
    ]);
    const envelope = await oneEnvelope(storage);
    let firstDone = false;
    const first = processEnvelope(envelope, deps(storage, registry, settings)).finally(() => {
      firstDone = true;
    });
    const copies: string[] = [];
    const leases: number[] = [];
    // Copies come every ~½ s while the first runs (on a loaded machine fewer fit in its 5 s: a copy
    // that starts after the first settled would rightly find the unit done, which is not the point here).
    for (let i = 0; i < 8 && !firstDone; i++) {
      await sleep(550);
      if (firstDone) break;
      copies.push((await processEnvelope(envelope, deps(storage, registry, settings, { deliveryCount: 2 }))).status);
      leases.push((await unitRow(storage, envelope, 'slow')).leaseUntil);
    }
    expect((await first).status).toBe('processed');
    expect(runs).toBe(1);
    expect(aborted).toBe(false);
    expect(copies.length).toBeGreaterThanOrEqual(4);
    expect(new Set(copies)).toEqual(new Set(['deferred']));
    // 5 s of handler under a 2 s lease: renewed while it ran, and always ahead of now.
    expect(new Set(leases).size).toBeGreaterThanOrEqual(3);
    expect((await unitRow(storage, envelope, 'slow')).state).toBe('done');
  });

  describe('when its renewal fails', () => {
    let faulty: FaultyStorage;
    afterEach(() => faulty.close());

    it("aborts the handler's signal before the lease can lapse, so a copy taking the unit over never runs beside it", async () => {
      faulty = await faultyStorage();
      const broken = await isolatedStorage({ connectionString: faulty.connectionString });
      // The same table straight from Azurite, not through the broken network.
      const straight = TableClient.fromConnectionString(inject('azuriteConnectionString'), broken.ledger.tableName, {
        allowInsecureConnection: true,
      });
      const leaseMs = 2_400;
      const settings = { ...readProcessSettings({}), leaseMs, deferJitterMs: 0 };
      let abortedAfterMs = -1;
      let started = 0;
      const registry = registryOf([
        on({ name: 'waits', entity: '*', message: '*' }, async (_event, ctx) => {
          started = Date.now();
          // Table storage goes away for this processor as soon as its handler starts.
          faulty.table.down('reset');
          await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve()));
          abortedAfterMs = Date.now() - started;
          assertIsLeaseLost(ctx.signal.reason);
        }),
      ]);
      const envelope = await oneEnvelope(broken);
      const failure = await processEnvelope(envelope, deps(broken, registry, settings)).catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(HandlerFailedError);
      expect(String((failure as Error).message)).toMatch(/ledger lease could not be renewed/);
      // Aborted a sixth of the lease before it ends, never after.
      expect(abortedAfterMs).toBeGreaterThan(leaseMs * (5 / 6) - 300);
      expect(abortedAfterMs).toBeLessThan(leaseMs);
      // Seen from elsewhere, the unit was still held when its handler was told to stop.
      const row = await straight.getEntity<{ state: string; leaseUntil: number }>(deliveryKey(envelope.summary), 'waits');
      expect(row.state).toBe('processing');
      expect(row.leaseUntil).toBeGreaterThan(started + abortedAfterMs);
      faulty.table.up();
    });
  });
});

function assertIsLeaseLost(reason: unknown): void {
  if (!(reason instanceof LeaseLostError)) throw new Error(`aborted for another reason: ${String(reason)}`);
}

describe('attempts the ledger counts, whichever message carries them', () => {
  let storage: StorageClients;
  beforeEach(async () => {
    storage = await isolatedStorage();
  });

  it('a unit that died or failed maxDequeueCount times goes to failures, though each copy is a new message; ctx.deliveryCount says which attempt it is', async () => {
    const settings = { ...readProcessSettings({}), leaseMs: 300, deferJitterMs: 200 };
    const seen: number[] = [];
    let failing = true;
    const registry = registryOf([
      on({ name: 'pill', entity: '*', message: '*' }, (_event, ctx) => {
        seen.push(ctx.deliveryCount);
        if (failing) throw new Error('the downstream API answered 500');
      }),
    ]);
    const envelope = await oneEnvelope(storage);
    const key = deliveryKey(envelope.summary);
    const ledger = new Ledger(storage.ledger);
    const more = { maxDequeueCount: 3, random: () => 0.5 };
    /** A run in a worker that dies: claimed, never finished. */
    const dies = async () => {
      const claim = await ledger.claimUnit(key, 'pill', envelope.eventId, settings.leaseMs, { maxAttempts: 3 });
      expect(claim.kind).toBe('claimed');
      await leaseOver(settings.leaseMs);
    };

    await dies();
    // The next copy (a new message: dequeue count 1) finds the run dead: recorded failed, a copy comes back at random.
    expect((await processEnvelope(envelope, deps(storage, registry, settings, more))).status).toBe('deferred');
    const dead = await unitRow(storage, envelope, 'pill');
    expect(dead).toMatchObject({ state: 'failed', attempts: 1, lastError: DIED_ERROR, retryAfterMs: 100 });
    // Before its retry time nobody takes it over; after it (and the second the service's Date is
    // cut to), the deferred copy's run is the second.
    expect((await processEnvelope(envelope, deps(storage, registry, settings, more))).status).toBe('deferred');
    await sleep(1_150);
    await dies();
    expect((await processEnvelope(envelope, deps(storage, registry, settings, more))).status).toBe('deferred');
    // Its second death spreads its next run twice as wide.
    expect(await unitRow(storage, envelope, 'pill')).toMatchObject({ state: 'failed', attempts: 2, retryAfterMs: 200 });
    await sleep(1_250);
    // The third run, from a message delivered once: the handler is told it is the third attempt.
    await expect(processEnvelope(envelope, deps(storage, registry, settings, more))).rejects.toBeInstanceOf(HandlerFailedError);
    expect(seen).toEqual([3]);
    // Three runs spent: the next copy moves the event to the poison queue without running it.
    expect((await processEnvelope(envelope, deps(storage, registry, settings, more))).status).toBe('poisoned');
    expect(seen).toEqual([3]);
    const [poisoned] = await drainQueue(storage.poisonQueue);
    expect(await recordPoisonedMessage(poisoned, { storage, poisonQueue: storage.poisonQueue, log: silentLog })).toBe('recorded');
    const [failure] = await failureStore(storage).list();
    expect(failure).toMatchObject({ eventId: envelope.eventId, attempts: 3 });
    expect(failure!.error).toContain('pill: Error: the downstream API answered 500');

    // A replay gives the unit its attempts again.
    failing = false;
    expect(await replayFailures('all', { storage })).toEqual([{ eventId: envelope.eventId, replayed: true }]);
    // (The deferred copies of the dead runs are visible again by now: the replay is the one that counts a replay.)
    const replayed = (await drainQueue(storage.eventsQueue)).map(parseEnvelope).find((copy) => copy.replays === 1);
    expect((await processEnvelope(replayed!, deps(storage, registry, settings, more))).status).toBe('processed');
    expect(seen).toEqual([3, 1]);
  });

  it('copies of events that died together come back apart: each waits a random part of the jitter', async () => {
    const settings = { ...readProcessSettings({}), leaseMs: 300, deferJitterMs: 10_000 };
    const registry = registryOf([on({ name: 'effect', entity: '*', message: '*' }, () => undefined)]);
    const ledger = new Ledger(storage.ledger);
    const envelopes: EventEnvelope[] = [];
    for (let i = 0; i < 2; i++) {
      await ingest(storage, JSON.stringify({ ...fixtureContext('06-'), CorrelationId: crypto.randomUUID() }));
    }
    for (const message of await drainQueue(storage.eventsQueue)) envelopes.push(parseEnvelope(message));
    for (const envelope of envelopes) await ledger.claimUnit(deliveryKey(envelope.summary), 'effect', envelope.eventId, settings.leaseMs);
    await leaseOver(settings.leaseMs);
    const randoms = [0.1, 0.9];
    for (const [index, envelope] of envelopes.entries()) {
      expect((await processEnvelope(envelope, deps(storage, registry, settings, { random: () => randoms[index]! }))).status).toBe(
        'deferred',
      );
    }
    const [early, late] = await Promise.all(envelopes.map((envelope) => unitRow(storage, envelope, 'effect')));
    expect(late!.retryAfterMs! - early!.retryAfterMs!).toBeGreaterThan(7_000);
    // The deferred copies are invisible until then: nothing to receive now.
    expect(await drainQueue(storage.eventsQueue)).toEqual([]);
  });
});
