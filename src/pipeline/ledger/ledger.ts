import type { TableClient } from '@azure/data-tables';
import type { RecordVersion } from '../../dataverse/accessors';
import {
  type DecisionColumns,
  EVENT_ROW,
  type EventRow,
  type EventSettlement,
  FAILURE_ROW,
  LedgerTable,
  type RecordAddress,
  type UnitRow,
  type UnitState,
  type WatermarkRow,
  watermarkPartition,
} from '../../storage/ledgerTable';

export type { EventSettlement, RecordAddress, UnitState } from '../../storage/ledgerTable';
export { watermarkPartition } from '../../storage/ledgerTable';

/**
 * The effects-once ledger's protocol. For one delivery key (one step's delivery of one operation,
 * see deliveryKey.ts) the ledger holds a row per unit of work (a handler, or a handler and one
 * record of a CreateMultiple), claimed by an atomic insert before the handler's effect and marked
 * done after it; a `$event` row once every unit of a claim-check event (or an event without units)
 * is settled; and a `$failure` row when the event failed before or around its handlers (its body
 * could not be loaded, the settings are invalid), so that a poison record can say why. An inline
 * handler (`decide(…)`) claims nothing; for a save that failed, its unit's row keeps what it
 * decided, for inspection. A second partition kind holds, per record and handler, the newest record
 * version applied (for stale updates). The rows, their keys and columns: src/storage/ledgerTable.ts.
 *
 * A unit row's lease: `leaseUntil` (epoch ms) while `processing`; its holder renews it (renew) while
 * the handler runs. `attempts` counts the runs started since the event's last replay (`replays`),
 * whichever message (a queue redelivery, a deferred copy, Dataverse's retry) carried them; a unit
 * whose run died (its lease lapsed while `processing`) is recorded `failed` by the next claimant,
 * with `retryAt` (epoch ms), before which nobody takes it over.
 */

/** What an inline handler decided, on its unit's row (for a save that failed). */
export interface RecordedDecision {
  outcome: 'allow' | 'reject';
  /** For a rejection: the reason meant for the person, and its code. */
  reason?: string;
  code?: string;
}

export type Claim =
  | { kind: 'claimed'; key: string; unit: string; etag: string; attempts: number; leaseUntil: number; replays?: number }
  | { kind: 'already-done'; state: 'done' | 'stale'; decision?: RecordedDecision }
  /** `jittered`: the wait already holds a random part (a unit after a dead run); else the caller adds one. */
  | { kind: 'busy'; retryAfterMs: number; jittered?: boolean };

/** A claim with attempts counted: `exhausted` when the unit failed or died on `attempts` runs, the most it may have. */
export type UnitClaim = Claim | { kind: 'exhausted'; attempts: number; error: string };

export type HeldClaim = Extract<Claim, { kind: 'claimed' }>;

export interface ClaimOptions {
  /** Runs a unit may have (failed or dead) before its claim answers `exhausted`; default unlimited. */
  maxAttempts?: number;
  /** The envelope's replays: a replayed event's units get their attempts again. */
  replays?: number;
  /**
   * A unit found dead (its lease lapsed while processing) is recorded failed and not run by this
   * claimant: it answers `busy` for a random wait below this, so that the events that died with it
   * come back apart rather than side by side with whatever killed them. 0: taken over at once.
   */
  deadJitterMs?: number;
  random?: () => number;
}

/** What a unit whose lease lapsed while it was processing is recorded as. */
export const DIED_ERROR =
  'the run stopped before it finished (its worker died: a crash, an out-of-memory kill, a function timeout or a restart)';

export interface Completion {
  claim: HeldClaim;
  state: 'done' | 'stale';
  eventId: string;
}

export interface UnitFailure {
  unit: string;
  attempts: number;
  error: string;
}

/** How a `$failure` row is named among the failed units. */
export const BEFORE_HANDLERS = '(before handlers)';

export class Ledger {
  private readonly table: LedgerTable;

  constructor(
    table: TableClient,
    private readonly now: () => number = Date.now,
  ) {
    this.table = new LedgerTable(table);
  }

  async eventSettlement(key: string): Promise<EventSettlement | null> {
    const row = await this.table.read<EventRow>(key, EVENT_ROW);
    return row?.outcome ?? null;
  }

