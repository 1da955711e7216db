import type { TableClient } from '@azure/data-tables';
import type { DataverseEvent, Entity } from '../../dataverse';
import { AppliedChanges, type RecordChange } from '../../storage/appliedChanges';
import type { HandlerRegistry, RegisteredHandler } from '../handlerRegistry';

/**
 * Where a reconciled change and a delivered one meet, when the processor runs a unit of a
 * reconciling handler (process.ts calls it under the unit's claim, before the handler runs).
 *
 * A change found by reconciliation may also have been delivered: its webhook may still wait on the
 * queue (the app just came back), or an asynchronous step may POST it minutes later. Both copies
 * claim the same row of the ledger's table for it (storage/appliedChanges.ts: the handler, the
 * record, and created, deleted or updated at its `modifiedon`); the first claim runs the handler,
 * the other copy is a duplicate. A reconciled update also gives way to a newer change the handler
 * has taken on since the run found it (its state is no longer the latest).
 *
 * A change is known by `modifiedon`, which Dataverse keeps to the second: a missed change made in
 * the same second as a delivered one on the same record is taken for it (docs/reconcile.md).
 */

export type ChangeVerdict = 'run' | 'duplicate' | 'stale';

/** The reconciling handlers a reconciled event is for: those it names that still reconcile its table and message. */
export function reconciledHandlers(registry: HandlerRegistry, names: readonly string[], event: DataverseEvent): RegisteredHandler[] {
  const same = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();
  return registry.all.filter(
    (handler) =>
      handler.reconcile !== null &&
      names.includes(handler.name) &&
      same(handler.declaration.entity, event.primaryEntityName) &&
      handler.declaration.messages.some((message) => same(message, event.messageName)),
  );
}

export interface ChangeUnit {
  handler: RegisteredHandler;
  event: DataverseEvent;
  record: Entity | null;
  reconciled: boolean;
  /** The unit's idempotency key: the same on every retry, redelivery and replay of it. */
  owner: string;
  eventId: string;
  ledger: TableClient;
}

export async function claimChange(unit: ChangeUnit): Promise<ChangeVerdict> {
  const change = changeOf(unit);
  if (!change) return 'run';
  const applied = new AppliedChanges(unit.ledger);
  if (unit.reconciled && change.kind !== 'created') {
    const record = await applied.ofRecord(unit.handler.name, change.table, change.id);
    const newer = (claim: { owner: string; modifiedOn: number | null } | null) =>
      claim !== null &&
      claim.owner !== unit.owner &&
      claim.modifiedOn !== null &&
      change.modifiedOn !== null &&
      claim.modifiedOn > change.modifiedOn;
    if (change.kind === 'updated' && (newer(record.newestUpdate) || newer(record.created))) return 'stale';
    if (change.kind === 'updated' && record.deleted && record.deleted.owner !== unit.owner) return 'stale';
  }
  const claimed = await applied.claim(unit.handler.name, change, { owner: unit.owner, eventId: unit.eventId, reconciled: unit.reconciled });
  return claimed === 'claimed' || claimed === 'own' ? 'run' : 'duplicate';
}

/** The change this unit is about; null when it cannot be told (then it runs unclaimed, as any event of a handler that does not reconcile). */
function changeOf({ handler, event, record, reconciled }: ChangeUnit): RecordChange | null {
  if (!handler.reconcile) return null;
  // Only committed changes are what change tracking reports: a synchronous step before PostOperation is not one.
  if (!reconciled && event.stage !== 40) return null;
  const table = record?.logicalName ?? event.primaryEntityName;
  const id = record?.id ?? event.primaryEntityId;
  const message = event.messageName.toLowerCase();
  if (message === 'delete') return { table, id, kind: 'deleted', modifiedOn: null };
  const modifiedOn = timeOf(record?.attributes['modifiedon']) ?? secondsOf(event.operationCreatedOn);
  if (modifiedOn === null) return null;
  if (message === 'create') return { table, id, kind: 'created', modifiedOn };
  if (message === 'update') return { table, id, kind: 'updated', modifiedOn };
  return null;
}

function timeOf(value: unknown): number | null {
  return value instanceof Date ? value.getTime() : null;
}

/** A truncated event has no Target: the operation's time, to the second, stands for `modifiedon` (it is set by the same operation). */
function secondsOf(date: Date | null): number | null {
  return date === null ? null : Math.floor(date.getTime() / 1000) * 1000;
}
