// First: the worker's stand-in takes the function registrations (no test-mode warnings).

import { randomUUID } from 'node:crypto';
import type { HttpResponseInit } from '@azure/functions';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { parseDataverseWebhookOrThrow } from '../../src/dataverse';
import { rawEntity, rawExecutionContext, rawMoney } from '../../src/dataverse/samplePayloads';
import { createWebhookFunction } from '../../src/functions/dataverseWebhook';
import { allow, decide, on, reject } from '../../src/handlerApi';
import { registryOf } from '../../src/handlerApi/load';
import { type RecordingTelemetry, recordingTelemetry } from '../../src/observability/telemetry';
import { deliveryKey } from '../../src/pipeline/deliveryKey';
import { summarize } from '../../src/pipeline/envelope';
import type { HandlerRegistry } from '../../src/pipeline/handlerRegistry';
import { type IngestSettings, readIngestSettings } from '../../src/settings';
import type { StorageClients } from '../../src/storage/clients';
import { type FaultyStorage, faultyStorage } from '../support/faultyProxy';
import { processor } from '../support/processing';
import { dataverseHeaders, invocationContext, webhookRequest } from '../support/requests';
import { drainQueue, isolatedStorage } from '../support/storage';

/**
 * Inline handlers through the real HTTP function (createWebhookFunction, as the host calls
 * dataverseWebhook: a real HttpRequest and InvocationContext) on an empty Azurite account: the
 * answer Dataverse gets for each decision, what is queued, what the ledger keeps (for a save that
 * failed, written after the answer), and what Dataverse's retry of a synchronous step runs again.
 */

/** A synchronous account Create, as a PreValidation step sends it (a new request id each time). */
function accountCreate(creditLimit: number, options: { stage?: number; mode?: number } = {}): string {
  const id = randomUUID();
  return JSON.stringify(
    rawExecutionContext({
      messageName: 'Create',
      entityName: 'account',
      entityId: id,
      stage: options.stage ?? 10,
      mode: options.mode ?? 0,
      inputParameters: { Target: rawEntity('account', id, { name: 'Contoso', creditlimit: rawMoney(creditLimit) }) },
    }),
  );
}

const headers = dataverseHeaders({ 'x-ms-dynamics-entity-name': 'account', 'x-ms-dynamics-request-name': 'Create' });
const bodyOf = (response: HttpResponseInit) => response.jsonBody as Record<string, unknown>;

interface Harness {
  post(body: string): Promise<HttpResponseInit>;
  logs: string[];
}

function webhook(
  storage: StorageClients,
  handlers: HandlerRegistry,
  telemetry: RecordingTelemetry,
  settings: Partial<IngestSettings> = {},
): Harness {
  const logs: string[] = [];
  const receive = createWebhookFunction({
    settings: () => ({ ...readIngestSettings({}), ...settings }),
    storage: () => storage,
    handlers,
    telemetry: () => telemetry,
  });
  return {
    logs,
    post: async (body) => {
      const context = invocationContext();
      try {
        return await receive(webhookRequest(body, { headers }), context.context);
      } finally {
        logs.push(context.text());
      }
    },
  };
}

const keyOf = (body: string) => deliveryKey(summarize(parseDataverseWebhookOrThrow({ body, headers: {} })));
const ledgerRow = async (storage: StorageClients, body: string, unit: string) =>
  storage.ledger.getEntity<Record<string, unknown>>(keyOf(body), unit);
/** A failed save's decisions are written after the answer: wait for the row (never for a time). */
const recordedRow = (storage: StorageClients, body: string, unit: string) =>
  vi.waitFor(() => ledgerRow(storage, body, unit), { timeout: 10_000, interval: 20 });
/** Every ledger row of the delivery (none if the table was never written). */
async function ledgerRows(storage: StorageClients, body: string): Promise<string[]> {
  const rows: string[] = [];
  try {
    for await (const row of storage.ledger.listEntities({ queryOptions: { filter: `PartitionKey eq '${keyOf(body)}'` } }))
      rows.push(row.rowKey ?? '');
  } catch (error) {
    if ((error as { statusCode?: number }).statusCode !== 404) throw error;
  }
  return rows;
}

