import { parseArgs } from 'node:util';
import { silentLog } from '../observability/log';
import { shutdownTelemetry, startTelemetry } from '../observability/telemetry';
import { failureStore, replayFailures, resolveFailures, sweepPoisonQueue } from '../pipeline/failures';
import type { StorageClients } from '../storage/clients';
import { type CommandIO, UsageError } from './io';
import { cliStorage } from './storageConnection';

const SWEEP_HELP = `Poisoned messages still waiting in the poison queue (the recordPoisonedEvent function was not
running, or could not record them) are recorded first, as that function would, so every poisoned
event is listed once and can be replayed.`;

export const FAILURES_USAGE = `Usage: dataverse-webhooks failures [--json] [--all]
       dataverse-webhooks failures resolve <eventId>...

Lists poisoned events, oldest first: one line each, starting with the eventId, then when it was
poisoned, table, message, record id, attempts and the error. --all includes replayed and resolved ones.
${SWEEP_HELP}

"failures resolve" marks poisoned events that must not be replayed (their effect was made by hand,
or was never wanted): they leave the list and cannot be replayed; their record, kept message and
ledger rows are removed by the retention timer RETENTION_DAYS (default 7) later.
Uses AzureWebJobsStorage (the environment, else local.settings.json).`;

export const REPLAY_USAGE = `Usage: dataverse-webhooks replay <eventId>... | --all

Moves poisoned events back to the main queue, as they were, to be processed again.
${SWEEP_HELP}
Uses AzureWebJobsStorage (the environment, else local.settings.json).`;

/** Records what waits in the poison queue, and says on stderr what could not be seen. */
async function sweep(storage: StorageClients, io: CommandIO): Promise<void> {
  const swept = await sweepPoisonQueue({ storage, poisonQueue: storage.poisonQueue, log: silentLog });
  if (swept.invisible > 0) {
    io.stderr(
      `${swept.invisible} more message(s) in ${storage.poisonQueue.name} are held by the host right now (being recorded, or retried every 10 minutes); run this again later to see them.\n`,
    );
  }
}

export async function failuresCommand(args: string[], io: CommandIO): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { json: { type: 'boolean' }, all: { type: 'boolean' } },
  });
  if (positionals[0] === 'resolve') return resolveCommand(positionals.slice(1), values, io);
  if (positionals.length > 0) throw new UsageError('failures takes no arguments (or: failures resolve <eventId>...)');
  const storage = await cliStorage(io);
  await sweep(storage, io);
  const failures = await failureStore(storage).list({ includeReplayed: values.all ?? false });
  if (values.json) {
    io.stdout(`${JSON.stringify(failures, null, 2)}\n`);
    return 0;
  }
  if (failures.length === 0) {
    io.stderr('No poisoned events.\n');
    return 0;
  }
  for (const failure of failures) {
    const fields = [
      failure.eventId,
      failure.poisonedAt,
      failure.table || '-',
      failure.message || '-',
      failure.recordId || '-',
      `attempts=${failure.attempts}`,
    ];
    if (failure.state !== 'poisoned') fields.push(failure.state);
    io.stdout(`${fields.join('  ')}  ${failure.error.replace(/\s+/g, ' ')}\n`);
  }
  return 0;
}

export async function replayCommand(args: string[], io: CommandIO): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { all: { type: 'boolean' } } });
  if (Boolean(values.all) === positionals.length > 0) throw new UsageError('replay takes event ids, or --all');
  // A replay is part of an event's story: with a connection string set, it is told to Application Insights too.
  const events = startTelemetry({ env: io.env, warn: (message) => io.stderr(`${message}\n`) });
  const storage = await cliStorage(io);
  await sweep(storage, io);
  const results = await replayFailures(values.all ? 'all' : positionals, { storage, telemetry: events });
  await shutdownTelemetry();
  for (const result of results) {
    if (result.replayed) io.stdout(`${result.eventId}  replayed${result.note ? ` (${result.note})` : ''}\n`);
    else io.stderr(`${result.eventId}  not replayed: ${result.reason}\n`);
  }
  if (results.length === 0) io.stderr('No poisoned events to replay.\n');
  return results.every((result) => result.replayed) ? 0 : 1;
}

async function resolveCommand(
  eventIds: string[],
  options: { json?: boolean | undefined; all?: boolean | undefined },
  io: CommandIO,
): Promise<number> {
  if (options.json || options.all) throw new UsageError('failures resolve takes event ids only');
  if (eventIds.length === 0) throw new UsageError('failures resolve takes the ids of the events that need no replay');
  const storage = await cliStorage(io);
  // Recorded first, so an event still waiting in the poison queue can be resolved too.
  await sweep(storage, io);
  const results = await resolveFailures(eventIds, { storage });
  for (const result of results) {
    if (result.resolved) io.stdout(`${result.eventId}  resolved\n`);
    else io.stderr(`${result.eventId}  not resolved: ${result.reason}\n`);
  }
  return results.every((result) => result.resolved) ? 0 : 1;
}
