import { randomUUID } from 'node:crypto';
import { beforeEach, describe, expect, it } from 'vitest';
import type { DataverseEvent } from '../../src/dataverse';
import { createMultipleOfAccounts, largeCreateMultiple, rawEntity, rawExecutionContext } from '../../src/dataverse/samplePayloads';
import { on } from '../../src/handlerApi';
import { registryOf } from '../../src/handlerApi/load';
import { silentLog } from '../../src/observability/log';
import { parseEnvelope } from '../../src/pipeline/envelope';
import { failureStore, replayFailures } from '../../src/pipeline/failures';
import { SERVICE_CLOCK_MARGIN_MS } from '../../src/pipeline/ledger/ledger';
import { processEnvelope } from '../../src/pipeline/process';
import { readProcessSettings } from '../../src/settings';
import type { StorageClients } from '../../src/storage/clients';
import { sendQueueMessage } from '../../src/storage/queueMessages';
import { allRealPayloads, fixture, truncatedDocsSample } from '../support/fixtures';
import { ingest, processor } from '../support/processing';
import { dataverseHeaders } from '../support/requests';
import { blobNames, drainQueue, isolatedStorage } from '../support/storage';

/** A handler whose effect is a list entry, so tests can count effects. */
function recordingRegistry(filter = { entity: '*', message: '*' }) {
  const effects: Array<{ eventId: string; event: DataverseEvent; deliveryCount: number; recordId: string | null }> = [];
  const registry = registryOf([
    on({ ...filter, name: 'record' }, (event, ctx) => {
      effects.push({ eventId: ctx.eventId, event, deliveryCount: ctx.deliveryCount, recordId: ctx.record?.id ?? null });
    }),
  ]);
  return { registry, effects };
}

function contactUpdate(
  options: { id?: string; versionnumber?: number; depth?: number; correlationId?: string; firstname?: string } = {},
): string {
  const id = options.id ?? randomUUID();
  return JSON.stringify(
    rawExecutionContext({
      messageName: 'Update',
      entityName: 'contact',
      entityId: id,
      mode: 1,
      depth: options.depth ?? 1,
      correlationId: options.correlationId ?? randomUUID(),
      inputParameters: {
        Target: rawEntity('contact', id, {
          contactid: id,
          firstname: options.firstname ?? 'Jim',
          versionnumber: options.versionnumber ?? 1000,
        }),
      },
      preEntityImages: { PreImage: rawEntity('contact', id, { contactid: id, firstname: 'James', lastname: 'Glynn' }) },
    }),
  );
}

