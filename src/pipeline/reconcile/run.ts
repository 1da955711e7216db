import { randomUUID } from 'node:crypto';
import type { ColumnKind } from '../../dataverse/reconciledContext';
import {
  type ChangePage,
  ChangeTokenRefusedError,
  ChangeTrackingOffError,
  changePages,
  isDeletedRow,
  type PageRequest,
  readTrackedTable,
  type TrackedTable,
  whoAmIOf,
} from '../../dataverseApi/changeTracking';
import type { DataverseClient } from '../../dataverseApi/client';
import { describeError, type EventLog } from '../../observability/log';
import { NO_TELEMETRY, type Telemetry } from '../../observability/telemetry';
import type { ReconcileSettings } from '../../settings';
import type { StorageClients } from '../../storage/clients';
import { type ReconcileState, type RunLease, ReconcileState as State, type TablePosition } from '../../storage/reconcileState';
import type { HandlerRegistry } from '../handlerRegistry';
import { queueBatch, requeuePoisonedBatches } from './batch';
import { reconcilePlan, runColumns, selectOf, type TablePlan } from './plan';

/**
 * One reconciliation run: for each table a handler reconciles, ask Dataverse for the changes since
 * the table's last delta link and hand each page to the queue (batch.ts), whose function turns the
 * rows into events for what the handlers had not applied (fanOut.ts).
 *
 * - One run at a time across instances and the CLI: the run's lease in storage (ReconcileState),
 *   renewed after each page; RECONCILE_INTERVAL apart, unless asked now.
 * - The first run of a table only takes a token: it pages through the table's ids (the delta link
 *   comes only after the whole current state) and queues nothing, so no history floods the
 *   handlers. `since` (`reconcile --since`) instead replays every row changed since a time, from
 *   the current state (deletions before it cannot be known then).
 * - A refused token (expired: older than the organization's change tracking retention, 7 days by
 *   default; or unreadable) starts the table over from the current state, with a warning, the
 *   `reconcileRestarted` metric, and the time from which a `reconcile --since` would replay what
 *   could not be reconciled.
 * - A run stops starting pages at its deadline; the table's position keeps the next page, and the
 *   next run goes on from it.
 */

export interface ReconcileDependencies {
  storage: Pick<StorageClients, 'reconcile' | 'reconcileQueue' | 'reconcilePoisonQueue' | 'payloads'>;
  /** The organization's Web API (DATAVERSE_URL with the app's identity). */
  client: DataverseClient;
  handlers: HandlerRegistry;
  settings: ReconcileSettings;
  log: EventLog;
  telemetry?: Telemetry;
  now?: () => number;
  /** No page is started at or after this (epoch ms). */
  deadline: number;
  /** Who holds the lease, in logs: the instance, or the CLI. */
  holder?: string;
  /** Rows per page asked for (at most 5000, Dataverse's limit). */
  maxPageSize?: number;
}

export interface ReconcileRequest {
  /** Run now, however recently the last run started (the CLI). */
  force?: boolean;
  /** Replay every row changed at or after this time (epoch ms) instead of the changes since the token. */
  since?: number | null;
}

export type TableStatus = 'token-taken' | 'complete' | 'partial' | 'restarted' | 'tracking-off' | 'failed';

export interface TableReport {
  table: string;
  status: TableStatus;
  /** Rows new or changed, and rows deleted, found (queued for the handlers; a first run only counts them). */
  changed: number;
  deleted: number;
  pages: number;
  /** Why it failed, was restarted or is off. */
  detail?: string;
}

export type ReconcileReport =
  | { status: 'ran'; runId: string; tables: TableReport[]; requeuedBatches: number }
  | { status: 'nothing-to-reconcile' }
  | { status: 'held'; holder: string; until: number }
  | { status: 'not-due'; dueAt: number };

interface RunContext extends ReconcileDependencies {
  now: () => number;
  state: ReconcileState;
  lease: RunLease;
  runId: string;
  identity: { organizationId: string; userId: string };
  telemetry: Telemetry;
}

