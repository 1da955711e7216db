import { readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { TableClient } from '@azure/data-tables';
import { describe, expect, it } from 'vitest';
import { largeCreateMultiple } from '../../src/dataverse/samplePayloads';
import { silentLog } from '../../src/observability/log';
import { recordingTelemetry } from '../../src/observability/telemetry';
import { failureStore, recordPoisoned, replayFailures, resolveFailures } from '../../src/pipeline/failures';
import { HandlerRegistry } from '../../src/pipeline/handlerRegistry';
import { applyRetention } from '../../src/pipeline/retention';
import { readRetentionSettings } from '../../src/settings';
import { watermarkPartition } from '../../src/storage/ledgerTable';
import { sweepTable } from '../../src/storage/retention';
import { fixture } from '../support/fixtures';
import { ingest, processor } from '../support/processing';
import { blobNames, isolatedStorage } from '../support/storage';

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
    const failing = new HandlerRegistry()
      .on(succeeds('first'), (event) => void ran.push(`first:${event.primaryEntityId}`))
      .on(succeeds('second'), () => {
        throw new Error('down');
      });
    const poisoned = await ingest(storage, fixture('08-').body);
    await processor(storage, failing).drain();
    const [failure] = await failureStore(storage).list();
    expect(failure?.eventId).toBe(poisoned);

    const working = new HandlerRegistry()
      .on(succeeds('first'), (event) => void ran.push(`first:${event.primaryEntityId}`))
      .on(succeeds('second'), () => undefined);
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
    const failing = new HandlerRegistry().on({ name: 'fails', entity: '*', message: '*' }, () => {
      throw new Error('down');
    });
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
    expect(report.protectedPartitions).toBe(0);
    expect((await failureStore(storage).list({ includeReplayed: true })).map((failure) => failure.eventId)).toEqual([replayed]);
    expect(await blobNames(storage.payloads)).not.toContain(`poisoned/${resolved}.json`);
    expect((await rows(storage.ledger)).filter((row) => row.eventId === resolved)).toEqual([]);
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
    const registry = new HandlerRegistry().on({ name: 'bulk', entity: 'account', message: 'CreateMultiple' }, (event) => {
      if (failing) throw new Error('not yet');
      seen.push(event.messageName);
    });
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
