import { randomBytes } from 'node:crypto';
import type { TableClient } from '@azure/data-tables';
import { startAzurite } from '../devhost/azurite';
import { silentLog } from '../src/observability/log';
import { applyRetention } from '../src/pipeline/retention';
import { createStorageClients, type StorageClients } from '../src/storage/clients';
import { median, millis } from './stats';

/**
 * Retention: rows per second the applyRetention run removes from a ledger of old rows (its query by
 * Timestamp, the poisoned events' protection, the ETag-conditioned deletes) against Azurite alone
 * deleting the same rows by their keys with the same concurrency, in the same run.
 *
 * Run on its own: `npm run build && tsc -p bench && node dist/bench/retention.js [rows]` (default 20000).
 * To be part of `npm run bench`, bench/run.ts would print `await benchRetention()` the same way.
 */

export interface RetentionFigure {
  rows: number;
  rowsPerPartition: number;
  baselinePerSecond: number;
  retentionPerSecond: number;
  ratio: number;
}

const CONCURRENCY = 32;
const ROWS_PER_PARTITION = 4;

async function fill(table: TableClient, rows: number): Promise<Array<{ partitionKey: string; rowKey: string }>> {
  await table.createTable();
  const keys: Array<{ partitionKey: string; rowKey: string }> = [];
  const batches: Array<Array<['upsert', { partitionKey: string; rowKey: string; state: string; eventId: string; attempts: number }]>> = [];
  for (let partition = 0; partition * ROWS_PER_PARTITION < rows; partition++) {
    // A delivery key as the ledger has them: a SHA-256 in hex.
    const partitionKey = randomBytes(32).toString('hex');
    const batch: (typeof batches)[number] = [];
    for (let unit = 0; unit < Math.min(ROWS_PER_PARTITION, rows - partition * ROWS_PER_PARTITION); unit++) {
      const rowKey = unit === 0 ? '$event' : `handler-${unit}`;
      keys.push({ partitionKey, rowKey });
      batch.push(['upsert', { partitionKey, rowKey, state: 'done', eventId: `event-${partition}`, attempts: 1 }]);
    }
    batches.push(batch);
  }
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < batches.length) await table.submitTransaction(batches[next++]!);
    }),
  );
  return keys;
}

async function deleteByKeys(table: TableClient, keys: Array<{ partitionKey: string; rowKey: string }>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < keys.length) {
        const key = keys[next++]!;
        await table.deleteEntity(key.partitionKey, key.rowKey);
      }
    }),
  );
}

function storageOn(connectionString: string): StorageClients {
  const suffix = randomBytes(4).toString('hex');
  return createStorageClients(connectionString, {
    names: { ledgerTable: `Ledger${suffix}`, failuresTable: `Failures${suffix}`, payloadContainer: `payloads-${suffix}` },
  });
}

export async function benchRetention(rows = 20_000, rounds = 3): Promise<RetentionFigure> {
  const azurite = await startAzurite();
  try {
    const baseline: number[] = [];
    const retention: number[] = [];
    for (let round = 0; round < rounds; round++) {
      // Alternating, each on a table of its own, so neither always runs on a warmer Azurite.
      const plain = storageOn(azurite.connectionString);
      const keys = await fill(plain.ledger, rows);
      baseline.push(rows / ((await millis(() => deleteByKeys(plain.ledger, keys))) / 1000));

      const swept = storageOn(azurite.connectionString);
      await fill(swept.ledger, rows);
      const later = Date.now() + 8 * 24 * 60 * 60 * 1000;
      let deleted = 0;
      const ms = await millis(async () => {
        const report = await applyRetention({
          storage: swept,
          settings: { retentionMs: 7 * 24 * 60 * 60 * 1000 },
          deadline: Infinity,
          log: silentLog,
          now: () => later,
          concurrency: CONCURRENCY,
        });
        deleted = report.ledger.deleted;
      });
      if (deleted !== rows) throw new Error(`retention deleted ${deleted} of ${rows} rows`);
      retention.push(rows / (ms / 1000));
    }
    const baselinePerSecond = median(baseline);
    const retentionPerSecond = median(retention);
    return {
      rows,
      rowsPerPartition: ROWS_PER_PARTITION,
      baselinePerSecond,
      retentionPerSecond,
      ratio: retentionPerSecond / baselinePerSecond,
    };
  } finally {
    await azurite.stop();
  }
}

if (require.main === module) {
  const rows = Number(process.argv[2] ?? 20_000);
  void benchRetention(rows).then((f) => {
    console.log(
      `retention: rows/s removed from a ledger of old rows (${f.rowsPerPartition} per delivery) vs Azurite alone deleting the same rows by key, ${CONCURRENCY} at once (medians of 3 alternating rounds)`,
    );
    console.log(
      `  ${String(f.rows).padStart(6)} rows  Azurite alone ${f.baselinePerSecond.toFixed(0).padStart(5)}/s  retention ${f.retentionPerSecond.toFixed(0).padStart(5)}/s  ratio ${f.ratio.toFixed(2)}×`,
    );
  });
}