export async function reconcileNow(deps: ReconcileDependencies, request: ReconcileRequest = {}): Promise<ReconcileReport> {
  const plan = reconcilePlan(deps.handlers);
  if (plan.length === 0) return { status: 'nothing-to-reconcile' };
  const now = deps.now ?? Date.now;
  const state = new State(deps.storage.reconcile, now);
  const holder = deps.holder ?? `run ${randomUUID()}`;
  const taken = await state.acquire(holder, deps.settings.leaseMs, deps.settings.intervalMs, request.force === true);
  if (taken.kind === 'held') return { status: 'held', holder: taken.holder, until: taken.until };
  if (taken.kind === 'not-due') return { status: 'not-due', dueAt: taken.dueAt };
  const context: RunContext = {
    ...deps,
    now,
    state,
    lease: taken.lease,
    runId: randomUUID(),
    identity: { organizationId: '', userId: '' },
    telemetry: deps.telemetry ?? NO_TELEMETRY,
  };
  try {
    const requeuedBatches = await requeuePoisonedBatches(deps.storage);
    if (requeuedBatches > 0)
      deps.log.warn('Pages of changes had failed every attempt; they were put back on the reconcile queue', { requeuedBatches });
    context.identity = await identityOf(deps.client);
    const tables: TableReport[] = [];
    for (const table of plan) {
      // Every run goes at least one page forward.
      if (tables.length > 0 && now() >= deps.deadline) break;
      tables.push(await reconcileTable(context, table, request.since ?? null));
    }
    return { status: 'ran', runId: context.runId, tables, requeuedBatches };
  } finally {
    await state
      .release(context.lease)
      .catch((error: unknown) =>
        deps.log.warn('Could not release the reconcile lease; it lapses by itself', { error: describeError(error) }),
      );
  }
}

/** Who the app is in the organization: asked once per client (a worker keeps one), as it does not change. */
const identities = new WeakMap<DataverseClient, Promise<{ organizationId: string; userId: string }>>();

function identityOf(client: DataverseClient): Promise<{ organizationId: string; userId: string }> {
  let identity = identities.get(client);
  if (!identity) {
    identity = whoAmIOf(client);
    identities.set(client, identity);
    identity.catch(() => identities.delete(client));
  }
  return identity;
}

/** One table, reported whatever happens: a table that fails does not stop the others. */
async function reconcileTable(context: RunContext, plan: TablePlan, since: number | null): Promise<TableReport> {
  const report: TableReport = { table: plan.table, status: 'complete', changed: 0, deleted: 0, pages: 0 };
  try {
    const table = await readTrackedTable(context.client, plan.table);
    if (!table.changeTrackingEnabled) throw new ChangeTrackingOffError(`change tracking is off for ${plan.table}`);
    const position = await context.state.position(plan.table);
    await pageThrough(context, plan, table, startOf(position, table, plan, since), report);
  } catch (error) {
    report.status = error instanceof ChangeTrackingOffError ? 'tracking-off' : 'failed';
    report.detail =
      error instanceof ChangeTrackingOffError
        ? `change tracking is off for ${plan.table}: turn it on with "dataverse-webhooks register --enable-change-tracking"`
        : describeError(error);
    context.log.error('Reconciliation of a table failed; the next run tries again', { table: plan.table, error: report.detail });
  }
  emitReport(context, report);
  return report;
}

/** Where this run starts for a table, and what it is: a first token, a replay from a time, or the changes since the token. */
interface Start {
  request: PageRequest;
  pending: NonNullable<TablePosition['pending']>;
  since: number | null;
  /** The time a row must be created at or after to be a Create. */
  from: number | null;
  position: TablePosition;
  /** The columns asked for, and kept with each page for the fan-out. */
  columns: Map<string, ColumnKind>;
}

function startOf(position: TablePosition, table: TrackedTable, plan: TablePlan, since: number | null): Start {
  const columns = runColumns(plan, table);
  const select = selectOf(columns);
  const base = { position, columns };
  const resumable = since === null ? position.pending !== 'since' : position.pending === 'since' && position.pendingSince === since;
  if (position.nextLink && position.pending && resumable) {
    const request = { kind: 'next' as const, link: position.nextLink };
    return { ...base, request, pending: position.pending, since: position.pendingSince, from: position.pendingFrom };
  }
  if (since !== null) return { ...base, request: { kind: 'initial', select }, pending: 'since', since, from: since };
  if (position.deltaToken)
    return {
      ...base,
      request: { kind: 'delta', select, token: position.deltaToken },
      pending: 'delta',
      since: null,
      from: position.syncedAt,
    };
  // The first run: the ids alone, to reach the delta link at the end of the current state.
  return { ...base, request: { kind: 'initial', select: [table.primaryIdAttribute] }, pending: 'token', since: null, from: null };
}

/**
 * Pages through the answer; a page link that no longer works sends the run back to the start of
 * its answer (the token, or the full sync), and a refused token starts the table over.
 */
