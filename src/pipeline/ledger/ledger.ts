import { randomUUID } from 'node:crypto';
import type { TableClient } from '@azure/data-tables';
import type { RecordVersion } from '../../dataverse/accessors';
import { DEFAULT_LEASE_SECONDS } from '../../settings';
import {
  type DecisionColumns,
  EVENT_ROW,
  type EventRow,
  type EventSettlement,
  FAILURE_ROW,
  type Found,
  LedgerTable,
  type Read,
  type RecordAddress,
  type UnitRow,
  type WatermarkRow,
  type Written,
  watermarkPartition,
} from '../../storage/ledgerTable';

export type { EventSettlement } from '../../storage/ledgerTable';
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
 * **Who may write a unit.** A claim writes a random `token` in the unit's row; every later write of
 * its holder (renewal, done-mark, failure) keeps it, carries the next `seq`, and is conditioned on
 * the ETag of the holder's last write. Nobody else writes a held unit but a claimant that finds its
 * lease over, and that write changes the token. So a holder whose conditional write is refused
 * (412, or 409 for the claim's insert) reads the row back: its own token, and the `seq` or state it
 * wrote, mean its write landed and only the reply was lost (the storage SDK retried the request,
 * and the retry met the first try's write); another token means the unit is no longer its own, and
 * it writes nothing more there.
 *
 * **Leases on the service's clock.** A unit is held for `leaseMs` from the row's last write,
 * measured on the Table service's own clock: the row's `Timestamp` (set by the service on every
 * write) against the `Date` of the answer that read it. No instance's clock is compared with
 * another's, so a skewed instance neither takes over a live unit nor holds a dead one longer. The
 * holder keeps to its side of the lease on its own monotonic clock, counted from when it *sent* its
 * last write that landed (the service stamped it later): see unitLease.ts.
 *
 * `attempts` counts the runs started since the event's last replay (`replays`), whichever message
 * (a queue redelivery, a deferred copy, Dataverse's retry) carried them; a unit whose run died (its
 * lease ran out while `processing`) is recorded `failed` by the next claimant, with `retryAfterMs`,
 * before which nobody takes it over.
 */

/**
 * How much longer than its lease a unit is kept from others: room for the service's answer `Date`
 * rounded rather than cut to the second, and for its machines' clocks (the front end that dates the
 * answer, the partition server that stamps the row) to differ.
 */
export const SERVICE_CLOCK_MARGIN_MS = 1_000;

/** What an inline handler decided, on its unit's row (for a save that failed). */
export interface RecordedDecision {
  outcome: 'allow' | 'reject';
  /** For a rejection: the reason meant for the person, and its code. */
  reason?: string;
  code?: string;
}

/**
 * A unit this processor holds, for one run. Its holder's writes move it on (`etag`, `seq`,
 * `sentAt`); a renewal may be under way beside a done-mark, and whichever lands second is refused
 * and reads back the first (Ledger.holderWrite).
 */
export class HeldClaim {
  readonly kind = 'claimed';
  /** The ETag of the holder's last write known to have landed: every write of the holder is conditioned on it. */
  etag: string;
  /** That write's number. */
  seq: number;
  /** When that write was sent, on the holder's monotonic clock: the lease runs from no earlier. */
  sentAt: number;
  /** The tries sent since, by number, with when each was sent: any of them may still land. */
  readonly #tries = new Map<number, number>();
  #nextSeq: number;

  constructor(
    readonly key: string,
    readonly unit: string,
    readonly token: string,
    readonly attempts: number,
    readonly leaseMs: number,
    readonly replays: number,
    landed: { etag: string; seq: number; sentAt: number },
  ) {
    this.etag = landed.etag;
    this.seq = landed.seq;
    this.sentAt = landed.sentAt;
    this.#nextSeq = landed.seq + 1;
  }

  /** A write about to be sent: its number (each try has its own, so a read-back tells them apart). */
  try(sentAt: number): number {
    const seq = this.#nextSeq++;
    this.#tries.set(seq, sentAt);
    return seq;
  }

  /**
   * The row holds the holder's write `seq` (its answer came, or it was read back): the next writes
   * are conditioned on it, and the lease runs from when it was sent. Tries sent before it can no
   * longer land (their ETag is gone); a write known already changes nothing.
   */
  landed(etag: string, seq: number): void {
    if (seq < this.seq) return;
    this.etag = etag;
    if (seq > this.seq) this.sentAt = this.#tries.get(seq) ?? this.sentAt;
    this.seq = seq;
    for (const sent of [...this.#tries.keys()]) if (sent <= seq) this.#tries.delete(sent);
  }
}

export type Claim =
  | HeldClaim
  | { kind: 'already-done'; state: 'done' | 'stale'; decision?: RecordedDecision }
  /** `jittered`: the wait already holds a random part (a unit after a dead run); else the caller adds one. */
  | { kind: 'busy'; retryAfterMs: number; jittered?: boolean };

/** A claim with attempts counted: `exhausted` when the unit failed or died on `attempts` runs, the most it may have. */
export type UnitClaim = Claim | { kind: 'exhausted'; attempts: number; error: string };

export interface ClaimOptions {
  /** Runs a unit may have (failed or dead) before its claim answers `exhausted`; default unlimited. */
  maxAttempts?: number;
  /** The envelope's replays: a replayed event's units get their attempts again. */
  replays?: number;
  /**
   * A unit found dead (its lease ran out while processing) is recorded failed and not run by this
   * claimant: it answers `busy` for a random wait below this, doubled for each attempt the unit spent
   * before (deadRetrySpreadMs), so that the events that died with it come back apart rather than side
   * by side with whatever killed them. 0: taken over at once.
   */
  deadJitterMs?: number;
  random?: () => number;
}

/**
 * How far apart a dead unit's next run is spread: the jitter after its first attempt (the run that
 * died), doubled for each attempt spent before it (failed or dead), up to eight times: exponential
 * back-off with full jitter ("Exponential Backoff And Jitter", AWS Architecture Blog). One random wait separates most of the events that died
 * together; one that happened to land beside the killer again is spread twice as wide, so a bystander
 * dies beside a pill on every attempt ever more rarely, while the pill's own attempts still run out.
 */
export function deadRetrySpreadMs(jitterMs: number, attemptsSpent: number): number {
  return jitterMs * 2 ** Math.min(Math.max(attemptsSpent - 1, 0), 3);
}

/** What a unit whose lease ran out while it was processing is recorded as. */
export const DIED_ERROR =
  'the run stopped before it finished (its worker died: a crash, an out-of-memory kill, a function timeout or a restart)';

export interface Completion {
  claim: HeldClaim;
  state: 'done' | 'stale';
  eventId: string;
}

/** A holder's write: `lost` when the unit was someone else's by then, so nothing was written. */
export type HolderWrite = 'written' | 'lost';

export interface UnitFailure {
  unit: string;
  attempts: number;
  error: string;
}

/** How a `$failure` row is named among the failed units. */
export const BEFORE_HANDLERS = '(before handlers)';

/** Tries of one holder write when each finds an earlier write of the same holder landed first. */
const HOLDER_WRITE_TRIES = 4;

export class Ledger {
  private readonly table: LedgerTable;

  /**
   * `now` dates rows for people (`updatedAt`, `settledAt`) and nothing else; `monotonic` times the
   * holder's own writes (performance.now: it never jumps with the wall clock).
   */
  constructor(
    table: TableClient,
    private readonly now: () => number = Date.now,
    /** The holder's clock, which its lease (unitLease.ts) is kept on too: one clock for both sides of `sentAt`. */
    readonly monotonic: () => number = () => performance.now(),
  ) {
    this.table = new LedgerTable(table);
  }

  async eventSettlement(key: string): Promise<EventSettlement | null> {
    const row = await this.table.read<EventRow>(key, EVENT_ROW);
    return row?.outcome ?? null;
  }

  /**
   * Marks the event settled, together with the completion of its last unit when given (conditioned
   * on still holding it: `lost` when not, and then nothing is written). The `$event` row is read
   * only by a copy of a claim-check event that finds its blob deleted (eventSettlement), so it is
   * written (in one transaction with the last unit's done-mark: both rows share the partition) for
   * claim-check events and for events settled without any unit; an inline event's settlement is its
   * last unit's done-mark alone, a single write, which costs storage less.
   */
  async settleEvent(
    key: string,
    eventId: string,
    outcome: EventSettlement,
    lastUnit?: Completion,
    options: { claimCheck?: boolean } = {},
  ): Promise<HolderWrite> {
    const eventRow: EventRow = { partitionKey: key, rowKey: EVENT_ROW, eventId, outcome, settledAt: new Date(this.now()).toISOString() };
    if (!lastUnit) {
      await this.table.upsert(eventRow);
      return 'written';
    }
    if (options.claimCheck === false) return this.complete(lastUnit);
    const { claim, state } = lastUnit;
    return this.holderWrite(
      claim,
      (seq) =>
        this.table.transaction([
          ['update', this.completedRow(lastUnit, seq), 'Replace', { etag: claim.etag }],
          ['upsert', eventRow, 'Replace'],
        ]),
      (row) => row.state === state,
    );
  }

  /**
   * Claims one unit of work for this processor. The insert is atomic: of two processors racing on
   * one event, one gets the row. A unit that failed, or whose holder's lease ran out (a dead
   * worker), is taken over with an ETag-conditioned update, which again only one can win; with
   * `options`, not before its attempts allow it and its retry wait has passed (see ClaimOptions).
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
    const token = randomUUID();
    const claimed = (etag: string, attempts: number, sentAt: number) =>
      new HeldClaim(key, unit, token, attempts, leaseMs, replays, { etag, seq: 0, sentAt });
    let sentAt = this.monotonic();
    const created = await this.table.insert(this.claimRow(key, unit, eventId, token, leaseMs, 1, replays));
    if (created !== 'exists') return claimed(created.etag, 1, sentAt);

    const found = await this.table.find<UnitRow>(key, unit);
    if (!found) throw new Error(`the ledger row ${key}/${unit} was there on insert and gone on read`);
    const existing = found.row;
    // Our own insert, whose reply was lost: the SDK's retry met it.
    if (existing.token === token) return claimed(existing.etag, existing.attempts, sentAt);
    if (existing.state === 'done' || existing.state === 'stale') {
      const decision = decisionOf(existing);
      return { kind: 'already-done', state: existing.state, ...(decision ? { decision } : {}) };
    }
    const since = this.sinceWritten(found);
    if (existing.state === 'processing') {
      const leftMs = leaseOf(existing) + SERVICE_CLOCK_MARGIN_MS - since;
      if (leftMs > 0) return { kind: 'busy', retryAfterMs: Math.ceil(leftMs) };
    }
    // A replay starts the unit's attempts again, as the replayed message's dequeue count does.
    const spent = replays > (existing.replays ?? 0) ? 0 : (existing.attempts ?? 0);
    const lastError = existing.state === 'processing' ? DIED_ERROR : (existing.lastError ?? '');
    const max = options.maxAttempts ?? Infinity;
    if (existing.state === 'failed' && spent < max) {
      const waitMs = (existing.retryAfterMs ?? 0) - since;
      if (waitMs > 0) return { kind: 'busy', retryAfterMs: Math.ceil(waitMs), jittered: true };
    }
    const jitterMs = options.deadJitterMs ?? 0;
    if (existing.state === 'processing' && (spent >= max || jitterMs > 0)) {
      // A dead run, recorded as a failure (what a poison record reports), with when the unit may run again.
      const retryAfterMs = spent >= max ? 0 : Math.floor((options.random ?? Math.random)() * deadRetrySpreadMs(jitterMs, spent));
      const recorder = randomUUID();
      const failed: UnitRow = {
        ...this.failedRow(key, unit, existing.eventId, existing.attempts ?? 0, DIED_ERROR),
        token: recorder,
        retryAfterMs,
        ...(existing.replays ? { replays: existing.replays } : {}),
      };
      const recorded = await this.table.update(failed, 'Replace', existing.etag);
      if (typeof recorded !== 'object' && !(await this.ownRow(key, unit, recorder))) return { kind: 'busy', retryAfterMs: 1_000 };
      if (spent < max) return { kind: 'busy', retryAfterMs: Math.max(1, retryAfterMs), jittered: true };
    }
    if (spent >= max) return { kind: 'exhausted', attempts: spent, error: lastError };
    const attempts = spent + 1;
    sentAt = this.monotonic();
    const takeover = { ...this.claimRow(key, unit, eventId, token, leaseMs, attempts, replays), lastError };
    const updated = await this.table.update(takeover, 'Replace', existing.etag);
    if (typeof updated === 'object') return claimed(updated.etag, attempts, sentAt);
    const ours = await this.ownRow(key, unit, token);
    if (ours) return claimed(ours.etag, attempts, sentAt);
    return { kind: 'busy', retryAfterMs: 1_000 };
  }

  /**
   * How long ago the row was written, at least, on the service's clock (on ours only if its answer
   * had no Date): the Date is cut to the second, so it can read before the row's Timestamp. A row
   * whose Timestamp could not be read counts as just written.
   */
  private sinceWritten(found: Found<UnitRow>): number {
    const since = (found.answeredAt ?? this.now()) - found.writtenAt;
    return Number.isFinite(since) ? Math.max(0, since) : 0;
  }

  /** The row, read back, when its last write is the one `token` made (a write whose reply was lost); else null. */
  private async ownRow(key: string, unit: string, token: string): Promise<Read<UnitRow> | null> {
    const row = await this.table.read<UnitRow>(key, unit);
    return row?.token === token ? row : null;
  }

  private claimRow(key: string, unit: string, eventId: string, token: string, leaseMs: number, attempts: number, replays: number): UnitRow {
    return {
      partitionKey: key,
      rowKey: unit,
      state: 'processing',
      eventId,
      attempts,
      token,
      seq: 0,
      leaseMs,
      leaseUntil: this.now() + leaseMs,
      updatedAt: new Date(this.now()).toISOString(),
      ...(replays > 0 ? { replays } : {}),
    };
  }

  /**
   * A write of the unit by its holder, conditioned on its last write (its ETag). When storage
   * refuses it (412, 404), the row is read back: someone else's token, or no row, and the unit is
   * `lost`; ours, and a write of ours landed whose reply was lost. If it is this write (`done` says
   * what it achieved), it is `written`; if an earlier one (a renewal that got no answer), this write
   * is tried again on that one's ETag. A write with no answer at all throws; the claim keeps its try
   * (when it was sent), so that a later read-back that finds it landed knows when its lease began.
   */
  private async holderWrite(
    claim: HeldClaim,
    write: (seq: number) => Promise<Written | 'changed' | 'missing'>,
    done: (row: UnitRow, seq: number) => boolean,
  ): Promise<HolderWrite> {
    for (let tries = 0; tries < HOLDER_WRITE_TRIES; tries++) {
      const seq = claim.try(this.monotonic());
      const result = await write(seq);
      if (typeof result === 'object') {
        claim.landed(result.etag, seq);
        return 'written';
      }
      const row = await this.table.read<UnitRow>(claim.key, claim.unit);
      if (!row || row.token !== claim.token) return 'lost';
      // Still ours: this write or another of ours landed (a reply lost, or a renewal beside it).
      claim.landed(row.etag, row.seq ?? claim.seq);
      if (done(row, seq)) return 'written';
    }
    throw new Error(`the ledger row ${claim.key}/${claim.unit} kept changing under its holder's writes`);
  }

  /**
   * Extends a held unit's lease to its full length from now, if the row is still this holder's:
   * `lost` when someone else's (the claim then holds nothing). The claim moves on to the renewal.
   */
  async renew(claim: HeldClaim): Promise<HolderWrite> {
    return this.holderWrite(
      claim,
      (seq) =>
        this.table.update(
          {
            partitionKey: claim.key,
            rowKey: claim.unit,
            seq,
            leaseMs: claim.leaseMs,
            leaseUntil: this.now() + claim.leaseMs,
            updatedAt: new Date(this.now()).toISOString(),
          },
          'Merge',
          claim.etag,
        ),
      // A done-mark or failure of ours that landed first ends the lease: nothing more to renew.
      (row, seq) => row.seq === seq || row.state !== 'processing',
    );
  }

  /** Marks a held unit done (or stale), if it is still this holder's: `lost` when not, and nothing is written. */
  async complete(completion: Completion): Promise<HolderWrite> {
    const { claim, state } = completion;
    return this.holderWrite(
      claim,
      (seq) => this.table.update(this.completedRow(completion, seq), 'Replace', claim.etag),
      (row) => row.state === state,
    );
  }

  private completedRow({ claim, state, eventId }: Completion, seq: number): UnitRow {
    return {
      partitionKey: claim.key,
      rowKey: claim.unit,
      state,
      eventId,
      attempts: claim.attempts,
      token: claim.token,
      seq,
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

  /** Records a held unit's run as failed, if the unit is still this holder's: `lost` when not, and nothing is written. */
  async fail(claim: HeldClaim, eventId: string, error: string): Promise<HolderWrite> {
    return this.holderWrite(
      claim,
      (seq) =>
        this.table.update(
          {
            ...this.failedRow(claim.key, claim.unit, eventId, claim.attempts, error),
            token: claim.token,
            seq,
            ...(claim.replays ? { replays: claim.replays } : {}),
          },
          'Replace',
          claim.etag,
        ),
      (row) => row.state === 'failed',
    );
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
      // Another processor moved (or retention removed) the watermark in between, or a write of
      // ours whose reply was lost did: read it again and compare.
      if (written !== 'exists' && written !== 'changed' && written !== 'missing') return;
    }
  }
}

/**
 * A processing row's lease. A row written by a version that measured leases on each instance's own
 * clock has no `leaseMs`; its `leaseUntil` and `updatedAt` were both that instance's now plus the
 * lease and now, so their difference is the lease it held.
 */
function leaseOf(row: UnitRow): number {
  if (row.leaseMs !== undefined) return row.leaseMs;
  const lease = row.leaseUntil - Date.parse(row.updatedAt);
  return Number.isFinite(lease) ? Math.max(0, lease) : DEFAULT_LEASE_SECONDS * 1000;
}

function decisionOf(row: Partial<DecisionColumns>): RecordedDecision | null {
  if (row.decision !== 'allow' && row.decision !== 'reject') return null;
  return {
    outcome: row.decision,
    ...(row.reason !== undefined ? { reason: row.reason } : {}),
    ...(row.code !== undefined ? { code: row.code } : {}),
  };
}
