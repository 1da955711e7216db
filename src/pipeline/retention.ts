import type { EventLog } from '../observability/log';
import type { Telemetry } from '../observability/telemetry';
import type { RetentionSettings } from '../settings';
import type { StorageClients } from '../storage/clients';
import { storageStatus } from '../storage/errors';
import { settledAt } from '../storage/failureStore';
import { type SweepResult, sweepTable } from '../storage/retention';
import { deliveryKey } from './deliveryKey';
import { InvalidEnvelopeError, parseEnvelope } from './envelope';
import { failureStore } from './failures';
import { watermarkPartition } from './ledger/ledger';

type RetentionStorage = Pick<StorageClients, 'ledger' | 'failures' | 'payloads'>;

export interface RetentionDependencies {
  storage: RetentionStorage;
  settings: RetentionSettings;
  /** No new work is started at or after this time (epoch ms): keep it well inside functionTimeout. */
  deadline: number;
  log: EventLog;
  telemetry?: Telemetry;
  /** The clock the retention period is counted on (the deadline is always real time). */
  now?: () => number;
  /** Ledger transactions in flight at once. */
  concurrency?: number;
}

export interface RetentionReport {
  ledger: SweepResult;
  /** Replayed and resolved failure records removed. */
  failuresRemoved: number;
  /** Ledger partitions kept for poisoned events, and for events replayed or resolved within the retention period. */
  protectedPartitions: number;
  complete: boolean;
}

/**
 * One retention run: ledger rows (units, decisions, event settlements, watermarks) not written for
 * the retention period go, except those an event in `failures` may still need: a poisoned event's
 * for its replay, and a replayed or resolved one's for the retention period after its replay or
 * resolve (a replayed copy may still wait on the queue, and a resolved event's Dataverse retry or
 * redelivery may still come): its delivery's units, so that handlers that succeeded are not run
 * again, and its record's watermarks. Failure records replayed or resolved longer ago than the
 * retention period go with their kept messages.
 */
export async function applyRetention(deps: RetentionDependencies): Promise<RetentionReport> {
  const now = deps.now ?? Date.now;
  const olderThan = new Date(now() - deps.settings.retentionMs);
  const keep = await partitionsStillNeeded(deps.storage, olderThan);
  const ledger = await sweepTable(deps.storage.ledger, {
    olderThan,
    deadline: deps.deadline,
    keepPartition: (partitionKey) => keep.has(partitionKey),
    ...(deps.concurrency ? { concurrency: deps.concurrency } : {}),
  });
  const failures = ledger.complete
    ? await failureStore(deps.storage).removeSettled(olderThan, deps.deadline)
    : { removed: 0, complete: false };
  const report: RetentionReport = {
    ledger,
    failuresRemoved: failures.removed,
    protectedPartitions: keep.size,
    complete: ledger.complete && failures.complete,
  };
  deps.log.info('Retention run', {
    deleted: ledger.deleted,
    kept: ledger.kept,
    alreadyGone: ledger.alreadyGone,
    changed: ledger.changed,
    failuresRemoved: failures.removed,
    complete: report.complete,
  });
  deps.telemetry?.event(
    'retention',
    { status: report.complete ? 'complete' : 'partial' },
    {
      deleted: ledger.deleted,
      kept: ledger.kept,
      alreadyGone: ledger.alreadyGone,
      changed: ledger.changed,
      failuresRemoved: failures.removed,
    },
  );
  return report;
}

/**
 * The ledger partitions events in `failures` still need: those of every poisoned event, and of every
 * event replayed or resolved at or after `settledSince`: their delivery key (on the record, or read
 * from the kept message for a record from before it was kept there) and the watermarks of their
 * record. A message that cannot be read for a reason other than its absence stops the run:
 * deleting unprotected would be worse.
 */
async function partitionsStillNeeded(storage: RetentionStorage, settledSince: Date): Promise<Set<string>> {
  const store = failureStore(storage);
  const keep = new Set<string>();
  const since = settledSince.toISOString();
  for (const failure of await store.list({ includeReplayed: true })) {
    const settled = settledAt(failure);
    if (settled !== undefined && settled < since) continue;
    if (failure.table && failure.recordId) keep.add(watermarkPartition({ table: failure.table, id: failure.recordId }));
    if (failure.deliveryKey) {
      keep.add(failure.deliveryKey);
      continue;
    }
    try {
      keep.add(deliveryKey(parseEnvelope(await store.message(failure.eventId)).summary));
    } catch (error) {
      // Not an envelope (nothing of it is in the ledger), or no kept message: nothing to protect.
      if (!(error instanceof InvalidEnvelopeError) && storageStatus(error) !== 404) throw error;
    }
  }
  return keep;
}
