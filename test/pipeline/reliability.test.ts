import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import type { DataverseEvent } from '../../src/dataverse';
import { largeCreateMultiple } from '../../src/dataverse/samplePayloads';
import { on } from '../../src/handlerApi';
import { registryOf } from '../../src/handlerApi/load';
import { silentLog } from '../../src/observability/log';
import { acceptWebhook } from '../../src/pipeline/accept';
import { parseEnvelope } from '../../src/pipeline/envelope';
import { failureStore, REPOISONED_NOTE, recordPoisonedMessage, replayFailures, sweepPoisonQueue } from '../../src/pipeline/failures';
import type { HandlerRegistry } from '../../src/pipeline/handlerRegistry';
import { type ProcessDependencies, processEnvelope } from '../../src/pipeline/process';
import { HandlerFailedError } from '../../src/pipeline/runUnit';
import { readIngestSettings, readProcessSettings, SettingsError } from '../../src/settings';
import { createStorageClients, type StorageClients } from '../../src/storage/clients';
import { encodeQueueMessage } from '../../src/storage/queueMessages';
import { type FaultyStorage, faultyStorage } from '../support/faultyProxy';
import { fixture } from '../support/fixtures';
import { ingest, processor } from '../support/processing';
import { dataverseHeaders, FUNCTION_URL } from '../support/requests';
import { blobNames, drainQueue, isolatedStorage } from '../support/storage';

const NEVER = new Date('9999-12-31T23:59:59.000Z').getTime();

/** The expiry of every message now visible on a queue (peeked, so they stay). */
async function expiries(queue: StorageClients['eventsQueue']): Promise<number[]> {
  const peeked = await queue.peekMessages({ numberOfMessages: 32 });
  return peeked.peekedMessageItems.map((item) => item.expiresOn.getTime());
}

function deps(storage: StorageClients, handlers: HandlerRegistry, more: Partial<ProcessDependencies> = {}): ProcessDependencies {
  return { storage, handlers, settings: readProcessSettings({}), log: silentLog, deliveryCount: 1, ...more };
}

describe('nothing accepted expires', () => {
  let storage: StorageClients;
  beforeEach(async () => {
    storage = await isolatedStorage();
  });

  it('an accepted event, inline or by claim check, is queued with no expiry', async () => {
    await ingest(storage, fixture('01-').body);
    await ingest(storage, largeCreateMultiple(300 * 1024));
    expect(await expiries(storage.eventsQueue)).toEqual([NEVER, NEVER]);
  });

  it('a replayed event and a deferred copy have no expiry either', async () => {
    const registry = registryOf([
      on({ name: 'fails', entity: '*', message: '*' }, () => {
        throw new Error('no');
      }),
    ]);
    await ingest(storage, fixture('08-').body);
    await processor(storage, registry).drain();
    expect(await replayFailures('all', { storage })).toMatchObject([{ replayed: true }]);
    expect(await expiries(storage.eventsQueue)).toEqual([NEVER]);
    await drainQueue(storage.eventsQueue);

    // A copy of a unit held by a live processor is put back for later (here: 2 s, the lease).
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const slow = registryOf([on({ name: 'slow', entity: '*', message: '*' }, () => gate)]);
    const settings = { ...readProcessSettings({}), leaseMs: 2_000, deferJitterMs: 0 };
    await ingest(storage, fixture('01-').body);
    const [message] = await drainQueue(storage.eventsQueue);
    const first = processEnvelope(parseEnvelope(message), deps(storage, slow, { settings }));
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect((await processEnvelope(parseEnvelope(message), deps(storage, slow, { settings }))).status).toBe('deferred');
    release();
    await first;
    let deferred: number[] = [];
    for (let tries = 0; deferred.length === 0 && tries < 50; tries++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      deferred = await expiries(storage.eventsQueue);
    }
    expect(deferred).toEqual([NEVER]);
  });
});

