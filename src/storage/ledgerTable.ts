import type { TableClient, TableEntityResult, TransactionAction } from '@azure/data-tables';
import type { RecordVersion } from '../dataverse/accessors';
import { isMissingResource, storageStatus } from './errors';
import { provisioned, tableResource } from './provision';

/**
 * The effects-once ledger's table: its rows, their keys and columns, and what it means to read and
 * write one (the table created on a write's first use; status codes turned into outcomes). The
 * protocol that decides what to write, and when, is the pipeline's: src/pipeline/ledger/.
 *
 * Keys (what retention and any other reader may rely on):
 * - PartitionKey = the delivery key (64 lowercase hex characters, src/pipeline/deliveryKey.ts);
 *   RowKey = the unit (`<handler>` or `<handler>~<record id, lowercase>`), `$event` or `$failure`.
 *   Every row of one delivery shares its partition. `updatedAt` (unit rows) and `settledAt`
 *   (`$event`) are ISO times.
 * - PartitionKey = `record|<table>|<record id, lowercase>`; RowKey = the handler: the watermarks.
 *
 * Reads of a table that does not exist find nothing, as they would in an empty one.
 */

export type UnitState = 'processing' | 'done' | 'stale' | 'failed';
export type EventSettlement = 'processed' | 'unhandled' | 'depth-exceeded';

/** What an inline handler decided, on its unit's row (for a save that failed). */
export type DecisionColumns = {
  decision: 'allow' | 'reject';
  reason: string;
  code: string;
};

export type UnitRow = {
  partitionKey: string;
  rowKey: string;
  state: UnitState;
  eventId: string;
  attempts: number;
  /**
   * Who wrote the row: a random id of the claim (kept by every write of its holder), or of the
   * claimant that recorded a dead run. Read back when a write's reply was lost, it tells our own
   * write from someone else's.
   */
  token?: string;
  /** Which write of the holder this is (0: the claim; one more at each write it tries): what was written, read back. */
  seq?: number;
  /** How long the lease lasts from this row's last write, on the Table service's clock (its `Timestamp`). */
  leaseMs?: number;
  /**
   * When the lease ends on the writer's own clock (epoch ms): informational only, compared with no
   * one's clock (versions that measured leases on each instance's clock read it).
   */
  leaseUntil: number;
  lastError?: string;
  updatedAt: string;
  /** The envelope's `replays` when the unit was last claimed: a replay starts its attempts again. */
  replays?: number;
  /**
   * A failed unit is not taken over for this long after the row's last write (on the service's
   * clock): copies that died together come back apart.
   */
  retryAfterMs?: number;
} & Partial<DecisionColumns>;

/** A renewal's columns: merged into the unit's row. */
export type RenewalColumns = Pick<UnitRow, 'partitionKey' | 'rowKey' | 'seq' | 'leaseMs' | 'leaseUntil' | 'updatedAt'>;

export type EventRow = {
  partitionKey: string;
  rowKey: typeof EVENT_ROW;
  eventId: string;
  outcome: EventSettlement;
  settledAt: string;
};

export type WatermarkRow = {
  partitionKey: string;
  rowKey: string;
  kind: RecordVersion['kind'];
  value: string;
  eventId: string;
};

/** The row that says an event is settled (a copy of a claim-check event that finds its blob gone reads it). */
export const EVENT_ROW = '$event';
/** The row that says why an event failed outside any handler. */
export const FAILURE_ROW = '$failure';

export interface RecordAddress {
  table: string;
  id: string;
}

export function watermarkPartition(record: RecordAddress): string {
  return `record|${record.table}|${record.id.toLowerCase()}`;
}

/** A row as read, with the ETag a conditional write of it needs. */
export type Read<T> = T & { etag: string };

/**
 * A row as read, with two times on the Table service's own clock: when the row was last written
 * (its `Timestamp`, which the service sets on every insert, update and merge) and when the service
 * answered the read (the response's `Date`, to the second). Their difference is how long ago the
 * row was written, whatever the reader's clock says.
 */
