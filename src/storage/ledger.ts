import type { TableClient } from '@azure/data-tables';
import type { RecordVersion } from '../dataverse/accessors';
import { isMissingResource, storageStatus } from './errors';
import { provisioned, tableResource } from './provision';

/**
 * The effects-once ledger, in Table storage. For one delivery key (one step's delivery of one
 * operation, see deliveryKey.ts) it holds a row per unit of work (a handler, or a handler and one
 * record of a CreateMultiple), claimed by an atomic insert before the handler's effect and marked
 * done after it; a `$event` row once every unit of the event is settled; and a `$failure` row when
 * the event failed before or around its handlers (its body could not be loaded, the settings are
 * invalid), so that a poison record can say why. An inline handler (`decide(…)`) claims nothing;
 * for a save that failed, its unit's row keeps what it decided, for inspection. A second partition
 * kind holds, per record and handler, the newest record version applied (for stale updates).
 *
 * Writes create the table when it does not exist yet; reads of a table that does not exist find
 * nothing, as they would in an empty one.
 */

export type UnitState = 'processing' | 'done' | 'stale' | 'failed';
export type EventSettlement = 'processed' | 'unhandled' | 'depth-exceeded';

type UnitRow = {
  partitionKey: string;
  rowKey: string;
  state: UnitState;
  eventId: string;
  attempts: number;
  leaseUntil: number;
  lastError?: string;
  updatedAt: string;
} & Partial<DecisionColumns>;

/** What an inline handler decided, on its unit's row (for a save that failed). */
export interface RecordedDecision {
  outcome: 'allow' | 'reject';
  /** For a rejection: the reason meant for the person, and its code. */
  reason?: string;
  code?: string;
}

interface DecisionColumns {
  decision: RecordedDecision['outcome'];
  reason: string;
  code: string;
}

interface WatermarkRow {
  partitionKey: string;
  rowKey: string;
  kind: RecordVersion['kind'];
  value: string;
  eventId: string;
}

export type Claim =
  | { kind: 'claimed'; key: string; unit: string; etag: string; attempts: number; leaseUntil: number }
  | { kind: 'already-done'; state: 'done' | 'stale'; decision?: RecordedDecision }
  | { kind: 'busy'; retryAfterMs: number };

export interface Completion {
  claim: Extract<Claim, { kind: 'claimed' }>;
  state: 'done' | 'stale';
  eventId: string;
}

export interface UnitFailure {
  unit: string;
  attempts: number;
  error: string;
}

const EVENT_ROW = '$event';
const FAILURE_ROW = '$failure';
/** How a `$failure` row is named among the failed units. */
export const BEFORE_HANDLERS = '(before handlers)';

const statusOf = storageStatus;

export class Ledger {
  constructor(
    private readonly table: TableClient,
    private readonly now: () => number = Date.now,
  ) {}

  /** A write, on a table created first if storage says it does not exist. */
  private write<T>(operation: () => Promise<T>): Promise<T> {
    return provisioned(tableResource(this.table), operation);
  }

  async eventSettlement(key: string): Promise<EventSettlement | null> {
    try {
      const row = await this.table.getEntity<{ outcome: EventSettlement }>(key, EVENT_ROW);
      return row.outcome;
    } catch (error) {
      // No such row, or no table yet.
      if (statusOf(error) === 404) return null;
      throw error;
    }
  }

  /**
   * Marks the event settled, together with the completion of its last unit when given: both rows
   * share the partition, so one transaction writes them (a round trip fewer per event).
   */
  async settleEvent(key: string, eventId: string, outcome: EventSettlement, lastUnit?: Completion): Promise<void> {
    const eventRow = { partitionKey: key, rowKey: EVENT_ROW, eventId, outcome, settledAt: new Date(this.now()).toISOString() };
    if (!lastUnit) {
      await this.write(() => this.table.upsertEntity(eventRow, 'Replace'));
      return;
    }
    await this.write(() =>
      this.table.submitTransaction([
        ['upsert', this.completedRow(lastUnit), 'Replace'],
        ['upsert', eventRow, 'Replace'],
      ]),
    );
  }

  /**
   * Claims one unit of work for this processor. The insert is atomic: of two processors racing on
   * one event, one gets the row. A unit that failed, or whose holder's lease ran out (a crashed
   * worker), is taken over with an ETag-conditioned update, which again only one can win.
   */
  async claim(key: string, unit: string, eventId: string, leaseMs: number): Promise<Claim> {
    const row: UnitRow = {
      partitionKey: key,
      rowKey: unit,
      state: 'processing',
      eventId,
      attempts: 1,
      leaseUntil: this.now() + leaseMs,
      updatedAt: new Date(this.now()).toISOString(),
    };
    try {
      const created = await this.write(() => this.table.createEntity(row));
      return { kind: 'claimed', key, unit, etag: created.etag ?? '*', attempts: 1, leaseUntil: row.leaseUntil };
    } catch (error) {
      if (statusOf(error) !== 409) throw error;
    }
    const existing = await this.table.getEntity<UnitRow>(key, unit);
    if (existing.state === 'done' || existing.state === 'stale') {
      const decision = decisionOf(existing);
      return { kind: 'already-done', state: existing.state, ...(decision ? { decision } : {}) };
    }
    if (existing.state === 'processing' && existing.leaseUntil > this.now()) {
      return { kind: 'busy', retryAfterMs: existing.leaseUntil - this.now() };
    }
    const attempts = (existing.attempts ?? 0) + 1;
    try {
      const updated = await this.table.updateEntity({ ...row, attempts, lastError: existing.lastError ?? '' }, 'Replace', { etag: existing.etag });
      return { kind: 'claimed', key, unit, etag: updated.etag ?? '*', attempts, leaseUntil: row.leaseUntil };
    } catch (error) {
      if (statusOf(error) === 412) return { kind: 'busy', retryAfterMs: 1_000 };
      throw error;
    }
  }