  /**
   * Marks the event settled, together with the completion of its last unit when given. The `$event`
   * row is read only by a copy of a claim-check event that finds its blob deleted (eventSettlement),
   * so it is written (in one transaction with the last unit's done-mark: both rows share the
   * partition) for claim-check events and for events settled without any unit; an inline event's
   * settlement is its last unit's done-mark alone, a single write, which costs storage less.
   */
  async settleEvent(
    key: string,
    eventId: string,
    outcome: EventSettlement,
    lastUnit?: Completion,
    options: { claimCheck?: boolean } = {},
  ): Promise<void> {
    const eventRow: EventRow = { partitionKey: key, rowKey: EVENT_ROW, eventId, outcome, settledAt: new Date(this.now()).toISOString() };
    if (!lastUnit) {
      await this.table.upsert(eventRow);
      return;
    }
    if (options.claimCheck === false) {
      await this.complete(lastUnit);
      return;
    }
    await this.table.transaction([
      ['upsert', this.completedRow(lastUnit), 'Replace'],
      ['upsert', eventRow, 'Replace'],
    ]);
  }

  /**
   * Claims one unit of work for this processor. The insert is atomic: of two processors racing on
   * one event, one gets the row. A unit that failed, or whose holder's lease ran out (a dead
   * worker), is taken over with an ETag-conditioned update, which again only one can win; with
   * `options`, not before its attempts allow it and its `retryAt` has passed (see ClaimOptions).
   */
  async claim(key: string, unit: string, eventId: string, leaseMs: number): Promise<Claim> {
    const claim = await this.claimUnit(key, unit, eventId, leaseMs);
    // Without maxAttempts a unit is never exhausted.
    if (claim.kind === 'exhausted') throw new Error('unreachable: a claim without maxAttempts was exhausted');
    return claim;
  }

  /** `claim`, with the attempts, replays and jitter rules of ClaimOptions: what the queue processor uses. */
  async claimUnit(key: string, unit: string, eventId: string, leaseMs: number, options: ClaimOptions = {}): Promise<UnitClaim> {
    const replays = options.replays ?? 0;
    const row: UnitRow = {
      partitionKey: key,
      rowKey: unit,
      state: 'processing',
      eventId,
      attempts: 1,
      leaseUntil: this.now() + leaseMs,
      updatedAt: new Date(this.now()).toISOString(),
      ...(replays > 0 ? { replays } : {}),
    };
    const created = await this.table.insert(row);
    if (created !== 'exists') {
      return {
        kind: 'claimed',
        key,
        unit,
        etag: created.etag,
        attempts: 1,
        leaseUntil: row.leaseUntil,
        ...(replays > 0 ? { replays } : {}),
      };
    }
    const existing = await this.table.read<UnitRow>(key, unit);
    if (!existing) throw new Error(`the ledger row ${key}/${unit} was there on insert and gone on read`);
    if (existing.state === 'done' || existing.state === 'stale') {
      const decision = decisionOf(existing);
      return { kind: 'already-done', state: existing.state, ...(decision ? { decision } : {}) };
    }
    const now = this.now();
    if (existing.state === 'processing' && existing.leaseUntil > now) {
      return { kind: 'busy', retryAfterMs: existing.leaseUntil - now };
    }
    // A replay starts the unit's attempts again, as the replayed message's dequeue count does.
    const spent = replays > (existing.replays ?? 0) ? 0 : (existing.attempts ?? 0);
    const lastError = existing.state === 'processing' ? DIED_ERROR : (existing.lastError ?? '');
    const max = options.maxAttempts ?? Infinity;
    if (existing.state === 'failed' && spent < max && (existing.retryAt ?? 0) > now)
      return { kind: 'busy', retryAfterMs: existing.retryAt! - now, jittered: true };
    const jitterMs = options.deadJitterMs ?? 0;
    if (existing.state === 'processing' && (spent >= max || jitterMs > 0)) {
      // A dead run, recorded as a failure (what a poison record reports), with when the unit may run again.
      const retryAt = spent >= max ? 0 : now + Math.floor((options.random ?? Math.random)() * jitterMs);
      const failed: UnitRow = {
        ...this.failedRow(key, unit, existing.eventId, existing.attempts ?? 0, DIED_ERROR),
        retryAt,
        ...(existing.replays ? { replays: existing.replays } : {}),
      };
      const recorded = await this.table.update(failed, 'Replace', existing.etag);
      if (recorded === 'changed') return { kind: 'busy', retryAfterMs: 1_000 };
      if (recorded === 'missing') throw new Error(`the ledger row ${key}/${unit} was gone when its dead run was recorded`);
      if (spent < max) return { kind: 'busy', retryAfterMs: Math.max(1, retryAt - now), jittered: true };
    }
    if (spent >= max) return { kind: 'exhausted', attempts: spent, error: lastError };
    const attempts = spent + 1;
    const updated = await this.table.update({ ...row, attempts, lastError }, 'Replace', existing.etag);
    if (updated === 'changed') return { kind: 'busy', retryAfterMs: 1_000 };
    if (updated === 'missing') throw new Error(`the ledger row ${key}/${unit} was gone when it was taken over`);
    return {
      kind: 'claimed',
      key,
      unit,
      etag: updated.etag,
      attempts,
      leaseUntil: row.leaseUntil,
      ...(replays > 0 ? { replays } : {}),
    };
  }

