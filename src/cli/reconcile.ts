import { parseArgs } from 'node:util';
import { readTrackedTable, type TrackedTable } from '../dataverseApi/changeTracking';
import { describeError, type EventLog } from '../observability/log';
import { describeNextRun, type NextRun } from '../pipeline/reconcile/nextRun';
import { reconcilePlan } from '../pipeline/reconcile/plan';
import { type ReconcileReport, reconcileNow } from '../pipeline/reconcile/run';
import { readReconcileSettings } from '../settings';
import { type HandlersSource, loadAppHandlers, resolveHandlers } from './appHandlers';
import {
  AUTHENTICATION_HELP,
  AZURE_DEPENDENCIES,
  type ConnectionDependencies,
  connectToDataverse,
  ORG_OPTION_HELP,
} from './dataverseConnection';
import { type CommandIO, UsageError } from './io';
import { cliStorage } from './storageConnection';

export const RECONCILE_USAGE = `Usage: dataverse-webhooks reconcile [--plan] [--since TIME] [--org URL] [--json]

Runs reconciliation now: asks Dataverse, through change tracking, what changed on each table a handler reconciles (reconcile in on(…)) since the last run, and queues it for the app.
The app's queueReconciledChanges function then turns each change its handlers had not applied into an
event, handled like a delivered one (docs/reconcile.md). One run at a time: when the app's timer holds
the run's lease, this says so and does nothing. A table's first run only takes a token (nothing is
replayed); a refused token (expired) starts the table over from the current state, with a warning.

  --plan         print what the next run would ask of each table (its request, columns and token), from
                 storage and the handlers; with --org or DATAVERSE_URL, also whether change tracking is
                 on and the exact columns (one definition read per table). Nothing is written
  --since TIME   replay every row changed at or after TIME (ISO 8601, e.g. 2026-05-01T14:00:00Z), from
                 its current state, whatever the token says: after a refused token, or a known outage.
                 Deletions cannot be replayed this way (a full read sees only the rows there are); a
                 table's token is kept, so the next run still reports the deletions since it
${ORG_OPTION_HELP}
  --json         print the result as JSON

Uses AzureWebJobsStorage (the environment, else local.settings.json), as the app does.

${AUTHENTICATION_HELP}`;

interface ReconcileOptions {
  plan: boolean;
  since: number | null;
  org: string | undefined;
  json: boolean;
}