  async complete(completion: Completion): Promise<void> {
    await this.write(() => this.table.upsertEntity(this.completedRow(completion), 'Replace'));
  }

  private completedRow({ claim, state, eventId }: Completion): UnitRow {
    return { partitionKey: claim.key, rowKey: claim.unit, state, eventId, attempts: claim.attempts, leaseUntil: 0, updatedAt: new Date(this.now()).toISOString() };
  }

  /**
   * What an inline handler (`decide(…)`) decided for a save that failed, on its unit's row, on its
   * `attempts`-th run: kept for inspection, written after the answer (no copy of the delivery reads it).
   */
  async recordDecision(key: string, unit: string, eventId: string, attempts: number, decision: RecordedDecision): Promise<void> {
    const row: UnitRow = {
      partitionKey: key,
      rowKey: unit,
      state: 'done',
      eventId,
      attempts,
      leaseUntil: 0,
      updatedAt: new Date(this.now()).toISOString(),
      decision: decision.outcome,
      ...(decision.reason !== undefined ? { reason: decision.reason } : {}),
      ...(decision.code !== undefined ? { code: decision.code } : {}),
    };
    await this.write(() => this.table.upsertEntity(row, 'Replace'));
  }

  /** Why an inline handler failed (it threw, or ran past its time limit), on its unit's row, like `recordDecision`. */
  async recordFailure(key: string, unit: string, eventId: string, attempts: number, error: string): Promise<void> {
    await this.write(() => this.table.upsertEntity(this.failedRow(key, unit, eventId, attempts, error), 'Replace'));
  }

  async fail(claim: Extract<Claim, { kind: 'claimed' }>, eventId: string, error: string): Promise<void> {
    await this.write(() => this.table.upsertEntity(this.failedRow(claim.key, claim.unit, eventId, claim.attempts, error), 'Replace'));
  }

  /** Why the event failed outside any handler, on its `attempt`-th delivery. */
  async failEvent(key: string, eventId: string, attempt: number, error: string): Promise<void> {
    await this.write(() => this.table.upsertEntity(this.failedRow(key, FAILURE_ROW, eventId, attempt, error), 'Replace'));
  }

  private failedRow(key: string, unit: string, eventId: string, attempts: number, error: string): UnitRow {
    return { partitionKey: key, rowKey: unit, state: 'failed', eventId, attempts, leaseUntil: 0, lastError: error.slice(0, 1000), updatedAt: new Date(this.now()).toISOString() };
  }

  /** The units of an event that last failed, with their error: what a poison record reports. */
  async failures(key: string): Promise<UnitFailure[]> {
    const failures: UnitFailure[] = [];
    const rows = this.table.listEntities<UnitRow>({ queryOptions: { filter: `PartitionKey eq '${key.replaceAll("'", "''")}'` } });
    try {
      for await (const row of rows) {
        if (row.rowKey !== EVENT_ROW && row.state === 'failed') {
          failures.push({ unit: row.rowKey === FAILURE_ROW ? BEFORE_HANDLERS : (row.rowKey ?? ''), attempts: row.attempts ?? 0, error: row.lastError ?? '' });
        }
      }
    } catch (error) {
      if (!isMissingResource('table', error)) throw error;
    }
    return failures;
  }

  /** True when a newer version of this record was already applied by this handler. */
  async isStale(record: RecordAddress, handler: string, version: RecordVersion): Promise<boolean> {
    const applied = await this.watermark(record, handler);
    return applied !== null && applied.kind === version.kind && BigInt(applied.value) > version.value;
  }

  /** Records that this handler applied `version` of the record, unless a newer one already was. */
  async advanceWatermark(record: RecordAddress, handler: string, version: RecordVersion, eventId: string): Promise<void> {
    const row: WatermarkRow = { partitionKey: watermarkPartition(record), rowKey: handler, kind: version.kind, value: version.value.toString(), eventId };
    for (let attempt = 0; attempt < 5; attempt++) {
      const applied = await this.watermark(record, handler);
      try {
        if (applied === null) {
          await this.write(() => this.table.createEntity(row));
        } else {
          if (applied.kind === version.kind && BigInt(applied.value) >= version.value) return;
          await this.table.updateEntity(row, 'Replace', { etag: applied.etag });
        }
        return;
      } catch (error) {
        // Another processor moved the watermark in between: read it again and compare.
        if (statusOf(error) !== 409 && statusOf(error) !== 412) throw error;
      }
    }
  }

  private async watermark(record: RecordAddress, handler: string): Promise<(WatermarkRow & { etag: string }) | null> {
    try {
      return await this.table.getEntity<WatermarkRow>(watermarkPartition(record), handler);
    } catch (error) {
      if (statusOf(error) === 404) return null;
      throw error;
    }
  }
}

function decisionOf(row: Partial<DecisionColumns>): RecordedDecision | null {
  if (row.decision !== 'allow' && row.decision !== 'reject') return null;
  return { outcome: row.decision, ...(row.reason !== undefined ? { reason: row.reason } : {}), ...(row.code !== undefined ? { code: row.code } : {}) };
}

export interface RecordAddress {
  table: string;
  id: string;
}

export function watermarkPartition(record: RecordAddress): string {
  return `record|${record.table}|${record.id.toLowerCase()}`;
}