async function pageThrough(context: RunContext, plan: TablePlan, table: TrackedTable, start: Start, report: TableReport): Promise<void> {
  let current = start;
  for (let attempt = 0; ; attempt++) {
    try {
      await pages(context, table, current, report);
      return;
    } catch (error) {
      if (!(error instanceof ChangeTokenRefusedError) || attempt >= 2) throw error;
      if (error.pageLink) {
        context.log.warn('A saved page link was refused; the answer is asked for again from its start', { table: plan.table });
        const cleared = { ...current.position, nextLink: null, pending: null, pendingSince: null, pendingFrom: null };
        current = startOf(cleared, table, plan, current.pending === 'since' ? current.since : null);
      } else if (current.request.kind === 'delta') {
        current = restart(context, table, plan, current, error);
        report.status = 'restarted';
      } else throw error;
    }
  }
}

function restart(context: RunContext, table: TrackedTable, plan: TablePlan, failed: Start, error: ChangeTokenRefusedError): Start {
  const lostSince = failed.position.syncedAt === null ? null : new Date(failed.position.syncedAt).toISOString();
  context.log.warn(
    'Dataverse refused the change tracking token; starting over from the current state. The changes since the last run are not reconciled: replay them with "dataverse-webhooks reconcile --since <lastSyncedAt>"',
    { table: plan.table, lastSyncedAt: lostSince, expired: error.expired, error: error.message },
  );
  context.telemetry.metric('reconcileRestarted', 1, { table: plan.table, reason: error.expired ? 'expired' : 'refused' });
  const cleared: TablePosition = { ...failed.position, deltaToken: null, deltaLink: null, nextLink: null, pending: null };
  return startOf(cleared, table, plan, null);
}

async function pages(context: RunContext, table: TrackedTable, start: Start, report: TableReport): Promise<void> {
  for await (const page of changePages(context.client, table, start.request, { maxPageSize: context.maxPageSize })) {
    report.pages++;
    if (start.pending !== 'token') {
      const counts = countRows(page);
      report.changed += counts.changed;
      report.deleted += counts.deleted;
    }
    if (start.pending !== 'token' && page.rows.length > 0) {
      await queueBatch(
        context.storage,
        { text: page.text, columns: start.columns },
        {
          table: table.logicalName,
          primaryIdAttribute: table.primaryIdAttribute,
          from: start.from,
          since: start.since,
          organizationId: context.identity.organizationId,
          userId: context.identity.userId,
          runId: context.runId,
          page: report.pages,
        },
      );
    }
    await savePage(context, start, page);
    if (page.nextLink && context.now() >= context.deadline) {
      report.status = 'partial';
      return;
    }
  }
  if (start.pending === 'token' && report.status !== 'restarted') report.status = 'token-taken';
}

function countRows(page: ChangePage): { changed: number; deleted: number } {
  const deleted = page.rows.filter(isDeletedRow).length;
  return { changed: page.rows.length - deleted, deleted };
}

/** After a page is queued: the next page to go on from, or, on the last page, the new token. */
async function savePage(context: RunContext, start: Start, page: ChangePage): Promise<void> {
  const last = page.nextLink === null;
  // A replay from a time keeps the token it found: the next run still asks for everything since it,
  // deletions included, which a full read cannot see (what the replay ran is not run again).
  const keepToken = start.pending === 'since' && start.position.deltaToken !== null;
  const position: TablePosition = {
    ...start.position,
    ...(last
      ? {
          ...(keepToken ? {} : { deltaToken: page.deltaToken, deltaLink: page.deltaLink, syncedAt: page.servedAt ?? context.now() }),
          nextLink: null,
          pending: null,
          pendingSince: null,
          pendingFrom: null,
        }
      : { nextLink: page.nextLink, pending: start.pending, pendingSince: start.since, pendingFrom: start.from }),
    lastRunAt: new Date(context.now()).toISOString(),
    lastStatus: last ? 'complete' : 'paging',
  };
  const renewed = await context.state.savePositionHeld(position, context.lease, context.settings.leaseMs);
  if (!renewed) throw new Error('the reconcile lease was lost (another run took it after it lapsed): this run stops');
  context.lease = renewed;
  start.position = position;
}

function emitReport(context: RunContext, report: TableReport): void {
  context.log.info('Reconcile run', {
    table: report.table,
    status: report.status,
    changed: report.changed,
    deleted: report.deleted,
    pages: report.pages,
  });
  context.telemetry.event(
    'reconcileRun',
    { table: report.table, status: report.status, reason: report.detail },
    { changed: report.changed, deleted: report.deleted, pages: report.pages },
  );
}
