import type { TableClient } from '@azure/data-tables';
import { storageStatus } from './errors';
import { provisioned, tableResource } from './provision';

/**
 * What reconciliation keeps between runs, in its own table (RECONCILE_TABLE), in one partition
 * (`reconcile`), so that a run saves a table's position and renews its lease in one transaction:
 *
 * - RowKey `lease`: one run at a time across instances (and the CLI). A run
 *   takes the lease with an ETag-conditioned write, which only one of several racing instances
 *   wins, and holds it for `leaseMs`, renewed as it goes; `lastStartedAt` spaces the runs
 *   RECONCILE_INTERVAL apart, whichever instance's timer fired.
 * - RowKey `table|<logical name>`: the table's change tracking position. `deltaToken`
 *   (with the link it came in, and the server's time then, `syncedAt`) asks for the changes since;
 *   while a run pages through an answer, `nextLink` is the page to go on from (so a run cut short,
 *   or killed, goes on where it stopped rather than from the start), with `pendingSince` for a run
 *   that replays from a time.
 *
 * Rows are never deleted: one per table a handler reconciles, and the lease.
 */

export interface RunLease {
  holder: string;
  leaseUntil: number;
  etag: string;
}

export interface TablePosition {
  table: string;
  /** The token of the last delta link; null before the first run took one. */
  deltaToken: string | null;
  deltaLink: string | null;
  /** The service's time (its `Date` header) when that link was served, epoch ms. */
  syncedAt: number | null;
  /** A run's next page, while it pages through an answer; null between runs. */
  nextLink: string | null;
  /** What the answer being paged through is: the first token, a delta, or a replay from a time. */
  pending: 'token' | 'delta' | 'since' | null;
  /** For a replay from a time (`reconcile --since`): rows changed at or after this go on. */
  pendingSince: number | null;
  /** The `syncedAt` the answer being paged through started from: what tells a Create from an Update. */
  pendingFrom: number | null;
  lastRunAt: string | null;
  lastStatus: string | null;
}

const PARTITION = 'reconcile';
const LEASE = 'lease';
const positionKey = (table: string) => `table|${table}`;

interface LeaseRow {
  partitionKey: typeof PARTITION;
  rowKey: typeof LEASE;
  holder: string;
  leaseUntil: number;
  lastStartedAt: number;
}

type PositionRow = { partitionKey: typeof PARTITION; rowKey: string } & Partial<Record<string, string | number | null>>;

export type LeaseOutcome =
  | { kind: 'acquired'; lease: RunLease }
  | { kind: 'held'; holder: string; until: number }
  | { kind: 'not-due'; dueAt: number };

export class ReconcileState {
  constructor(
    private readonly table: TableClient,
    private readonly now: () => number = Date.now,
  ) {}

  private write<T>(operation: () => Promise<T>): Promise<T> {
    return provisioned(tableResource(this.table), operation);
  }

  /**
   * Takes the run's lease for `leaseMs` unless another holder's lease is still running, or (unless
   * `force`) the last run started less than `intervalMs` ago. Of instances racing for it, one wins.
   */
  async acquire(holder: string, leaseMs: number, intervalMs: number, force = false): Promise<LeaseOutcome> {
    const now = this.now();
    const row: LeaseRow = { partitionKey: PARTITION, rowKey: LEASE, holder, leaseUntil: now + leaseMs, lastStartedAt: now };
    const existing = await this.read<LeaseRow>(LEASE);
    try {
      if (!existing) {
        const created = await this.write(() => this.table.createEntity(row));
        return { kind: 'acquired', lease: { holder, leaseUntil: row.leaseUntil, etag: created.etag ?? '*' } };
      }
      if (existing.leaseUntil > now) return { kind: 'held', holder: existing.holder, until: existing.leaseUntil };
      if (!force && existing.lastStartedAt + intervalMs > now) return { kind: 'not-due', dueAt: existing.lastStartedAt + intervalMs };
      const updated = await this.table.updateEntity(row, 'Replace', { etag: existing.etag });
      return { kind: 'acquired', lease: { holder, leaseUntil: row.leaseUntil, etag: updated.etag ?? '*' } };
    } catch (error) {
      // Another instance took it in between.
      if (storageStatus(error) === 409 || storageStatus(error) === 412) {
        const winner = await this.read<LeaseRow>(LEASE);
        return { kind: 'held', holder: winner?.holder ?? 'another run', until: winner?.leaseUntil ?? now + leaseMs };
      }
      throw error;
    }
  }