function options(args: string[]): ReconcileOptions {
  const { values } = parseArgs({
    args,
    allowPositionals: false,
    options: {
      plan: { type: 'boolean', default: false },
      since: { type: 'string' },
      org: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
  });
  const since = values.since === undefined ? null : Date.parse(values.since);
  if (since !== null && (Number.isNaN(since) || !/\d{4}-\d{2}-\d{2}/.test(values.since ?? '')))
    throw new UsageError(`--since takes an ISO 8601 time such as 2026-05-01T14:00:00Z, not "${String(values.since).slice(0, 40)}"`);
  if (values.plan && since !== null) throw new UsageError('Pass --plan (what the next run asks) or --since (run one now), not both');
  return { plan: values.plan, since, org: values.org, json: values.json };
}

export function createReconcileCommand(dependencies: ConnectionDependencies, handlerSource: HandlersSource = loadAppHandlers) {
  return async function reconcileCommand(args: string[], io: CommandIO): Promise<number> {
    const given = options(args);
    const handlers = await resolveHandlers(handlerSource);
    const plan = reconcilePlan(handlers);
    if (plan.length === 0) {
      io.stdout('No handler reconciles (declare reconcile in on(…), see docs/reconcile.md): nothing to ask.\n');
      return 0;
    }
    const settings = readReconcileSettings(io.env);
    const storage = await cliStorage(io);
    const hasOrganization = given.org !== undefined || Boolean(io.env.DATAVERSE_URL);
    if (given.plan) {
      const definitions = new Map<string, TrackedTable>();
      if (hasOrganization) {
        const { client } = connectToDataverse(given.org, io, dependencies);
        for (const table of plan) definitions.set(table.table, await readTrackedTable(client, table.table));
      }
      const next = await describeNextRun(storage, handlers, settings, definitions);
      io.stdout(given.json ? `${JSON.stringify(next, null, 2)}\n` : formatNextRun(next, hasOrganization));
      return 0;
    }
    const { client } = connectToDataverse(given.org, io, dependencies);
    const report = await reconcileNow(
      { storage, client, handlers, settings, log: stderrLog(io), deadline: Date.now() + 30 * 60_000, holder: 'the reconcile command' },
      { force: true, since: given.since },
    );
    io.stdout(given.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
    return report.status === 'ran' && report.tables.some((table) => table.status === 'failed' || table.status === 'tracking-off') ? 1 : 0;
  };
}

export const reconcileCommand = createReconcileCommand(AZURE_DEPENDENCIES);

/** The run's warnings and errors, one line each on stderr (its progress lines are left out). */
function stderrLog(io: CommandIO): EventLog {
  const line = (message: string, properties?: Record<string, unknown>) =>
    io.stderr(
      `${message}${
        properties && Object.keys(properties).length > 0
          ? ` (${Object.entries(properties)
              .map(([name, value]) => `${name}=${describeValue(value)}`)
              .join(', ')})`
          : ''
      }\n`,
    );
  return { info: () => undefined, warn: line, error: line };
}

function describeValue(value: unknown): string {
  return value instanceof Error ? describeError(value) : String(value);
}

export function formatReport(report: ReconcileReport): string {
  switch (report.status) {
    case 'held':
      return `Another run holds the lease (${report.holder}) until ${new Date(report.until).toISOString()}: nothing was done.\n`;
    case 'not-due':
      return `Not due before ${new Date(report.dueAt).toISOString()}.\n`;
    case 'nothing-to-reconcile':
      return 'No handler reconciles: nothing was asked.\n';
    case 'ran': {
      const lines = report.tables.map((table) => {
        const what = {
          'token-taken': 'first run: a token was taken, nothing was replayed',
          complete: `${table.changed} changed and ${table.deleted} deleted row(s) queued for the app`,
          partial: `${table.changed} changed and ${table.deleted} deleted row(s) queued; stopped at its time limit, the next run goes on`,
          restarted: 'the token was refused: started over from the current state (see the warning above)',
          'tracking-off': table.detail ?? 'change tracking is off',
          failed: `failed: ${table.detail ?? ''}`,
        }[table.status];
        return `  ${table.table}: ${what}`;
      });
      const requeued =
        report.requeuedBatches > 0 ? [`${report.requeuedBatches} page(s) that had failed every attempt were put back on the queue.`] : [];
      return `${['Reconcile run:', ...lines, ...requeued].join('\n')}\n`;
    }
  }
}

export function formatNextRun(next: NextRun, readDefinitions: boolean): string {
  const lines = [
    `Reconciliation: ${next.tables.length} table(s), a run every ${next.intervalMinutes} minute(s) (RECONCILE_INTERVAL)`,
    next.heldBy
      ? `  a run holds the lease: ${next.heldBy}, until ${next.heldUntil}`
      : `  last run started ${next.lastStartedAt ?? 'never'}; the next is due ${next.dueAt ?? 'now'}`,
  ];
  for (const table of next.tables) {
    lines.push(`${table.table}: ${table.handlers.map((handler) => `${handler.name} (${handler.messages.join(', ')})`).join(', ')}`);
    if (table.changeTracking === false) lines.push('  change tracking is OFF: "register --enable-change-tracking" turns it on');
    lines.push(`  columns: ${table.columns ? table.columns.join(', ') : 'every column'}, and the primary key`);
    const ask = {
      'first-token': 'its first run: pages through the ids to take a token, and replays nothing',
      'next-page': 'goes on from the page the last run reached',
      'changes-since-token': `the changes since the token taken ${table.tokenTakenAt ?? ''}`,
    }[table.next];
    lines.push(`  next run: ${ask}`);
    if (table.request) lines.push(`    GET ${table.request}`, '    Prefer: odata.track-changes,odata.maxpagesize=5000');
    if (table.lastRunAt) lines.push(`  last run ${table.lastRunAt}: ${table.lastStatus ?? ''}`);
  }
  if (!readDefinitions) lines.push('Dataverse was not read (pass --org or set DATAVERSE_URL to check change tracking and the columns).');
  return `${lines.join('\n')}\n`;
}