export interface Found<T> {
  row: Read<T>;
  writtenAt: number;
  /** The answer's `Date` (epoch ms, whole seconds: RFC 1123), or null when the answer had none. */
  answeredAt: number | null;
}

export type Written = { etag: string };

export class LedgerTable {
  constructor(readonly client: TableClient) {}

  /** A write, on a table created first if storage says it does not exist. */
  private write<T>(operation: () => Promise<T>): Promise<T> {
    return provisioned(tableResource(this.client), operation);
  }

  /** One row, or null when there is none (or no table yet). */
  async read<T extends object>(partitionKey: string, rowKey: string): Promise<Read<T> | null> {
    return (await this.find<T>(partitionKey, rowKey))?.row ?? null;
  }

  /** One row with the service's times (see Found), or null when there is none (or no table yet). */
  async find<T extends object>(partitionKey: string, rowKey: string): Promise<Found<T> | null> {
    let answeredAt: number | null = null;
    let row: TableEntityResult<T>;
    try {
      row = await this.client.getEntity<T>(partitionKey, rowKey, {
        onResponse: (response) => {
          const date = Date.parse(response.headers.get('date') ?? '');
          answeredAt = Number.isNaN(date) ? null : date;
        },
      });
    } catch (error) {
      if (storageStatus(error) === 404) return null;
      throw error;
    }
    // The SDK turns an Edm.DateTime into a Date, whatever its type says.
    const timestamp: unknown = row.timestamp;
    const writtenAt = timestamp instanceof Date ? timestamp.getTime() : Date.parse(String(timestamp));
    return { row: row as Read<T>, writtenAt, answeredAt };
  }

  /** Inserts a row: `exists` when one with its keys is there already (409). */
  async insert(row: UnitRow | WatermarkRow): Promise<Written | 'exists'> {
    try {
      const created = await this.write(() => this.client.createEntity(row));
      return { etag: created.etag ?? '*' };
    } catch (error) {
      if (storageStatus(error) === 409) return 'exists';
      throw error;
    }
  }

  /**
   * Writes a row that was read with `etag`, if it is still as read: `changed` when it was written
   * since (412), `missing` when it is gone (404).
   */
  async update(
    row: UnitRow | RenewalColumns | WatermarkRow,
    mode: 'Replace' | 'Merge',
    etag: string,
  ): Promise<Written | 'changed' | 'missing'> {
    try {
      const updated = await this.client.updateEntity(row, mode, { etag });
      return { etag: updated.etag ?? etag };
    } catch (error) {
      if (storageStatus(error) === 412) return 'changed';
      if (storageStatus(error) === 404) return 'missing';
      throw error;
    }
  }

  /** Writes a row whatever is there. */
  async upsert(row: UnitRow | EventRow): Promise<void> {
    await this.write(() => this.client.upsertEntity(row, 'Replace'));
  }

  /**
   * Writes rows of one partition together: all or none. `changed` when an action conditioned on an
   * ETag found its row written since (412), `missing` when its row is gone (404).
   */
  async transaction(actions: TransactionAction[]): Promise<Written | 'changed' | 'missing'> {
    try {
      const response = await this.write(() => this.client.submitTransaction(actions));
      return { etag: response.subResponses[0]?.etag ?? '*' };
    } catch (error) {
      if (storageStatus(error) === 412) return 'changed';
      if (storageStatus(error) === 404 && !isMissingResource('table', error)) return 'missing';
      throw error;
    }
  }

  /** Every row of a partition (none when there is no table). */
  async partition<T extends object>(partitionKey: string): Promise<Array<Read<T> & { rowKey: string }>> {
    const rows: Array<Read<T> & { rowKey: string }> = [];
    const query = this.client.listEntities<T>({ queryOptions: { filter: `PartitionKey eq '${partitionKey.replaceAll("'", "''")}'` } });
    try {
      for await (const row of query) rows.push({ ...row, etag: row.etag, rowKey: row.rowKey ?? '' } as Read<T> & { rowKey: string });
    } catch (error) {
      if (!isMissingResource('table', error)) throw error;
    }
    return rows;
  }
}
