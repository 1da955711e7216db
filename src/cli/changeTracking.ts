import { changeTrackingOf, enableChangeTracking } from '../dataverseApi/changeTracking';
import type { DataverseClient } from '../dataverseApi/client';
import type { HandlerRegistry } from '../pipeline/handlerRegistry';
import { reconcilePlan } from '../pipeline/reconcile/plan';

/** Change tracking on each table a handler reconciles: what `register` turns on (when asked) and `status` reports. */
export interface TableTracking {
  table: string;
  handlers: string[];
  enabled: boolean;
  /** `register --enable-change-tracking` turned it on in this run. */
  turnedOn?: boolean;
}

export async function trackingOfReconciledTables(client: DataverseClient, handlers: HandlerRegistry): Promise<TableTracking[]> {
  const plan = reconcilePlan(handlers);
  if (plan.length === 0) return [];
  const states = await changeTrackingOf(
    client,
    plan.map((table) => table.table),
  );
  return plan.map((table) => ({
    table: table.table,
    handlers: table.handlers.map((handler) => handler.name),
    enabled: states.get(table.table) === true,
  }));
}

/** Turns it on where it is off; returns the tables, marked. */
export async function enableTrackingWhereOff(client: DataverseClient, tables: readonly TableTracking[]): Promise<TableTracking[]> {
  const result: TableTracking[] = [];
  for (const table of tables) {
    if (table.enabled) result.push(table);
    else result.push({ ...table, enabled: true, turnedOn: await enableChangeTracking(client, table.table) });
  }
  return result;
}

/** One line per table that reconciles without change tracking; nothing when all have it. */
export function trackingOffLines(tables: readonly TableTracking[], advice: string): string[] {
  return tables
    .filter((table) => !table.enabled)
    .map(
      (table) =>
        `change tracking is off for ${table.table}, which ${table.handlers.join(', ')} reconcile(s): nothing is reconciled there; ${advice}`,
    );
}