describe('inline handlers answer Dataverse inside the request', () => {
  let storage: StorageClients;
  let telemetry: RecordingTelemetry;
  beforeEach(async () => {
    storage = await isolatedStorage();
    telemetry = recordingTelemetry();
  });

  it('a rejection is a 422 Dataverse does not retry, queues nothing, and is recorded with its reason and sent to telemetry by its code', async () => {
    const reacted: string[] = [];
    const registry = registryOf([
      decide({ name: 'credit', entity: 'account', message: 'Create', stage: 'PreValidation' }, (_event, ctx) =>
        ctx.attribute('creditlimit') === null
          ? allow()
          : reject('Credit limits above 1,000 need approval from Finance.', { code: 'credit-limit-exceeded' }),
      ),
      on(
        { name: 'react', entity: 'account', message: 'Create', stage: 'PreValidation', mode: 'Synchronous' },
        (event) => void reacted.push(event.primaryEntityId),
      ),
    ]);
    const body = accountCreate(5_000);
    const response = await webhook(storage, registry, telemetry).post(body);

    expect(response.status).toBe(422);
    const answer = bodyOf(response);
    expect(answer).toMatchObject({
      error: 'rejected',
      handler: 'credit',
      code: 'credit-limit-exceeded',
      message: 'Credit limits above 1,000 need approval from Finance.',
    });
    expect(await drainQueue(storage.eventsQueue)).toEqual([]);
    expect(await processor(storage, registry).drain()).toMatchObject({ succeeded: 0 });
    expect(reacted).toEqual([]);

    expect(await recordedRow(storage, body, 'credit')).toMatchObject({
      eventId: answer['eventId'],
      state: 'done',
      decision: 'reject',
      reason: 'Credit limits above 1,000 need approval from Finance.',
      code: 'credit-limit-exceeded',
    });
    const [decided] = telemetry.eventsNamed('decided');
    expect(decided?.properties).toMatchObject({
      eventId: answer['eventId'],
      handler: 'credit',
      status: 'reject',
      reason: 'credit-limit-exceeded',
      table: 'account',
    });
    expect(JSON.stringify(telemetry.events)).not.toContain('Finance');
    const [rejected] = telemetry.eventsNamed('rejected');
    expect(rejected?.properties).toMatchObject({ status: '422', reason: 'decision-rejected' });
    expect(rejected!.measurements['ackLatencyMs']).toBeGreaterThanOrEqual(rejected!.measurements['decisionMs']!);
  });

  it('an allow is a 202 once the event is queued (the one write: nothing in the ledger), the reacting handlers run from the queue, and the inline one is not run again', async () => {
    let decisions = 0;
    const reacted: string[] = [];
    const registry = registryOf([
      decide({ name: 'credit', entity: 'account', message: 'Create', stage: 'PreValidation' }, () => {
        decisions++;
        return allow();
      }),
      on(
        { name: 'erp-sync', entity: 'account', message: 'Create', stage: 'PreValidation', mode: 'Synchronous' },
        (event) => void reacted.push(event.primaryEntityId),
      ),
    ]);
    const body = accountCreate(500);
    const response = await webhook(storage, registry, telemetry).post(body);
    expect(response.status).toBe(202);
    expect(bodyOf(response)).toMatchObject({ status: 'accepted', decisions: [{ handler: 'credit', outcome: 'allow' }] });
    // The answer waited for the enqueue alone: the inline handler claimed and recorded nothing.
    expect(await ledgerRows(storage, body)).toEqual([]);

    const run = processor(storage, registry);
    expect(await run.drain()).toMatchObject({ succeeded: 1, failed: 0 });
    expect(reacted).toEqual([JSON.parse(body).PrimaryEntityId]);
    expect(run.outcomes[0]?.units.map((unit) => unit.handler)).toEqual(['erp-sync']);
    expect(decisions).toBe(1);
    expect(await ledgerRows(storage, body)).not.toContain('credit');
    const [accepted] = telemetry.eventsNamed('accepted');
    expect(accepted!.measurements['ackLatencyMs']).toBeGreaterThanOrEqual(accepted!.measurements['decisionMs']!);
    expect(telemetry.eventsNamed('decided').map((event) => event.properties['status'])).toEqual(['allow']);
  });

  it('an asynchronous event of the same table and message is not decided: nothing waits for it', async () => {
    let decisions = 0;
    const registry = registryOf([
      decide({ name: 'credit', entity: 'account', message: 'Create', stage: 'PostOperation' }, () => {
        decisions++;
        return reject('never');
      }),
    ]);
    const response = await webhook(storage, registry, telemetry).post(accountCreate(5_000, { stage: 40, mode: 1 }));
    expect(response.status).toBe(202);
    expect(decisions).toBe(0);
    expect(await drainQueue(storage.eventsQueue)).toHaveLength(1);
  });

  it('a handler past its time limit has its signal aborted and the request fails with a 500, which Dataverse does not retry; nothing is queued', async () => {
    let signal: AbortSignal | undefined;
    const registry = registryOf([
      decide({ name: 'slow', entity: 'account', message: 'Create', stage: 'PreValidation' }, (_event, ctx) => {
        signal = ctx.signal;
        // Ignores its signal: it is no longer waited for.
        return new Promise<never>(() => undefined);
      }),
    ]);
    const harness = webhook(storage, registry, telemetry, { decisionTimeoutMs: 300 });
    const body = accountCreate(5_000);
    const response = await harness.post(body);
    expect(response.status).toBe(500);
    expect(bodyOf(response)).toMatchObject({
      error: 'decision-timeout',
      handler: 'slow',
      message: 'An inline handler did not decide within 300 ms',
    });
    expect(signal?.aborted).toBe(true);
    expect(await drainQueue(storage.eventsQueue)).toEqual([]);
    expect(await recordedRow(storage, body, 'slow')).toMatchObject({
      state: 'failed',
      lastError: expect.stringContaining('did not decide within its time limit of 300 ms'),
    });
    expect(telemetry.eventsNamed('decided').map((event) => event.properties['status'])).toEqual(['timeout']);
    expect(harness.logs.join('\n')).toContain('Inline handler ran past its time limit; the operation fails');
  });

  it('a handler that throws is run once more at once, in the request, as attempt 2 with the same idempotency key: a blip costs no failed save', async () => {
    const calls: Array<{ deliveryCount: number; idempotencyKey: string }> = [];
    const registry = registryOf([
      decide({ name: 'erp', entity: 'account', message: 'Create', stage: 'PreOperation' }, (_event, ctx) => {
        calls.push({ deliveryCount: ctx.deliveryCount, idempotencyKey: ctx.idempotencyKey });
        if (calls.length === 1) throw new Error('ERP answered 502');
        return allow();
      }),
    ]);
    const harness = webhook(storage, registry, telemetry);
    const body = accountCreate(5_000, { stage: 20 });
    const response = await harness.post(body);
    expect(response.status).toBe(202);
    expect(calls.map((call) => call.deliveryCount)).toEqual([1, 2]);
    expect(new Set(calls.map((call) => call.idempotencyKey)).size).toBe(1);
    expect(await drainQueue(storage.eventsQueue)).toHaveLength(1);
    expect(telemetry.eventsNamed('decided').map((event) => event.properties['status'])).toEqual(['error', 'allow']);
    expect(harness.logs.join('\n')).toContain('running it once more at once, as attempt 2');
  });

  it('a handler that throws twice fails the save with a 500, which Dataverse does not retry: it never runs a third time; nothing is queued', async () => {
    const calls: number[] = [];
    const registry = registryOf([
      decide({ name: 'erp', entity: 'account', message: 'Create', stage: 'PreOperation' }, (_event, ctx) => {
        calls.push(ctx.deliveryCount);
        throw new Error('ERP answered 502');
      }),
    ]);
    const harness = webhook(storage, registry, telemetry);
    const body = accountCreate(5_000, { stage: 20 });
    const response = await harness.post(body);
    expect(response.status).toBe(500);
    expect(bodyOf(response)).toMatchObject({ error: 'decision-failed', handler: 'erp' });
    expect(JSON.stringify(response.jsonBody)).not.toContain('ERP answered');
    expect(calls).toEqual([1, 2]);
    expect(await drainQueue(storage.eventsQueue)).toEqual([]);
    expect(await recordedRow(storage, body, 'erp')).toMatchObject({
      state: 'failed',
      attempts: 2,
      lastError: expect.stringContaining('ERP answered 502'),
    });
  });

  it('a second copy of a delivery (Dataverse sends one only after a 502/503/504) runs the inline handler again with the same idempotency key, and the event is processed once', async () => {
    const keys: string[] = [];
    const reacted: string[] = [];
    const registry = registryOf([
      decide({ name: 'credit', entity: 'account', message: 'Create', stage: 'PreValidation' }, (_event, ctx) => {
        keys.push(ctx.idempotencyKey);
        return allow();
      }),
      on(
        { name: 'erp-sync', entity: 'account', message: 'Create', stage: 'PreValidation', mode: 'Synchronous' },
        (event) => void reacted.push(event.primaryEntityId),
      ),
    ]);
    const harness = webhook(storage, registry, telemetry);
    const body = accountCreate(500);
    expect((await harness.post(body)).status).toBe(202);
    expect((await harness.post(body)).status).toBe(202);
    expect(keys).toHaveLength(2);
    expect(new Set(keys).size).toBe(1);
    expect(await processor(storage, registry).drain()).toMatchObject({ succeeded: 2, failed: 0 });
    expect(reacted).toHaveLength(1);
  });

  it('inline handlers run in registration order and the first rejection ends the request: the ones after it do not run', async () => {
    const ran: string[] = [];
    const registry = registryOf([
      decide({ name: 'first', entity: 'account', message: 'Create', stage: 'PreValidation' }, () => {
        ran.push('first');
        return allow();
      }),
      decide({ name: 'second', entity: 'account', message: 'Create', stage: 'PreValidation' }, () => {
        ran.push('second');
        return reject('No');
      }),
      decide({ name: 'third', entity: 'account', message: 'Create', stage: 'PreValidation' }, () => {
        ran.push('third');
        return allow();
      }),
    ]);
    const body = accountCreate(1);
    const response = await webhook(storage, registry, telemetry).post(body);
    expect(response.status).toBe(422);
    expect(bodyOf(response)).toMatchObject({
      handler: 'second',
      decisions: [
        { handler: 'first', outcome: 'allow' },
        { handler: 'second', outcome: 'reject' },
      ],
    });
    expect(ran).toEqual(['first', 'second']);
    // The save failed: what each handler decided is kept for inspection, the allow too.
    expect(await recordedRow(storage, body, 'second')).toMatchObject({ state: 'done', decision: 'reject', reason: 'No' });
    expect(await recordedRow(storage, body, 'first')).toMatchObject({ state: 'done', decision: 'allow' });
  });

  it('a handler that returns no decision (JavaScript, or a cast) fails closed: 500 at once (a bug, not a blip: not run again), never an implied allow', async () => {
    let runs = 0;
    const registry = registryOf([
      decide({ name: 'forgot', entity: 'account', message: 'Create', stage: 'PreValidation' }, (() => void runs++) as never),
    ]);
    const harness = webhook(storage, registry, telemetry);
    const response = await harness.post(accountCreate(1));
    expect(response.status).toBe(500);
    expect(runs).toBe(1);
    expect(await drainQueue(storage.eventsQueue)).toEqual([]);
    expect(harness.logs.join('\n')).toContain('inline handler forgot returned no decision: return allow() or reject(reason)');
  });
});