describe('a handler that does not finish in time', () => {
  let storage: StorageClients;
  beforeEach(async () => {
    storage = await isolatedStorage();
  });

  it('gets an aborted signal at its limit, is no longer waited for, and its unit fails and is retried', async () => {
    const signals: AbortSignal[] = [];
    let hang = true;
    const effects: number[] = [];
    const registry = registryOf([
      on({ name: 'hangs-once', entity: '*', message: '*' }, async (_event, ctx) => {
        signals.push(ctx.signal);
        // Ignores its signal, as a careless handler would.
        if (hang) return new Promise<void>(() => undefined);
        effects.push(ctx.deliveryCount);
      }),
    ]);
    await ingest(storage, fixture('06-').body);
    const [message] = await drainQueue(storage.eventsQueue);
    const settings = { ...readProcessSettings({}), handlerTimeoutMs: 300 };
    const failure = await processEnvelope(parseEnvelope(message), deps(storage, registry, { settings })).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(HandlerFailedError);
    expect(String((failure as Error).message)).toMatch(/time limit of 300 ms/);
    expect(signals[0]?.aborted).toBe(true);

    hang = false;
    const retry = await processEnvelope(parseEnvelope(message), deps(storage, registry, { settings, deliveryCount: 2 }));
    expect(retry.status).toBe('processed');
    expect(effects).toEqual([2]);
    expect(signals[1]?.aborted).toBe(false);
  });

  it('is cut off by what is left of the invocation budget when that is shorter than its own limit', async () => {
    let aborted = false;
    const registry = registryOf([
      on({ name: 'waits', entity: '*', message: '*' }, (_event, ctx) => {
        return new Promise<void>((resolve) =>
          ctx.signal.addEventListener('abort', () => {
            aborted = true;
            resolve();
          }),
        );
      }),
    ]);
    await ingest(storage, fixture('06-').body);
    const [message] = await drainQueue(storage.eventsQueue);
    const run = processEnvelope(parseEnvelope(message), deps(storage, registry, { invocationBudgetMs: 250 }));
    // A handler that honours its signal returns; the unit still failed: it did not do its work.
    await expect(run).rejects.toBeInstanceOf(HandlerFailedError);
    expect(aborted).toBe(true);
  });
});

describe('the idempotency key handlers get', () => {
  it('is the same for a retry, a queue redelivery and a Dataverse re-POST of one unit, and differs between units', async () => {
    const storage = await isolatedStorage();
    const keys: Record<string, string[]> = {};
    let failFirst = true;
    const registry = registryOf([
      on({ name: 'first', entity: '*', message: '*' }, (_event, ctx) => {
        (keys['first'] ??= []).push(ctx.idempotencyKey);
      }),
      on({ name: 'second', entity: '*', message: '*' }, (_event, ctx) => {
        (keys['second'] ??= []).push(ctx.idempotencyKey);
        if (failFirst) {
          failFirst = false;
          throw new Error('once');
        }
      }),
    ]);
    const body = fixture('06-').body;
    await ingest(storage, body);
    await processor(storage, registry).drain();
    // Dataverse sends the same event again: a new eventId, the same delivery.
    const again = await acceptWebhook(
      { method: 'POST', url: FUNCTION_URL, headers: new Headers(dataverseHeaders()), body: async () => body },
      { settings: readIngestSettings({}), storage, log: silentLog },
    );
    expect(again.response.status).toBe(202);
    const [copy] = await drainQueue(storage.eventsQueue);
    await processEnvelope(
      parseEnvelope(copy),
      deps(
        storage,
        registryOf([
          on({ name: 'second', entity: '*', message: '*' }, (_event, ctx) => {
            (keys['second'] ??= []).push(ctx.idempotencyKey);
          }),
        ]),
      ),
    );

    expect(keys['first']).toHaveLength(1);
    expect(keys['second']!.length).toBeGreaterThanOrEqual(2);
    expect(new Set(keys['second'])).toHaveProperty('size', 1);
    expect(keys['first']![0]).not.toBe(keys['second']![0]);
    expect(keys['first']![0]).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });
});

describe('under storage faults', () => {
  let faulty: FaultyStorage;
  let storage: StorageClients;
  beforeEach(async () => {
    faulty = await faultyStorage();
    storage = await isolatedStorage({ connectionString: faulty.connectionString });
  });
  afterEach(() => faulty.close());

  it('a storage blip right after the effect does not repeat it: marking it done is retried, with back-off', async () => {
    let effects = 0;
    const warnings: string[] = [];
    const registry = registryOf([
      on({ name: 'effect', entity: '*', message: '*' }, () => {
        effects++;
        // Table storage goes away for 2 s just as the effect is done.
        faulty.table.down();
        setTimeout(() => faulty.table.up(), 2_000);
      }),
    ]);
    await ingest(storage, fixture('06-').body);
    const [message] = await drainQueue(storage.eventsQueue);
    const log = { ...silentLog, warn: (text: string) => warnings.push(text) };
    const outcome = await processEnvelope(parseEnvelope(message), deps(storage, registry, { log }));
    expect(outcome.status).toBe('processed');
    expect(effects).toBe(1);
    expect(warnings.some((text) => text.startsWith('Could not record the last unit done'))).toBe(true);

    // A redelivery of the message finds the unit done.
    expect((await processEnvelope(parseEnvelope(message), deps(storage, registry, { deliveryCount: 2 }))).status).toBe('duplicate');
    expect(effects).toBe(1);
  });

  it('a 503 whose write reached storage anyway: the event is processed once, and its claim-check blob is kept for it', async () => {
    const effects: DataverseEvent[] = [];
    const registry = registryOf([
      on({ name: 'effect', entity: '*', message: '*' }, (event) => {
        effects.push(event);
      }),
    ]);
    // The queue exists (this is about the answer, not provisioning); its write lands, and its
    // answer comes back after the deadline.
    await storage.eventsQueue.createIfNotExists();
    faulty.queue.delayAnswers(1_500);
    const body = Buffer.from(largeCreateMultiple(300 * 1024));
    const request = { method: 'POST', url: FUNCTION_URL, headers: new Headers(dataverseHeaders()), body: async () => body };
    const settings = { ...readIngestSettings({}), storageDeadlineMs: 800 };
    const first = await acceptWebhook(request, { settings, storage, log: silentLog });
    expect(first.response).toMatchObject({ status: 503, headers: { 'Retry-After': '1' } });
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(await blobNames(storage.payloads)).toEqual([`${first.eventId}.json`]);

    // Dataverse sends it again, and this time the answer comes in time.
    faulty.queue.delayAnswers(0);
    const retry = await acceptWebhook(request, { settings, storage, log: silentLog });
    expect(retry.response.status).toBe(202);

    // One message at a time: two copies of one event side by side may rightly answer `deferred`
    // (the unit is busy), which is not what this test is about.
    const run = processor(storage, registry, { queues: { batchSize: 1, newBatchThreshold: 0 } });
    expect(await run.drain()).toMatchObject({ succeeded: 2, failed: 0, poisoned: 0 });
    expect(effects).toHaveLength(1);
    expect(run.outcomes.map((outcome) => outcome.status).sort()).toEqual(['duplicate', 'processed']);
  });
});