  /** Ends the lease now, keeping when the run started (the interval counts from it). */
  async release(lease: RunLease): Promise<void> {
    try {
      await this.table.updateEntity({ partitionKey: PARTITION, rowKey: LEASE, leaseUntil: 0 }, 'Merge', { etag: lease.etag });
    } catch (error) {
      // Lost already: whoever holds it now is not disturbed.
      if (storageStatus(error) !== 412 && storageStatus(error) !== 404) throw error;
    }
  }

  async lease(): Promise<{ holder: string; leaseUntil: number; lastStartedAt: number } | null> {
    return this.read<LeaseRow>(LEASE);
  }

  async position(table: string): Promise<TablePosition> {
    const row = await this.read<PositionRow>(positionKey(table));
    const text = (name: string) => (typeof row?.[name] === 'string' ? (row[name] as string) : null);
    const number = (name: string) => (typeof row?.[name] === 'number' ? (row[name] as number) : null);
    const pending = text('pending');
    return {
      table,
      deltaToken: text('deltaToken'),
      deltaLink: text('deltaLink'),
      syncedAt: number('syncedAt'),
      nextLink: text('nextLink'),
      pending: pending === 'token' || pending === 'delta' || pending === 'since' ? pending : null,
      pendingSince: number('pendingSince'),
      pendingFrom: number('pendingFrom'),
      lastRunAt: text('lastRunAt'),
      lastStatus: text('lastStatus'),
    };
  }

  /** Writes a table's position (the whole row); the run holds the lease, so nobody else writes it meanwhile. */
  async savePosition(position: TablePosition): Promise<void> {
    const row = positionRow(position);
    await this.write(() => this.table.upsertEntity(row, 'Replace'));
  }

  /**
   * A table's position and the lease renewed, in one transaction: the position is saved only by the
   * lease's holder. Returns the renewed lease, or null when the lease was lost (nothing is written then).
   */
  async savePositionHeld(position: TablePosition, lease: RunLease, leaseMs: number): Promise<RunLease | null> {
    const leaseUntil = this.now() + leaseMs;
    try {
      const response = await this.table.submitTransaction([
        ['upsert', positionRow(position), 'Replace'],
        ['update', { partitionKey: PARTITION, rowKey: LEASE, leaseUntil }, 'Merge', { etag: lease.etag }],
      ]);
      const etag = response.subResponses.find((sub) => sub.rowKey === LEASE)?.etag;
      return { ...lease, leaseUntil, etag: etag ?? (await this.read<LeaseRow>(LEASE))?.etag ?? lease.etag };
    } catch (error) {
      if (storageStatus(error) === 412 || storageStatus(error) === 404) return null;
      throw error;
    }
  }

  private async read<T extends object>(rowKey: string): Promise<(T & { etag: string }) | null> {
    try {
      return await this.table.getEntity<T>(PARTITION, rowKey);
    } catch (error) {
      // No such row, or no table yet.
      if (storageStatus(error) === 404) return null;
      throw error;
    }
  }
}

function positionRow(position: TablePosition): PositionRow {
  const { table, ...fields } = position;
  const row: PositionRow = { partitionKey: PARTITION, rowKey: positionKey(table) };
  // Table storage keeps no nulls: a property left out is a property that is not there.
  for (const [name, value] of Object.entries(fields)) if (value !== null) row[name] = value;
  return row;
}