  /**
   * Extends a held unit's lease to `leaseMs` from now, if the row is still as this holder last
   * wrote it (its ETag): returns the renewed claim, or null when someone else changed the row.
   */
  async renew(claim: HeldClaim, leaseMs: number): Promise<HeldClaim | null> {
    const leaseUntil = this.now() + leaseMs;
    const updated = await this.table.update(
      { partitionKey: claim.key, rowKey: claim.unit, leaseUntil, updatedAt: new Date(this.now()).toISOString() },
      'Merge',
      claim.etag,
    );
    if (updated === 'changed' || updated === 'missing') return null;
    return { ...claim, etag: updated.etag, leaseUntil };
  }

  async complete(completion: Completion): Promise<void> {
    await this.table.upsert(this.completedRow(completion));
  }

  private completedRow({ claim, state, eventId }: Completion): UnitRow {
    return {
      partitionKey: claim.key,
      rowKey: claim.unit,
      state,
      eventId,
      attempts: claim.attempts,
      leaseUntil: 0,
      updatedAt: new Date(this.now()).toISOString(),
      ...(claim.replays ? { replays: claim.replays } : {}),
    };
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
    await this.table.upsert(row);
  }

  /** Why an inline handler failed (it threw, or ran past its time limit), on its unit's row, like `recordDecision`. */
  async recordFailure(key: string, unit: string, eventId: string, attempts: number, error: string): Promise<void> {
    await this.table.upsert(this.failedRow(key, unit, eventId, attempts, error));
  }

  async fail(claim: HeldClaim, eventId: string, error: string): Promise<void> {
    const row = {
      ...this.failedRow(claim.key, claim.unit, eventId, claim.attempts, error),
      ...(claim.replays ? { replays: claim.replays } : {}),
    };
    await this.table.upsert(row);
  }

  /** Why the event failed outside any handler, on its `attempt`-th delivery. */
  async failEvent(key: string, eventId: string, attempt: number, error: string): Promise<void> {
    await this.table.upsert(this.failedRow(key, FAILURE_ROW, eventId, attempt, error));
  }

  private failedRow(key: string, unit: string, eventId: string, attempts: number, error: string): UnitRow {
    return {
      partitionKey: key,
      rowKey: unit,
      state: 'failed',
      eventId,
      attempts,
      leaseUntil: 0,
      lastError: error.slice(0, 1000),
      updatedAt: new Date(this.now()).toISOString(),
    };
  }

  /** The units of an event that last failed, with their error: what a poison record reports. */
  async failures(key: string): Promise<UnitFailure[]> {
    const failures: UnitFailure[] = [];
    for (const row of await this.table.partition<UnitRow>(key)) {
      if (row.rowKey !== EVENT_ROW && row.state === 'failed') {
        failures.push({
          unit: row.rowKey === FAILURE_ROW ? BEFORE_HANDLERS : row.rowKey,
          attempts: row.attempts ?? 0,
          error: row.lastError ?? '',
        });
      }
    }
    return failures;
  }

  /** True when a newer version of this record was already applied by this handler. */
  async isStale(record: RecordAddress, handler: string, version: RecordVersion): Promise<boolean> {
    const applied = await this.table.read<WatermarkRow>(watermarkPartition(record), handler);
    return applied !== null && applied.kind === version.kind && BigInt(applied.value) > version.value;
  }

  /** Records that this handler applied `version` of the record, unless a newer one already was. */
  async advanceWatermark(record: RecordAddress, handler: string, version: RecordVersion, eventId: string): Promise<void> {
    const row: WatermarkRow = {
      partitionKey: watermarkPartition(record),
      rowKey: handler,
      kind: version.kind,
      value: version.value.toString(),
      eventId,
    };
    for (let attempt = 0; attempt < 5; attempt++) {
      const applied = await this.table.read<WatermarkRow>(row.partitionKey, handler);
      if (applied !== null && applied.kind === version.kind && BigInt(applied.value) >= version.value) return;
      const written = applied === null ? await this.table.insert(row) : await this.table.update(row, 'Replace', applied.etag);
      // Another processor moved (or retention removed) the watermark in between: read it again and compare.
      if (written !== 'exists' && written !== 'changed' && written !== 'missing') return;
    }
  }
}

function decisionOf(row: Partial<DecisionColumns>): RecordedDecision | null {
  if (row.decision !== 'allow' && row.decision !== 'reject') return null;
  return {
    outcome: row.decision,
    ...(row.reason !== undefined ? { reason: row.reason } : {}),
    ...(row.code !== undefined ? { code: row.code } : {}),
  };
}
