import { readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { TableClient } from '@azure/data-tables';
import { describe, expect, inject, it } from 'vitest';
import { largeCreateMultiple } from '../../src/dataverse/samplePayloads';
import { on } from '../../src/handlerApi';
import { registryOf } from '../../src/handlerApi/load';
import { silentLog } from '../../src/observability/log';
import { recordingTelemetry } from '../../src/observability/telemetry';
import { failureStore, recordPoisoned, replayFailures, resolveFailures } from '../../src/pipeline/failures';
import { applyRetention } from '../../src/pipeline/retention';
import { readRetentionSettings } from '../../src/settings';
import { createStorageClients } from '../../src/storage/clients';
import { watermarkPartition } from '../../src/storage/ledgerTable';
import { sweepTable } from '../../src/storage/retention';
import { faultyStorage, type SeenRequest } from '../support/faultyProxy';
import { fixture } from '../support/fixtures';
import { ingest, processor } from '../support/processing';
import { blobNames, drainQueue, isolatedStorage } from '../support/storage';

const DAY_MS = 24 * 60 * 60 * 1000;
const settings = { retentionMs: DAY_MS };

interface Row {
  partitionKey: string;
  rowKey: string;
  eventId?: string;
}

async function rows(table: TableClient): Promise<Row[]> {
  const found: Row[] = [];
  for await (const entity of table.listEntities<{ eventId?: string }>()) {
    found.push({ partitionKey: entity.partitionKey!, rowKey: entity.rowKey!, ...(entity.eventId ? { eventId: entity.eventId } : {}) });
  }
  return found;
}
const key = (row: Row) => `${row.partitionKey}/${row.rowKey}`;

/** The instant between what a test wrote before and after: storage's Timestamps fall on either side of it. */
async function cutoff(): Promise<number> {
  await sleep(25);
  const at = Date.now();
  await sleep(25);
  return at;
}

/** Old rows written straight into the table, `perPartition` each, in 100-row transactions. */
async function fillTable(table: TableClient, count: number, perPartition: number): Promise<void> {
  await table.createTable();
  const batches: Array<Array<['upsert', { partitionKey: string; rowKey: string; state: string; eventId: string }]>> = [];
  for (let partition = 0; partition * perPartition < count; partition++) {
    const partitionKey = `bulk-${String(partition).padStart(6, '0')}`;
    const size = Math.min(perPartition, count - partition * perPartition);
    for (let start = 0; start < size; start += 100) {
      batches.push(
        Array.from({ length: Math.min(100, size - start) }, (_, index) => [
          'upsert',
          { partitionKey, rowKey: `unit-${start + index}`, state: 'done', eventId: `event-${partition}` },
        ]),
      );
    }
  }
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < batches.length) await table.submitTransaction(batches[next++]!);
    }),
  );
}

