import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { largeCreateMultiple } from '../../../src/dataverse/samplePayloads';
import { on } from '../../../src/handlerApi';
import { registryOf } from '../../../src/handlerApi/load';
import { failureStore } from '../../../src/pipeline/failures';
import type { StorageClients } from '../../../src/storage/clients';
import { type FaultyStorage, faultyStorage, type SeenRequest } from '../../support/faultyProxy';
import { fixtureContext } from '../../support/fixtures';
import { ingest, processor } from '../../support/processing';
import { drainQueue, isolatedStorage } from '../../support/storage';

/**
 * Writes that land while their reply is lost (issue 26, 1), with real bytes: a proxy in front of
 * Azurite lets a third of the ledger's writes reach storage and be answered there, then cuts the
 * connection instead of passing the answer. The storage SDK's own retry policy sends the same
 * request again (@azure/core-rest-pipeline retries a connection reset: azure-sdk-for-js
 * sdk/core/ts-http-runtime/src/retryStrategies/exponentialRetryStrategy.ts, `isSystemError`), and
 * the retry meets what the first try wrote: 409 for the claim's insert, 412 for a renewal or a
 * done-mark conditioned on the ETag the row had before.
 */

/** The kind of ledger write a request is: what the SDK sends for each (data-tables 13, Table REST API). */
function writeKind(request: SeenRequest, table: string): 'insert' | 'merge' | 'replace' | 'transaction' | null {
  if (request.method === 'POST' && request.path.includes('/$batch')) return 'transaction';
  if (!request.path.includes(`/${table}`)) return null;
  if (request.method === 'POST') return 'insert';
  if (request.method === 'PATCH' || request.method === 'MERGE') return 'merge';
  if (request.method === 'PUT') return 'replace';
  return null;
}

/**
 * Every third write of each kind (the first included) has its reply dropped; a retry of a dropped
 * request (the same client request id) goes through, as a lost reply is a rare, independent fault.
 */
function everyThirdLedgerWrite(table: string): (request: SeenRequest) => boolean {
  const counts = new Map<string, number>();
  const dropped = new Set<string>();
  return (request) => {
    const kind = writeKind(request, table);
    if (!kind || (request.clientRequestId && dropped.has(request.clientRequestId))) return false;
    const count = counts.get(kind) ?? 0;
    counts.set(kind, count + 1);
    if (count % 3 !== 0) return false;
    if (request.clientRequestId) dropped.add(request.clientRequestId);
    return true;
  };
}

describe('ledger writes whose replies are lost', () => {
  let faulty: FaultyStorage;
  let storage: StorageClients;
  beforeEach(async () => {
    faulty = await faultyStorage();
    // Production's SDK retries (src/storage/clients.ts: 3 tries).
    storage = await isolatedStorage({ connectionString: faulty.connectionString, retry: { maxTries: 3, tryTimeoutMs: 5_000 } });
  });
  afterEach(() => faulty.close());

  it('with a third of them dropped under handlers that renew their lease, every event has its effect once, in one run, and nothing fails', async () => {
    const leaseMs = 4_000;
    const runMs = 3_000;
    const runs = new Map<string, Array<{ start: number; end: number; aborted: boolean }>>();
    const effects = new Map<string, number>();
    const slow = on({ name: 'slow-effect', entity: '*', message: '*' }, async (event, ctx) => {
      const run = { start: performance.now(), end: Number.NaN, aborted: false };
      const key = event.correlationId;
      runs.set(key, [...(runs.get(key) ?? []), run]);
      try {
        // Long enough for two renewals of its lease; it stops when told to, as a handler should.
        await sleep(runMs, undefined, { signal: ctx.signal });
        effects.set(key, (effects.get(key) ?? 0) + 1);
      } catch (error) {
        run.aborted = true;
        throw error;
      } finally {
        run.end = performance.now();
      }
    });
    const events = 6;
    const keys: string[] = [];
    for (let i = 0; i < events; i++) {
      const key = randomUUID();
      keys.push(key);
      // One of them travels by claim check: its done-mark is a transaction with the `$event` row.
      const context = i === 0 ? (JSON.parse(largeCreateMultiple(300 * 1024)) as Record<string, unknown>) : fixtureContext('06-');
      await ingest(storage, JSON.stringify({ ...context, CorrelationId: key, OperationId: randomUUID(), RequestId: randomUUID() }));
    }

    faulty.table.dropReplies(everyThirdLedgerWrite(storage.ledger.tableName));
    const run = processor(storage, registryOf([slow]), { settings: { leaseMs, deferJitterMs: 0 } });
    const deadline = Date.now() + 60_000;
    while (keys.some((key) => !effects.has(key)) && Date.now() < deadline) {
      await run.drain();
      await sleep(200);
    }
    faulty.table.dropReplies(null);

    const kinds = new Set(faulty.table.dropped.map((request) => writeKind(request, storage.ledger.tableName)));
    expect([...kinds].sort()).toEqual(['insert', 'merge', 'replace', 'transaction']);
    expect(faulty.table.dropped.length).toBeGreaterThanOrEqual(8);

    expect(Object.fromEntries(keys.map((key) => [key, effects.get(key) ?? 0]))).toEqual(Object.fromEntries(keys.map((key) => [key, 1])));
    for (const key of keys) {
      const spans = (runs.get(key) ?? []).sort((a, b) => a.start - b.start);
      for (let i = 1; i < spans.length; i++) expect(spans[i]!.start).toBeGreaterThanOrEqual(spans[i - 1]!.end);
    }
    // Each handler ran once, to its end: no lost reply was taken for a lost lease.
    expect(keys.map((key) => (runs.get(key) ?? []).map((span) => span.aborted))).toEqual(keys.map(() => [false]));
    // One delivery of each message, processed: no copy was deferred, failed or poisoned.
    expect(run.outcomes.map((outcome) => outcome.status)).toEqual(keys.map(() => 'processed'));
    expect(await drainQueue(storage.poisonQueue)).toEqual([]);
    expect(await failureStore(storage).list()).toEqual([]);
  }, 90_000);
});
