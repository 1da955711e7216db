import { type ColumnKind, webApiColumn } from '../../dataverse/reconciledContext';
import { RECONCILABLE_MESSAGES, type ReconcilableMessage } from '../../dataverse/reconcileRules';
import type { TrackedTable } from '../../dataverseApi/changeTracking';
import type { HandlerRegistry } from '../handlerRegistry';

/**
 * What reconciliation asks Dataverse for, derived from the handlers that declare `reconcile`: the
 * tables, and per table the handlers, their messages and the columns of their reconciled Targets.
 * One owner for the fact: the declarations; the run, the fan-out, `reconcile --plan` and `status`
 * all read it from here.
 */

export interface ReconcilingHandler {
  name: string;
  messages: readonly ReconcilableMessage[];
  /** The columns its reconciled Target holds; null for every column. */
  columns: readonly string[] | null;
}

export interface TablePlan {
  table: string;
  handlers: readonly ReconcilingHandler[];
}

/** The columns every reconciled Target holds besides the declared ones: what tells a change apart, and who made it. */
export const SYSTEM_COLUMNS = ['createdon', 'modifiedon', 'createdby', 'modifiedby'] as const;

export function reconcilePlan(handlers: HandlerRegistry): TablePlan[] {
  const tables = new Map<string, ReconcilingHandler[]>();
  for (const handler of handlers.all) {
    if (!handler.reconcile) continue;
    const table = handler.declaration.entity.toLowerCase();
    const messages = RECONCILABLE_MESSAGES.filter((message) =>
      handler.declaration.messages.some((declared) => declared.toLowerCase() === message.toLowerCase()),
    );
    const list = tables.get(table) ?? [];
    list.push({ name: handler.name, messages, columns: handler.reconcile.columns });
    tables.set(table, list);
  }
  return [...tables].map(([table, list]) => ({ table, handlers: list }));
}

export class ReconcileColumnsError extends Error {
  override readonly name = 'ReconcileColumnsError';
}

/**
 * The columns a run asks for (and their kinds): the union of what the table's handlers declared,
 * every column change tracking can return when one of them wants all, always the primary key and
 * SYSTEM_COLUMNS. A declared column the table does not have is an error that names it.
 */
export function runColumns(plan: TablePlan, table: TrackedTable): Map<string, ColumnKind> {
  const every = plan.handlers.some((handler) => handler.columns === null);
  const wanted = every ? [...table.columns.keys()] : [...new Set(plan.handlers.flatMap((handler) => handler.columns ?? []))];
  const unknown = wanted.filter((column) => !table.columns.has(column));
  if (unknown.length > 0)
    throw new ReconcileColumnsError(
      `${plan.table} has no column ${unknown.join(', ')} that change tracking can return (declared by reconcile of ${plan.handlers.map((handler) => handler.name).join(', ')})`,
    );
  const columns = new Map<string, ColumnKind>();
  for (const column of [table.primaryIdAttribute, ...SYSTEM_COLUMNS, ...wanted]) {
    const kind = table.columns.get(column);
    if (kind) columns.set(column, kind);
  }
  return columns;
}

/** `$select` of those columns, as the Web API names them. */
export function selectOf(columns: ReadonlyMap<string, ColumnKind>): string[] {
  return [...columns].map(([column, kind]) => webApiColumn(column, kind));
}

/** The columns one reconciled event's Target holds: those of the handlers it is for, and the system ones. */
export function targetColumns(
  handlers: readonly ReconcilingHandler[],
  batchColumns: ReadonlyMap<string, ColumnKind>,
  primaryIdAttribute: string,
): Map<string, ColumnKind> {
  if (handlers.some((handler) => handler.columns === null)) return new Map(batchColumns);
  const names = new Set<string>([primaryIdAttribute, ...SYSTEM_COLUMNS, ...handlers.flatMap((handler) => handler.columns ?? [])]);
  return new Map([...batchColumns].filter(([column]) => names.has(column)));
}
