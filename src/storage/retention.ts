import { odata, type TableClient } from '@azure/data-tables';
import { forEachConcurrently } from '../concurrency';
import { isMissingResource, storageStatus } from './errors';

/**
 * Removes the rows of a table that nobody wrote for a while, by the entity's `Timestamp`: the time
 * of its last write, which storage itself sets on every insert, update and upsert, so it holds for
 * every kind of row (ledger units, `$event`, `$failure`, inline decisions, watermarks) whatever
 * columns other code gives them.
 *
 * Safe to run on several instances at once, and again after a run that was cut short:
 * - each delete is conditioned on the ETag the query returned, so a row written again since (a unit
 *   taken over, a watermark moved) is kept: it is no longer old;
 * - a row another run deleted first (404) or that changed (412) is counted as such, never as
 *   deleted by this run and never as a failure;
 * - work is started only before `deadline`, and the query's continuation token is not needed again:
 *   the next run starts from the beginning and finds only what is still old.
 *
 * Rows are deleted one request each, many at once (`concurrency`): an entity-group transaction
 * would save round trips only within a partition (a delivery has a few rows), and the SDK's
 * `submitTransaction` deletes unconditionally (If-Match: *), which would lose the ETag check above.
 */

export interface SweepOptions {
  /** Rows last written before this go. */
  olderThan: Date;
  /** No new page or delete is started at or after this time (epoch ms). */
  deadline: number;
  /** Partitions kept whatever the age of their rows (a poisoned event's ledger rows). */
  keepPartition?: (partitionKey: string) => boolean;
  /** Deletes in flight at once. */
  concurrency?: number;
  /** Rows asked for per page of the query (at most 1000, the service's page size). */
  pageSize?: number;
  now?: () => number;
}

export interface SweepResult {
  /** Rows this run deleted. */
  deleted: number;
  /** Old rows kept because their partition is kept. */
  kept: number;
  /** Old rows already deleted by someone else when this run came to them. */
  alreadyGone: number;
  /** Old rows written again since the query saw them: no longer old, kept. */
  changed: number;
  /** False when the deadline came first: the next run goes on. */
  complete: boolean;
}

/** The rows of one partition handed to one worker at a time: few, so a run stops soon after its deadline. */
const CHUNK_ROWS = 10;

interface OldRow {
  rowKey: string;
  etag: string;
}

export async function sweepTable(table: TableClient, options: SweepOptions): Promise<SweepResult> {
  const now = options.now ?? Date.now;
  const concurrency = options.concurrency ?? 32;
  const result: SweepResult = { deleted: 0, kept: 0, alreadyGone: 0, changed: 0, complete: false };
  const pages = table
    .listEntities<Record<string, never>>({
      queryOptions: { filter: odata`Timestamp lt ${options.olderThan}`, select: ['PartitionKey', 'RowKey'] },
    })
    .byPage({ maxPageSize: options.pageSize ?? 1000 });
  try {
    for await (const page of pages) {
      const partitions = new Map<string, OldRow[]>();
      for (const entity of page) {
        const partitionKey = entity.partitionKey ?? '';
        if (options.keepPartition?.(partitionKey)) {
          result.kept++;
          continue;
        }
        let rows = partitions.get(partitionKey);
        if (!rows) partitions.set(partitionKey, (rows = []));
        rows.push({ rowKey: entity.rowKey ?? '', etag: entity.etag ?? '*' });
      }
      const chunks: Array<[string, OldRow[]]> = [];
      for (const [partitionKey, rows] of partitions) {
        for (let start = 0; start < rows.length; start += CHUNK_ROWS) chunks.push([partitionKey, rows.slice(start, start + CHUNK_ROWS)]);
      }
      await forEachConcurrently(
        chunks,
        concurrency,
        async ([partitionKey, rows]) => {
          const counted = await deleteRows(table, partitionKey, rows);
          result.deleted += counted.deleted;
          result.alreadyGone += counted.alreadyGone;
          result.changed += counted.changed;
        },
        () => now() < options.deadline,
      );
      if (now() >= options.deadline) return result;
    }
  } catch (error) {
    // No table: nothing was ever written, so nothing is old.
    if (!isMissingResource('table', error)) throw error;
  }
  result.complete = true;
  return result;
}

type Counted = Pick<SweepResult, 'deleted' | 'alreadyGone' | 'changed'>;

async function deleteRows(table: TableClient, partitionKey: string, rows: OldRow[]): Promise<Counted> {
  const counted: Counted = { deleted: 0, alreadyGone: 0, changed: 0 };
  for (const row of rows) {
    try {
      await table.deleteEntity(partitionKey, row.rowKey, { etag: row.etag });
      counted.deleted++;
    } catch (error) {
      const status = storageStatus(error);
      if (status === 404) counted.alreadyGone++;
      else if (status === 412) counted.changed++;
      else throw error;
    }
  }
  return counted;
}