describe('processing, from the HTTP handler through the real queue to a handler', () => {
  let storage: StorageClients;
  beforeEach(async () => {
    storage = await isolatedStorage();
  });

  it('every real payload reaches its handler once, as the event the HTTP handler accepted', async () => {
    const { registry, effects } = recordingRegistry();
    const eventIds: string[] = [];
    for (const payload of allRealPayloads()) eventIds.push(await ingest(storage, payload.body));
    const run = processor(storage, registry);
    expect(await run.drain()).toEqual({ succeeded: 5, failed: 0, poisoned: 0 });
    expect(effects.map((effect) => effect.eventId).sort()).toEqual([...eventIds].sort());
    const byTable = Object.fromEntries(effects.map((effect) => [effect.event.primaryEntityName, effect.event]));
    expect(byTable['msdyn_agentstatus']).toMatchObject({ messageName: 'Update', mode: 'Asynchronous', stageName: 'PostOperation' });
    expect(byTable['shko_allfields']?.target).toMatchObject({ $type: 'Entity', logicalName: 'shko_allfields' });
    expect(byTable['contact']?.correlationId).toBe('b374239d-4233-41a9-8b17-a86cb4f737b5');
    expect(effects.every((effect) => effect.deliveryCount === 1)).toBe(true);
    expect(run.outcomes.map((outcome) => outcome.status)).toEqual(Array(5).fill('processed'));
  });

  it('the same event POSTed twice (a Dataverse retry) and redelivered by the queue has one effect', async () => {
    const { registry, effects } = recordingRegistry();
    const body = fixture('06-').body;
    const run = processor(storage, registry);
    await ingest(storage, body);
    await run.drain();
    await ingest(storage, body);
    await run.drain();
    expect(effects).toHaveLength(1);
    expect(run.outcomes.map((outcome) => outcome.status)).toEqual(['processed', 'duplicate']);

    // The queue delivers the first message again after it was handled.
    await ingest(storage, body);
    const [message] = await drainQueue(storage.eventsQueue);
    const again = await processEnvelope(parseEnvelope(message), {
      storage,
      handlers: registry,
      settings: readProcessSettings({}),
      log: silentLog,
      deliveryCount: 2,
    });
    expect(again.status).toBe('duplicate');
    expect(effects).toHaveLength(1);
  });

  it('a handler that throws is retried, poisoned, listed, replayed and then succeeds once', async () => {
    let failing = true;
    const effects: number[] = [];
    const registry = registryOf([
      on({ name: 'flaky', entity: 'account', message: 'Update' }, (_event, ctx) => {
        if (failing) throw new Error(`downstream unavailable (delivery ${ctx.deliveryCount})`);
        effects.push(ctx.deliveryCount);
      }),
    ]);
    const eventId = await ingest(storage, fixture('08-').body);
    const run = processor(storage, registry);
    expect(await run.drain()).toEqual({ succeeded: 0, failed: 3, poisoned: 1 });
    expect(effects).toEqual([]);

    const [failure, ...others] = await failureStore(storage).list();
    expect(others).toEqual([]);
    expect(failure).toMatchObject({
      eventId,
      table: 'account',
      message: 'Update',
      attempts: 3,
      state: 'poisoned',
      recordId: 'ec4e2f7d-9d60-e811-a95a-000d3af24950',
    });
    expect(failure!.error).toContain('flaky: Error: downstream unavailable (delivery 3)');

    failing = false;
    expect(await replayFailures([eventId], { storage })).toEqual([{ eventId, replayed: true }]);
    expect(await run.drain()).toEqual({ succeeded: 1, failed: 0, poisoned: 0 });
    expect(effects).toEqual([1]);
    expect(await failureStore(storage).list()).toEqual([]);
    expect(await replayFailures([eventId, 'nope'], { storage })).toEqual([
      { eventId, replayed: false, reason: 'already replayed' },
      { eventId: 'nope', replayed: false, reason: 'no such poisoned event' },
    ]);
  });

  it('two processors racing on one event produce one effect; the loser defers its copy', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let effects = 0;
    const registry = registryOf([
      on({ name: 'slow', entity: '*', message: '*' }, async () => {
        effects++;
        await gate;
      }),
    ]);
    await ingest(storage, fixture('01-').body);
    const [message] = await drainQueue(storage.eventsQueue);
    const settings = { ...readProcessSettings({}), leaseMs: 2_000, deferJitterMs: 0 };
    const deps = { storage, handlers: registry, settings, log: silentLog, deliveryCount: 1 };
    const first = processEnvelope(parseEnvelope(message), deps);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const second = await processEnvelope(parseEnvelope(message), deps);
    release();
    expect((await first).status).toBe('processed');
    expect(second.status).toBe('deferred');
    expect(effects).toBe(1);

    // The deferred copy becomes visible after the lease (and the service clock's margin) and is then a duplicate.
    const run = processor(storage, registry);
    await new Promise((resolve) => setTimeout(resolve, settings.leaseMs + SERVICE_CLOCK_MARGIN_MS + 100));
    await run.drain();
    expect(run.outcomes.map((outcome) => outcome.status)).toEqual(['duplicate']);
    expect(effects).toBe(1);
  });

  it('a truncated event reaches its handler flagged, with what was removed', async () => {
    const { registry, effects } = recordingRegistry();
    await ingest(storage, truncatedDocsSample(), dataverseHeaders({ 'x-ms-dynamics-msg-size-exceeded': 'true' }));
    await processor(storage, registry).drain();
    expect(effects).toHaveLength(1);
    expect(effects[0]!.event).toMatchObject({ truncated: true, target: null });
    expect(effects[0]!.event.removedProperties).toEqual(['ParentContext', 'InputParameters', 'PreEntityImages', 'PostEntityImages']);
  });

  it('a claim-check event is handled and its blob deleted once done', async () => {
    const { registry, effects } = recordingRegistry();
    await ingest(storage, largeCreateMultiple(300 * 1024));
    expect(await blobNames(storage.payloads)).toHaveLength(1);
    await processor(storage, registry).drain();
    expect(effects).toHaveLength(1);
    expect(effects[0]!.event.messageName).toBe('CreateMultiple');
    expect(await blobNames(storage.payloads)).toEqual([]);
  });

  it('a redelivered claim-check message whose blob is gone is a duplicate once its event is settled, an error before', async () => {
    const { registry, effects } = recordingRegistry();
    await ingest(storage, largeCreateMultiple(300 * 1024));
    const [message] = await drainQueue(storage.eventsQueue);
    const deps = { storage, handlers: registry, settings: readProcessSettings({}), log: silentLog, deliveryCount: 1 };
    expect((await processEnvelope(parseEnvelope(message), deps)).status).toBe('processed');
    expect((await processEnvelope(parseEnvelope(message), { ...deps, deliveryCount: 2 })).status).toBe('duplicate');
    expect(effects).toHaveLength(1);

    await ingest(storage, largeCreateMultiple(300 * 1024));
    const [unsettled] = await drainQueue(storage.eventsQueue);
    const envelope = parseEnvelope(unsettled);
    await storage.payloads.deleteBlob(`${envelope.eventId}.json`);
    await expect(processEnvelope(envelope, deps)).rejects.toMatchObject({ statusCode: 404 });
  });

  it('a poisoned claim-check event keeps its blob, and its replay rebuilds the body', async () => {
    let failing = true;
    const seen: string[] = [];
    const registry = registryOf([
      on({ name: 'bulk', entity: 'account', message: 'CreateMultiple' }, (event) => {
        if (failing) throw new Error('not yet');
        seen.push(event.messageName);
      }),
    ]);
    const eventId = await ingest(storage, largeCreateMultiple(300 * 1024));
    const run = processor(storage, registry);
    await run.drain();
    expect(await blobNames(storage.payloads)).toEqual(expect.arrayContaining([`${eventId}.json`, `poisoned/${eventId}.json`]));
    failing = false;
    await replayFailures('all', { storage });
    await run.drain();
    expect(seen).toEqual(['CreateMultiple']);
    expect(await blobNames(storage.payloads)).toEqual([]);
  });

  it('events no handler matches are acknowledged and counted as unhandled', async () => {
    const { registry, effects } = recordingRegistry({ entity: 'lead', message: 'Create' });
    await ingest(storage, fixture('03-').body);
    const run = processor(storage, registry);
    expect(await run.drain()).toMatchObject({ succeeded: 1, failed: 0 });
    expect(effects).toEqual([]);
    expect(run.outcomes[0]?.status).toBe('unhandled');
  });

  it('an event deeper than PROCESSOR_MAX_DEPTH is recorded and not handled', async () => {
    const { registry, effects } = recordingRegistry();
    await ingest(storage, contactUpdate({ depth: 3 }));
    const run = processor(storage, registry, { settings: { maxDepth: 2 } });
    await run.drain();
    expect(effects).toEqual([]);
    expect(run.outcomes[0]?.status).toBe('depth-exceeded');
  });

  it('skipStale: an older Update arriving after a newer one is skipped, and the outcome says so', async () => {
    const seen: unknown[] = [];
    const registry = registryOf([
      on({ name: 'latest-name', entity: 'contact', message: 'Update', skipStale: true }, (_event, ctx) => {
        seen.push(ctx.attribute('firstname'));
      }),
    ]);
    const id = randomUUID();
    await ingest(storage, contactUpdate({ id, versionnumber: 2000, firstname: 'Newer' }));
    const run = processor(storage, registry);
    await run.drain();
    await ingest(storage, contactUpdate({ id, versionnumber: 1500, firstname: 'Older' }));
    await ingest(storage, contactUpdate({ id: randomUUID(), versionnumber: 10, firstname: 'Other record' }));
    await run.drain();
    expect(seen).toEqual(['Newer', 'Other record']);
    expect(run.outcomes.map((outcome) => outcome.units.map((unit) => unit.result))).toEqual([['done'], ['stale'], ['done']]);
  });

  it('perRecord: CreateMultiple is handled per record, and a retry does not repeat the records already done', async () => {
    const calls: string[] = [];
    let failOn: string | null = '00000000-0000-4000-8000-000000000002';
    const registry = registryOf([
      on({ name: 'per-account', entity: 'account', message: 'CreateMultiple', perRecord: true }, (_event, ctx) => {
        const id = ctx.record!.id;
        if (id === failOn) {
          failOn = null;
          throw new Error('transient');
        }
        calls.push(id.slice(-1));
      }),
    ]);
    const body = JSON.stringify(createMultipleOfAccounts(4));
    await ingest(storage, body);
    const run = processor(storage, registry);
    expect(await run.drain()).toEqual({ succeeded: 1, failed: 1, poisoned: 0 });
    // Records 0 and 1 ran once; 2 failed, then ran on the retry with 3.
    expect(calls).toEqual(['0', '1', '2', '3']);
    expect(run.outcomes[0]?.units.map((unit) => unit.result)).toEqual(['duplicate', 'duplicate', 'done', 'done']);
  });

  it('a queue message that is not an envelope ends in the failures list, kept as it came', async () => {
    await sendQueueMessage(storage.eventsQueue, { hello: 'world' });
    const run = processor(storage, registryOf([]));
    expect(await run.drain()).toEqual({ succeeded: 0, failed: 3, poisoned: 1 });
    const [failure] = await failureStore(storage).list();
    expect(failure?.eventId).toMatch(/^unreadable-/);
    expect(failure?.error).toContain('not an event envelope');
    expect(JSON.parse(await failureStore(storage).message(failure!.eventId))).toEqual({ hello: 'world' });
  });
});