describe('inline handlers when storage fails', () => {
  let faulty: FaultyStorage;
  let storage: StorageClients;
  beforeEach(async () => {
    faulty = await faultyStorage();
    storage = await isolatedStorage({ connectionString: faulty.connectionString });
  });
  afterEach(() => faulty.close());

  it('Dataverse’s retry after a 503 (the enqueue failed after the allow) runs the inline handler again with the same idempotency key, and the event is processed once', async () => {
    const effects: string[] = [];
    const reacted: string[] = [];
    const registry = registryOf([
      decide({ name: 'erp-customer', entity: 'account', message: 'Create', stage: 'PreValidation' }, (_event, ctx) => {
        effects.push(ctx.idempotencyKey);
        return allow();
      }),
      on(
        { name: 'notify', entity: 'account', message: 'Create', stage: 'PreValidation', mode: 'Synchronous' },
        (event) => void reacted.push(event.primaryEntityId),
      ),
    ]);
    const telemetry = recordingTelemetry();
    const harness = webhook(storage, registry, telemetry, { storageDeadlineMs: 2_000 });
    const body = accountCreate(500);

    // The queue service is unreachable; the ledger is not.
    faulty.queue.down('reset');
    const first = await harness.post(body);
    expect(first).toMatchObject({ status: 503, headers: { 'Retry-After': '1' } });
    expect(bodyOf(first)).toMatchObject({ error: 'storage-unavailable' });
    expect(effects).toHaveLength(1);

    faulty.queue.up();
    const retry = await harness.post(body);
    expect(retry.status).toBe(202);
    expect(bodyOf(retry)).toMatchObject({ decisions: [{ handler: 'erp-customer', outcome: 'allow' }] });
    // Nothing in the retry tells it from a first delivery without a storage read before every
    // save: the handler runs again, with the key that makes its second call a no-op where it calls.
    expect(effects).toHaveLength(2);
    expect(new Set(effects).size).toBe(1);

    expect(await processor(storage, registry).drain()).toMatchObject({ succeeded: 1, failed: 0 });
    expect(reacted).toHaveLength(1);
  });

  it('a ledger that cannot be reached is not on the way of a save: an allow is a 202 and a rejection a 422, its record given up', async () => {
    const registry = registryOf([
      decide({ name: 'credit', entity: 'account', message: 'Create', stage: 'PreValidation' }, (_event, ctx) => {
        const limit = ctx.attribute('creditlimit') as { value: number } | undefined;
        return limit === undefined || limit.value <= 1_000 ? allow() : reject('Too high', { code: 'too-high' });
      }),
    ]);
    faulty.table.down('hang');
    const harness = webhook(storage, registry, recordingTelemetry(), { storageDeadlineMs: 500 });
    expect((await harness.post(accountCreate(1))).status).toBe(202);
    expect((await harness.post(accountCreate(5_000))).status).toBe(422);
    expect(await drainQueue(storage.eventsQueue)).toHaveLength(1);
  });
});
