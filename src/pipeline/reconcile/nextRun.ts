import type { TrackedTable } from '../../dataverseApi/changeTracking';
import type { ReconcileSettings } from '../../settings';
import type { StorageClients } from '../../storage/clients';
import { ReconcileState } from '../../storage/reconcileState';
import type { HandlerRegistry } from '../handlerRegistry';
import { type ReconcilingHandler, reconcilePlan, runColumns, SYSTEM_COLUMNS, selectOf } from './plan';

/**
 * What the next run would ask, table by table, from what is stored (`reconcile --plan`): no
 * request is sent to Dataverse unless its definitions are given (then the exact `$select`).
 */

export interface NextTableRun {
  table: string;
  handlers: readonly ReconcilingHandler[];
  /** What the next run does: take a first token, go on from a page, or ask for the changes since the token. */
  next: 'first-token' | 'next-page' | 'changes-since-token';
  /** The request it sends (without the organization's service root), as far as it is known. */
  request: string | null;
  /** The columns it asks for: the declared ones and the system ones; null for every column. */
  columns: readonly string[] | null;
  /** When the token was served (the service's time), ISO. */
  tokenTakenAt: string | null;
  lastRunAt: string | null;
  lastStatus: string | null;
  /** Known when the table's definition was read: whether change tracking is on. */
  changeTracking: boolean | null;
}

export interface NextRun {
  intervalMinutes: number;
  /** The lease: who holds it and until when, when held; and when the last run started. */
  heldBy: string | null;
  heldUntil: string | null;
  lastStartedAt: string | null;
  dueAt: string | null;
  tables: NextTableRun[];
}

export async function describeNextRun(
  storage: Pick<StorageClients, 'reconcile'>,
  handlers: HandlerRegistry,
  settings: ReconcileSettings,
  definitions: ReadonlyMap<string, TrackedTable> = new Map(),
  now: number = Date.now(),
): Promise<NextRun> {
  const state = new ReconcileState(storage.reconcile);
  const lease = await state.lease();
  const tables: NextTableRun[] = [];
  for (const plan of reconcilePlan(handlers)) {
    const position = await state.position(plan.table);
    const definition = definitions.get(plan.table);
    const every = plan.handlers.some((handler) => handler.columns === null);
    const select = definition ? selectOf(runColumns(plan, definition)) : null;
    const entitySet = definition?.entitySetName ?? (position.deltaLink ? new URL(position.deltaLink).pathname.split('/').at(-1) : null);
    const next = position.nextLink ? 'next-page' : position.deltaToken ? 'changes-since-token' : 'first-token';
    const query = (columns: readonly string[]) => `${entitySet}?$select=${columns.join(',')}`;
    const request =
      next === 'next-page'
        ? position.nextLink
        : !entitySet
          ? null
          : next === 'first-token'
            ? definition
              ? query([definition.primaryIdAttribute])
              : null
            : `${query(select ?? ['…'])}&$deltatoken=${encodeURIComponent(position.deltaToken ?? '')}`;
    tables.push({
      table: plan.table,
      handlers: plan.handlers,
      next,
      request,
      columns: every ? null : [...new Set([...SYSTEM_COLUMNS, ...plan.handlers.flatMap((handler) => handler.columns ?? [])])],
      tokenTakenAt: position.syncedAt === null ? null : new Date(position.syncedAt).toISOString(),
      lastRunAt: position.lastRunAt,
      lastStatus: position.lastStatus,
      changeTracking: definition ? definition.changeTrackingEnabled : null,
    });
  }
  const iso = (time: number | undefined) => (time ? new Date(time).toISOString() : null);
  const held = lease !== null && lease.leaseUntil > now;
  return {
    intervalMinutes: settings.intervalMs / 60_000,
    heldBy: held ? lease.holder : null,
    heldUntil: held ? iso(lease.leaseUntil) : null,
    lastStartedAt: iso(lease?.lastStartedAt),
    dueAt: iso(lease ? lease.lastStartedAt + settings.intervalMs : now),
    tables,
  };
}