describe('invalid settings', () => {
  it('fail the event with the setting named, and its poison record says so', async () => {
    const storage = await isolatedStorage();
    await ingest(storage, fixture('08-').body);
    const [message] = await drainQueue(storage.eventsQueue);
    const invalid = new SettingsError(['PROCESSOR_LEASE_SECONDS: must be at least host.json functionTimeout (300)']);
    await expect(
      processEnvelope(parseEnvelope(message), deps(storage, registryOf([]), { settings: invalid, deliveryCount: 5 })),
    ).rejects.toBe(invalid);

    const failure = await recordPoisonedMessage(message, { storage, poisonQueue: storage.poisonQueue, log: silentLog });
    expect(failure).toBe('recorded');
    const [record] = await failureStore(storage).list();
    expect(record).toMatchObject({ attempts: 5 });
    expect(record!.error).toContain('(before handlers): SettingsError: Invalid app settings: PROCESSOR_LEASE_SECONDS');
  });
});

describe('the poison queue, which has no poison queue of its own', () => {
  let storage: StorageClients;
  beforeEach(async () => {
    storage = await isolatedStorage();
  });

  /** What the host does after the last failed attempt: the message's text, copied as it is. */
  async function poisonedByHost(message: unknown): Promise<void> {
    await storage.poisonQueue.createIfNotExists();
    await storage.poisonQueue.sendMessage(typeof message === 'string' ? message : encodeQueueMessage(message));
  }

  it('a message its function never recorded is recorded by failures/replay, once, and can be replayed', async () => {
    const eventId = await ingest(storage, fixture('08-').body);
    const [message] = await drainQueue(storage.eventsQueue);
    await poisonedByHost(message);
    // The same event's message twice (the host copied it, and its function recorded it but crashed before the delete).
    await poisonedByHost(message);

    expect(await sweepPoisonQueue({ storage, poisonQueue: storage.poisonQueue, log: silentLog })).toEqual({ recorded: 2, invisible: 0 });
    expect((await failureStore(storage).list()).map((failure) => failure.eventId)).toEqual([eventId]);
    expect(await replayFailures([eventId], { storage })).toEqual([{ eventId, replayed: true }]);
    const [replayed] = await drainQueue(storage.eventsQueue);
    expect(parseEnvelope(replayed)).toMatchObject({ eventId, replays: 1 });

    // An old copy of it turning up after the replay does not list it again.
    await poisonedByHost(message);
    await sweepPoisonQueue({ storage, poisonQueue: storage.poisonQueue, log: silentLog });
    expect(await failureStore(storage).list()).toEqual([]);
  });

  it('a copy poisoned again while it was replayed keeps its new record, message and body: the replay marks nothing', async () => {
    // A claim-check event, so that a copy of its body is kept beside its message too.
    const eventId = await ingest(storage, largeCreateMultiple(300 * 1024));
    const [message] = await drainQueue(storage.eventsQueue);
    await poisonedByHost(message);
    await sweepPoisonQueue({ storage, poisonQueue: storage.poisonQueue, log: silentLog });
    expect(await failureStore(storage).get(eventId)).toMatchObject({ state: 'poisoned', replays: 0 });

    // Between the replay's send and its mark, the replayed copy fails again: the host moves it to
    // the poison queue and its function records it (its record, message and body written anew).
    const eventsQueue = afterEachSend(storage.eventsQueue, async (replayed) => {
      await poisonedByHost(replayed);
      await sweepPoisonQueue({ storage, poisonQueue: storage.poisonQueue, log: silentLog });
    });
    expect(await replayFailures([eventId], { storage: { ...storage, eventsQueue } })).toEqual([
      { eventId, replayed: true, note: REPOISONED_NOTE },
    ]);

    // Still listed, as the second poisoning recorded it, with what a second replay needs.
    expect(await failureStore(storage).list()).toMatchObject([{ eventId, state: 'poisoned', replays: 1 }]);
    expect(parseEnvelope(await failureStore(storage).message(eventId))).toMatchObject({ eventId, replays: 1 });
    expect(await blobNames(storage.payloads)).toContain(`poisoned/${eventId}.body`);
    expect(await replayFailures([eventId], { storage })).toEqual([{ eventId, replayed: true }]);
    expect(parseEnvelope((await drainQueue(storage.eventsQueue))[0])).toMatchObject({ eventId, replays: 2 });
    expect(await failureStore(storage).get(eventId)).toMatchObject({ state: 'replayed', replays: 1 });
    expect((await blobNames(storage.payloads)).filter((name) => name.startsWith('poisoned/'))).toEqual([]);
  });

  it('a message kept anew just as the replay marks its record (a copy poisoned again, half recorded) is not removed', async () => {
    const eventId = await ingest(storage, fixture('08-').body);
    const [message] = await drainQueue(storage.eventsQueue);
    await poisonedByHost(message);
    await sweepPoisonQueue({ storage, poisonQueue: storage.poisonQueue, log: silentLog });
    // The recording of a second poisoning writes the message first, then the record: here, only the message yet.
    const eventsQueue = afterEachSend(storage.eventsQueue, async (replayed) => {
      await storage.payloads.getBlockBlobClient(`poisoned/${eventId}.json`).uploadData(Buffer.from(JSON.stringify(replayed)));
    });
    expect(await replayFailures([eventId], { storage: { ...storage, eventsQueue } })).toEqual([{ eventId, replayed: true }]);
    expect(parseEnvelope(await failureStore(storage).message(eventId))).toMatchObject({ eventId, replays: 1 });
  });

  it('a message that is not an event envelope is listed as unreadable, kept as it came, and replay refuses it with the reason', async () => {
    await poisonedByHost('this is not base64 and not JSON!');
    await sweepPoisonQueue({ storage, poisonQueue: storage.poisonQueue, log: silentLog });
    const [failure] = await failureStore(storage).list();
    expect(failure?.eventId).toMatch(/^unreadable-/);
    expect(await failureStore(storage).message(failure!.eventId)).toBe('this is not base64 and not JSON!');
    const [result] = await replayFailures([failure!.eventId], { storage });
    expect(result).toMatchObject({ replayed: false, reason: expect.stringContaining('not an event envelope') });
  });

  it('when recording fails, a fresh copy waits on the poison queue, with no expiry, and is recorded later', async () => {
    const eventId = await ingest(storage, fixture('08-').body);
    const [message] = await drainQueue(storage.eventsQueue);
    // A failures table that cannot be written (an invalid table name answers 400).
    const broken = {
      ...storage,
      failures: createStorageClients(inject('azuriteConnectionString'), { names: { failuresTable: 'not-a-table-name' } }).failures,
    };
    const outcome = await recordPoisonedMessage(message, {
      storage: broken,
      poisonQueue: storage.poisonQueue,
      log: silentLog,
      requeueDelaySeconds: 0,
    });
    expect(outcome).toBe('requeued');
    expect(await expiries(storage.poisonQueue)).toEqual([NEVER]);
    expect(await failureStore(storage).list()).toEqual([]);

    await sweepPoisonQueue({ storage, poisonQueue: storage.poisonQueue, log: silentLog });
    expect((await failureStore(storage).list()).map((failure) => failure.eventId)).toEqual([eventId]);
  });
});

type EventsQueue = StorageClients['eventsQueue'];

/**
 * The events queue, as replay sees it, where each message sent is at once taken off again and
 * handed to `meanwhile` before the send returns: what happens between a replay's send and its mark.
 */
function afterEachSend(queue: EventsQueue, meanwhile: (taken: unknown) => Promise<void>): EventsQueue {
  return new Proxy(queue, {
    get(target, property, receiver) {
      if (property !== 'sendMessage') return Reflect.get(target, property, receiver);
      return async (...args: Parameters<EventsQueue['sendMessage']>) => {
        const sent = await target.sendMessage(...args);
        const [taken] = await drainQueue(target);
        await meanwhile(taken);
        return sent;
      };
    },
  });
}