describe('retention of the ledger and of settled failures', () => {
  it('removes ledger rows older than the setting, keeps newer ones and what a poisoned event needs, and the replay then skips what succeeded', async () => {
    const storage = await isolatedStorage();
    const ran: string[] = [];
    const succeeds = (name: string) => ({ name, entity: '*', message: '*' }) as const;
    const failing = registryOf([
      on(succeeds('first'), (event) => void ran.push(`first:${event.primaryEntityId}`)),
      on(succeeds('second'), () => {
        throw new Error('down');
      }),
    ]);
    const poisoned = await ingest(storage, fixture('08-').body);
    await processor(storage, failing).drain();
    const [failure] = await failureStore(storage).list();
    expect(failure?.eventId).toBe(poisoned);

    const working = registryOf([
      on(succeeds('first'), (event) => void ran.push(`first:${event.primaryEntityId}`)),
      on(succeeds('second'), () => undefined),
    ]);
    const old = [await ingest(storage, fixture('01-').body), await ingest(storage, fixture('06-').body)];
    await processor(storage, working).drain();
    // Watermarks: one of the poisoned event's record, one of another record.
    const poisonedWatermark = watermarkPartition({ table: failure!.table, id: failure!.recordId });
    await storage.ledger.createEntity({
      partitionKey: poisonedWatermark,
      rowKey: 'first',
      kind: 'versionnumber',
      value: '5',
      eventId: poisoned,
    });
    await storage.ledger.createEntity({
      partitionKey: watermarkPartition({ table: 'contact', id: 'old-record' }),
      rowKey: 'first',
      kind: 'versionnumber',
      value: '5',
      eventId: old[0]!,
    });
    const before = await rows(storage.ledger);
    const poisonedPartitions = new Set([
      ...before.filter((row) => row.eventId === poisoned).map((row) => row.partitionKey),
      poisonedWatermark,
    ]);
    expect(poisonedPartitions.size).toBe(2);
    expect(before.filter((row) => old.includes(row.eventId ?? '')).length).toBeGreaterThanOrEqual(4);

    const at = await cutoff();
    const fresh = await ingest(storage, fixture('03-').body);
    await processor(storage, working).drain();
    const newer = (await rows(storage.ledger)).filter((row) => !before.some((earlier) => key(earlier) === key(row)));
    expect(newer.filter((row) => row.eventId === fresh).length).toBeGreaterThanOrEqual(2);

    const telemetry = recordingTelemetry();
    const report = await applyRetention({ storage, settings, deadline: Infinity, log: silentLog, telemetry, now: () => at + DAY_MS });
    const kept = before.filter((row) => poisonedPartitions.has(row.partitionKey));
    expect(report).toMatchObject({
      complete: true,
      protectedPartitions: 2,
      ledger: { deleted: before.length - kept.length, kept: kept.length, alreadyGone: 0, changed: 0 },
    });
    expect((await rows(storage.ledger)).map(key).sort()).toEqual([...kept, ...newer].map(key).sort());
    expect(telemetry.eventsNamed('retention')).toEqual([
      {
        name: 'retention',
        properties: { status: 'complete' },
        measurements: { deleted: before.length - kept.length, kept: kept.length, alreadyGone: 0, changed: 0, failuresRemoved: 0 },
      },
    ]);

    // The replay finds the unit that had succeeded, so only the failed handler runs again.
    ran.length = 0;
    expect(await replayFailures([poisoned], { storage })).toEqual([{ eventId: poisoned, replayed: true }]);
    await processor(storage, working).drain();
    expect(ran).toEqual([]);
    expect(await failureStore(storage).list()).toEqual([]);
  });

  it('keeps a resolved failure, its message and its ledger rows for the period after it was resolved, then removes them', async () => {
    const storage = await isolatedStorage();
    const failing = registryOf([
      on({ name: 'fails', entity: '*', message: '*' }, () => {
        throw new Error('down');
      }),
    ]);
    const [resolved, replayed] = [await ingest(storage, fixture('08-').body), await ingest(storage, fixture('01-').body)];
    await processor(storage, failing).drain();
    const at = await cutoff();
    expect(await resolveFailures([resolved, 'no-such-event'], { storage, now: () => new Date(at - 1) })).toEqual([
      { eventId: resolved, resolved: true },
      { eventId: 'no-such-event', resolved: false, reason: 'no such poisoned event' },
    ]);
    expect(await resolveFailures([resolved], { storage })).toEqual([{ eventId: resolved, resolved: false, reason: 'already resolved' }]);
    expect(await replayFailures([resolved], { storage })).toEqual([{ eventId: resolved, replayed: false, reason: 'already resolved' }]);
    // Another copy of the same poisoned message (the host's, swept later) does not bring it back.
    expect(await recordPoisoned(await failureStore(storage).message(resolved), { storage, log: silentLog })).toBeNull();
    expect((await failureStore(storage).get(resolved))?.state).toBe('resolved');
    // Replayed after the cutoff: its record stays another period.
    await replayFailures([replayed], { storage, now: () => new Date(at + 1) });
    expect(await blobNames(storage.payloads)).toContain(`poisoned/${resolved}.json`);

    // Not yet a period since it was resolved: everything stays.
    const early = await applyRetention({ storage, settings, deadline: Infinity, log: silentLog, now: () => at - 2 + DAY_MS });
    expect(early.failuresRemoved).toBe(0);
    expect((await failureStore(storage).list({ includeReplayed: true })).map((failure) => failure.eventId).sort()).toEqual(
      [resolved, replayed].sort(),
    );

    const report = await applyRetention({ storage, settings, deadline: Infinity, log: silentLog, now: () => at + DAY_MS });
    expect(report.failuresRemoved).toBe(1);
    // The replayed one's delivery and record, replayed within the period: kept for its replayed copy.
    expect(report.protectedPartitions).toBe(2);
    expect((await failureStore(storage).list({ includeReplayed: true })).map((failure) => failure.eventId)).toEqual([replayed]);
    expect(await blobNames(storage.payloads)).not.toContain(`poisoned/${resolved}.json`);
    expect((await rows(storage.ledger)).filter((row) => row.eventId === resolved)).toEqual([]);
  });

  it("keeps a replayed or resolved event's ledger rows for RETENTION_DAYS after the replay or resolve, though written long before (storage clocks ten days apart)", async () => {
    const storage = await isolatedStorage();
    const week = { retentionMs: 7 * DAY_MS };
    const tenDaysOn = () => Date.now() + 10 * DAY_MS;
    const ran: string[] = [];
    let failing = true;
    const registry = registryOf([
      on({ name: 'first', entity: '*', message: '*' }, () => void ran.push('first')),
      on({ name: 'second', entity: '*', message: '*' }, () => {
        ran.push('second');
        if (failing) throw new Error('down');
      }),
    ]);
    const replayed = await ingest(storage, fixture('08-').body);
    const resolved = await ingest(storage, fixture('01-').body);
    await processor(storage, registry).drain();
    expect((await failureStore(storage).list()).map((failure) => failure.eventId).sort()).toEqual([replayed, resolved].sort());
    const before = (await rows(storage.ledger)).map(key).sort();

    // Ten days on, by the storage clocks of that day, one is replayed (its copy waits on the queue)
    // and the other resolved; the hourly run comes an hour later.
    expect(await replayFailures([replayed], { storage, now: () => new Date(tenDaysOn()) })).toEqual([
      { eventId: replayed, replayed: true },
    ]);
    expect(await resolveFailures([resolved], { storage, now: () => new Date(tenDaysOn()) })).toEqual([
      { eventId: resolved, resolved: true },
    ]);
    const report = await applyRetention({
      storage,
      settings: week,
      deadline: Infinity,
      log: silentLog,
      now: () => tenDaysOn() + 3_600_000,
    });
    expect(report).toMatchObject({ complete: true, protectedPartitions: 4, ledger: { deleted: 0 }, failuresRemoved: 0 });
    expect((await rows(storage.ledger)).map(key).sort()).toEqual(before);

    // The replayed copy runs the handler that failed, and not the one that had succeeded.
    failing = false;
    ran.length = 0;
    await processor(storage, registry).drain();
    expect(ran).toEqual(['second']);

    // A week after the replay and the resolve, everything of both goes.
    const later = await applyRetention({
      storage,
      settings: week,
      deadline: Infinity,
      log: silentLog,
      now: () => tenDaysOn() + 8 * DAY_MS,
    });
    expect(later).toMatchObject({ complete: true, protectedPartitions: 0, failuresRemoved: 2 });
    expect(await rows(storage.ledger)).toEqual([]);
    expect(await blobNames(storage.payloads)).toEqual([]);
  });

  it('never leaves an event poisoned again during the run "poisoned" with nothing to replay: the record goes first, its blobs only if unchanged', async () => {
    const faulty = await faultyStorage();
    try {
      const storage = await isolatedStorage({ connectionString: faulty.connectionString });
      // The same account and names, straight to Azurite: what another instance does meanwhile.
      const elsewhere = createStorageClients(inject('azuriteConnectionString'), { names: storage.names });
      const failing = registryOf([
        on({ name: 'fails', entity: '*', message: '*' }, () => {
          throw new Error('down');
        }),
      ]);
      const eventId = await ingest(storage, fixture('08-').body);
      await processor(storage, failing).drain();
      // Replayed two days ago; its replayed copy is being processed (and will fail again) now.
      expect(await replayFailures([eventId], { storage, now: () => new Date(Date.now() - 2 * DAY_MS) })).toEqual([
        { eventId, replayed: true },
      ]);
      const [replayedCopy] = await drainQueue(storage.eventsQueue);

      // The retention run's first delete waits, unsent, while the replayed copy is poisoned again.
      const deletes = (table: string) => (request: SeenRequest) =>
        request.method === 'DELETE' && (request.path.includes('/poisoned/') || request.path.includes(`/${table}(`));
      const onBlobs = faulty.blob.hold(deletes(storage.failures.tableName));
      const onTables = faulty.table.hold(deletes(storage.failures.tableName));
      const run = applyRetention({ storage, settings, deadline: Infinity, log: silentLog });
      await Promise.race([onBlobs.held, onTables.held]);
      expect(await recordPoisoned(replayedCopy, { storage: elsewhere, log: silentLog })).toMatchObject({ state: 'poisoned', replays: 1 });
      onBlobs.release();
      onTables.release();
      expect((await run).failuresRemoved).toBe(0);

      // Still listed, with its message: the operator can replay it.
      expect((await failureStore(elsewhere).list()).map((failure) => failure.eventId)).toEqual([eventId]);
      expect(await replayFailures([eventId], { storage: elsewhere })).toEqual([{ eventId, replayed: true }]);
    } finally {
      await faulty.close();
    }
  });

  it('removes a kept message whose record is gone (a run stopped between the two), once the period has passed', async () => {
    const storage = await isolatedStorage();
    await storage.payloads.createIfNotExists();
    await storage.payloads.getBlockBlobClient('poisoned/orphan.json').uploadData(Buffer.from('{}'));
    const at = await cutoff();
    // A blob's Last-Modified is to the second.
    await sleep(1_000);
    await storage.payloads.getBlockBlobClient('poisoned/newer.json').uploadData(Buffer.from('{}'));
    await applyRetention({ storage, settings, deadline: Infinity, log: silentLog, now: () => at + DAY_MS });
    expect(await blobNames(storage.payloads)).toEqual(['poisoned/newer.json']);
  });

  it('a poisoned claim-check event outlives the lifecycle rule: its body is kept out of its reach, and the replay puts it back', async () => {
    // The blob names the Bicep lifecycle rule deletes 30 days after their upload (infra/modules/storage.bicep).
    const bicep = readFileSync(path.join(__dirname, '..', '..', 'infra', 'modules', 'storage.bicep'), 'utf8');
    const digits = [...bicep.matchAll(/for digit in \[([^\]]+)\]: '\$\{payloadContainer\}\/\$\{digit\}'/g)].flatMap((match) =>
      match[1]!.split(',').map((digit) => digit.trim().replaceAll("'", '')),
    );
    const lifecycleDeletes = (name: string) => digits.some((digit) => name.startsWith(digit));

    const storage = await isolatedStorage();
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
    const names = await blobNames(storage.payloads);
    expect(names.sort()).toEqual([`${eventId}.json`, `poisoned/${eventId}.body`, `poisoned/${eventId}.json`]);
    expect(names.filter(lifecycleDeletes)).toEqual([`${eventId}.json`]);

    // A month later, the lifecycle rule has taken the claim-check blob; the replay still works.
    for (const name of names.filter(lifecycleDeletes)) await storage.payloads.deleteBlob(name);
    failing = false;
    expect(await replayFailures('all', { storage })).toEqual([{ eventId, replayed: true }]);
    await run.drain();
    expect(seen).toEqual(['CreateMultiple']);
    expect(await blobNames(storage.payloads)).toEqual([]);
  });

  it('two runs at once remove every old row once between them, and neither fails', async () => {
    const storage = await isolatedStorage();
    await fillTable(storage.ledger, 600, 3);
    const at = await cutoff();
    await storage.ledger.createEntity({ partitionKey: 'bulk-000000', rowKey: 'newer', state: 'done', eventId: 'event-0' });
    const run = () => applyRetention({ storage, settings, deadline: Infinity, log: silentLog, now: () => at + DAY_MS, concurrency: 8 });
    const [first, second] = await Promise.all([run(), run()]);
    expect(first.complete && second.complete).toBe(true);
    expect(first.ledger.deleted + second.ledger.deleted).toBe(600);
    expect(first.ledger.changed + second.ledger.changed).toBe(0);
    expect((await rows(storage.ledger)).map(key)).toEqual(['bulk-000000/newer']);
    // A third finds nothing left to do.
    expect((await run()).ledger).toEqual({ deleted: 0, kept: 0, alreadyGone: 0, changed: 0, complete: true });
  });

  it('keeps a row written again after the query saw it (its ETag changed)', async () => {
    const storage = await isolatedStorage();
    await fillTable(storage.ledger, 3, 3);
    const at = await cutoff();
    let rewritten = false;
    const result = await sweepTable(storage.ledger, {
      olderThan: new Date(at),
      deadline: Infinity,
      concurrency: 1,
      // Called as the page is read, before its deletes: a processor takes the unit over meanwhile.
      keepPartition: () => {
        if (!rewritten) {
          rewritten = true;
          void storage.ledger.upsertEntity(
            { partitionKey: 'bulk-000000', rowKey: 'unit-2', state: 'processing', eventId: 'event-0' },
            'Replace',
          );
        }
        return false;
      },
    });
    expect(result).toMatchObject({ deleted: 2, changed: 1, complete: true });
    expect((await rows(storage.ledger)).map(key)).toEqual(['bulk-000000/unit-2']);
  });

  it('an empty account (no table) has nothing to remove', async () => {
    const storage = await isolatedStorage();
    const report = await applyRetention({ storage, settings, deadline: Infinity, log: silentLog });
    expect(report).toEqual({
      ledger: { deleted: 0, kept: 0, alreadyGone: 0, changed: 0, complete: true },
      failuresRemoved: 0,
      protectedPartitions: 0,
      complete: true,
    });
  });

  // 6,000 rows by default keeps the suite's time (Azurite deletes a few hundred rows a second on a
  // busy machine); RETENTION_TEST_ROWS=20000 runs the size. The rate: bench/retention.ts.
  const bulkRows = Number(process.env.RETENTION_TEST_ROWS ?? 6_000);
  it(`clears ${bulkRows} rows in runs that each stop starting work at their deadline`, async () => {
    const storage = await isolatedStorage();
    await fillTable(storage.ledger, bulkRows, 4);
    const at = await cutoff();
    const runs: Array<{ deleted: number; complete: boolean; overrunMs: number }> = [];
    let deleted = 0;
    for (let run = 0; run < 1_000; run++) {
      const started = Date.now();
      // A short budget, so that one run cannot take everything: what the function timeout does at scale.
      const deadline = started + 1_000;
      const report = await applyRetention({ storage, settings, deadline, log: silentLog, now: () => at + DAY_MS });
      runs.push({ deleted: report.ledger.deleted, complete: report.complete, overrunMs: Date.now() - deadline });
      deleted += report.ledger.deleted;
      if (report.complete) break;
    }
    expect(deleted).toBe(bulkRows);
    expect(runs.length).toBeGreaterThan(1);
    expect(runs.at(-1)!.complete).toBe(true);
    expect(runs.slice(0, -1).every((run) => !run.complete && run.deleted > 0)).toBe(true);
    // Work in flight at the deadline is a few deletes per worker, never another page (the function
    // keeps 30 s for it; a busy Azurite takes well under 5).
    expect(Math.max(...runs.map((run) => run.overrunMs))).toBeLessThan(5_000);
    expect(await rows(storage.ledger)).toEqual([]);
  }, 300_000);

  it('RETENTION_DAYS defaults to a week and refuses less than a day', () => {
    expect(readRetentionSettings({}).retentionMs).toBe(7 * DAY_MS);
    expect(readRetentionSettings({ RETENTION_DAYS: '' }).retentionMs).toBe(7 * DAY_MS);
    expect(readRetentionSettings({ RETENTION_DAYS: '30' }).retentionMs).toBe(30 * DAY_MS);
    expect(() => readRetentionSettings({ RETENTION_DAYS: '0.5' })).toThrow(/RETENTION_DAYS: must be at least 1/);
  });
});
