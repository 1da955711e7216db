import type { TableClient } from '@azure/data-tables';
import { storageStatus } from './errors';
import { provisioned, tableResource } from './provision';

/**
 * Which changes of a record each reconciling handler has taken on, in the effects-once ledger's
 * table (so retention removes them like any ledger row, RETENTION_DAYS after they were written).
 *
 * One row per change a unit of work claimed: a handler's run for a delivered event of the record,
 * or for a reconciled one. A change is known by what both paths can see of it: the row was
 * created, deleted, or updated at a `modifiedon` (Dataverse keeps it to the second; a webhook's
 * PostOperation Target carries it, and so does every row change tracking returns). The row is
 * inserted before the handler runs, so the delivered and the reconciled copy of one change contend
 * for it and only one runs it; the other finds it taken. The claimant's retries find their own
 * claim (`owner`) and go on.
 *
 * Keys:
 * - PartitionKey `applied|<table>|<record id, lowercase>`;
 * - RowKey `<handler>|c` (created), `<handler>|d` (deleted), `<handler>|u|<13 digits>` (updated:
 *   9999999999999 less `modifiedon` in epoch ms, so that the newest update sorts first).
 */

export type ChangeKind = 'created' | 'updated' | 'deleted';

export interface RecordChange {
  table: string;
  id: string;
  kind: ChangeKind;
  /** The record's `modifiedon` (epoch ms, whole seconds); null for a deletion. */
  modifiedOn: number | null;
}

export interface ChangeClaim {
  /** The unit of work that took it: its idempotency key, the same on every retry of that unit. */
  owner: string;
  eventId: string;
  reconciled: boolean;
  modifiedOn: number | null;
}

/** What a handler has taken on for a record, for deciding whether a change is newer. */
export interface AppliedOfRecord {
  created: ChangeClaim | null;
  deleted: ChangeClaim | null;
  /** The claim of the newest update. */
  newestUpdate: ChangeClaim | null;
}

const INVERTED = 9_999_999_999_999;

export function appliedPartition(table: string, id: string): string {
  return `applied|${table.toLowerCase()}|${id.toLowerCase()}`;
}

function rowKeyOf(handler: string, change: Pick<RecordChange, 'kind' | 'modifiedOn'>): string {
  if (change.kind === 'created') return `${handler}|c`;
  if (change.kind === 'deleted') return `${handler}|d`;
  return `${handler}|u|${String(INVERTED - (change.modifiedOn ?? 0)).padStart(13, '0')}`;
}

interface ClaimRow {
  partitionKey: string;
  rowKey: string;
  owner: string;
  eventId: string;
  reconciled: boolean;
  modifiedOn?: number;
}

function claimOf(row: Partial<ClaimRow>): ChangeClaim {
  return {
    owner: row.owner ?? '',
    eventId: row.eventId ?? '',
    reconciled: row.reconciled === true,
    modifiedOn: typeof row.modifiedOn === 'number' ? row.modifiedOn : null,
  };
}

export class AppliedChanges {
  constructor(private readonly ledger: TableClient) {}

  /**
   * Claims a change for a unit of work: 'claimed' when this unit is the first, 'own' when it had
   * claimed it before (a retry), or the claim of the unit that took it first.
   */
  async claim(handler: string, change: RecordChange, claimant: Omit<ChangeClaim, 'modifiedOn'>): Promise<'claimed' | 'own' | ChangeClaim> {
    const row: ClaimRow = {
      partitionKey: appliedPartition(change.table, change.id),
      rowKey: rowKeyOf(handler, change),
      owner: claimant.owner,
      eventId: claimant.eventId,
      reconciled: claimant.reconciled,
      ...(change.modifiedOn !== null ? { modifiedOn: change.modifiedOn } : {}),
    };
    try {
      await provisioned(tableResource(this.ledger), () => this.ledger.createEntity(row));
      return 'claimed';
    } catch (error) {
      if (storageStatus(error) !== 409) throw error;
    }
    const existing = claimOf(await this.ledger.getEntity<ClaimRow>(row.partitionKey, row.rowKey));
    return existing.owner === claimant.owner ? 'own' : existing;
  }

  /** The handler's claims on a record that decide what is newer: one query (created, deleted, the newest update). */
  async ofRecord(handler: string, table: string, id: string): Promise<AppliedOfRecord> {
    const applied: AppliedOfRecord = { created: null, deleted: null, newestUpdate: null };
    const quoted = (text: string) => text.replaceAll("'", "''");
    const partition = appliedPartition(table, id);
    const pages = this.ledger
      .listEntities<ClaimRow>({
        queryOptions: {
          filter: `PartitionKey eq '${quoted(partition)}' and RowKey ge '${quoted(handler)}|' and RowKey lt '${quoted(handler)}}'`,
        },
      })
      .byPage({ maxPageSize: 3 });
    try {
      // `c` and `d` sort before `u|`, and the newest update first among those: the first page holds all three.
      for await (const page of pages) {
        for (const row of page) {
          const suffix = (row.rowKey ?? '').slice(handler.length + 1);
          if (suffix === 'c') applied.created = claimOf(row);
          else if (suffix === 'd') applied.deleted = claimOf(row);
          else if (suffix.startsWith('u|') && !applied.newestUpdate) applied.newestUpdate = claimOf(row);
        }
        break;
      }
    } catch (error) {
      // No ledger table yet: nothing was ever applied.
      if (storageStatus(error) !== 404) throw error;
    }
    return applied;
  }
}

/** The newest `modifiedon` a handler took on for a record (its creation or an update); null when none. */
export function newestApplied(applied: AppliedOfRecord): number | null {
  const times = [applied.created?.modifiedOn, applied.newestUpdate?.modifiedOn].filter((time): time is number => typeof time === 'number');
  return times.length > 0 ? Math.max(...times) : null;
}
