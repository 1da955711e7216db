import { access } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { type Backlog, formatBacklog, readBacklog } from '../pipeline/backlog';
import { loadRegistration, type Registration } from '../registration/definition';
import { formatWebhookStatus, readWebhookStatus } from '../registration/status';
import { StorageConfigurationError } from '../storage/clients';
import { type HandlersSource, loadAppHandlers, resolveHandlers } from './appHandlers';
import { trackingOffLines, trackingOfReconciledTables } from './changeTracking';
import {
  AUTHENTICATION_HELP,
  AZURE_DEPENDENCIES,
  type ConnectionDependencies,
  connectToDataverse,
  ORG_OPTION_HELP,
  organizationUrl,
} from './dataverseConnection';
import { type CommandIO, UsageError } from './io';
import { DEFAULT_REGISTRATION_FILE } from './register';
import { cliStorage, explainStorageError, StorageConnectionError } from './storageConnection';

const DEFAULT_FAILED_JOBS = 5;

export const STATUS_USAGE = `Usage: dataverse-webhooks status [--org URL] [--name ENDPOINT] [--file FILE] [--failed N] [--json]

Lists the webhook endpoints, their steps and images, each step's recent failed System Jobs, and the drift between the handlers and Dataverse;
then the backlog: messages on the queue and the poison queue, the age of the oldest waiting, and the poisoned
events waiting for a replay or a resolve. The backlog uses AzureWebJobsStorage (the environment, else
local.settings.json); without --org or DATAVERSE_URL, status shows the backlog alone, and exits 1 when
it cannot read it (saying why).

${ORG_OPTION_HELP}
  --name ENDPOINT  only the endpoint with this name
  --file FILE      the registration file naming the app's endpoint (default: ${DEFAULT_REGISTRATION_FILE});
                   its steps are compared with those the handlers declare
  --failed N       failed jobs (asyncoperations with statuscode 31) shown per step (default: ${DEFAULT_FAILED_JOBS}; 0 for none)
  --json           print the status as JSON

Drift: steps of the app's endpoint that no handler declares, handlers whose step is not
registered, and steps whose filtering attributes or images differ; "register" removes it.
Reconciliation: the tables handlers reconcile whose change tracking is off (nothing is reconciled
there until "register --enable-change-tracking" turns it on).
Only asynchronous steps leave System Jobs: a synchronous step's failure is an error to the user
who made the change, and is not recorded here.

${AUTHENTICATION_HELP}`;

type BacklogRead = { backlog: Backlog } | { notRead: string };

export function createStatusCommand(dependencies: ConnectionDependencies, handlerSource: HandlersSource = loadAppHandlers) {
  return async function statusCommand(args: string[], io: CommandIO): Promise<number> {
    const { values } = parseArgs({
      args,
      allowPositionals: false,
      options: {
        org: { type: 'string' },
        name: { type: 'string' },
        file: { type: 'string' },
        failed: { type: 'string' },
        json: { type: 'boolean', default: false },
      },
    });
    const failedJobsPerStep = values.failed === undefined ? DEFAULT_FAILED_JOBS : Number(values.failed);
    if (!Number.isInteger(failedJobsPerStep) || failedJobsPerStep < 0 || failedJobsPerStep > 5000)
      throw new UsageError('--failed takes a whole number from 0 to 5000');
    // The backlog needs only storage; the rest needs the organization.
    const backlog = await readBacklogOf(io);
    if (values.org === undefined && !io.env.DATAVERSE_URL) return printBacklogAlone(io, values.json, backlog);
    organizationUrl(values.org, io);

    // The app's endpoint comes from the registration file; without one here, drift is not checked.
    const registration = await registrationHere(io, values.file);
    const { client } = connectToDataverse(values.org, io, dependencies);
    const handlers = registration ? await resolveHandlers(handlerSource) : null;
    const status = await readWebhookStatus(client, {
      endpointName: values.name,
      failedJobsPerStep,
      ...(registration && handlers ? { expected: { endpointName: registration.endpoint.name, steps: handlers.steps } } : {}),
    });
    // The tables handlers reconcile, and whether Dataverse tracks their changes (docs/reconcile.md).
    const changeTracking = handlers ? await trackingOfReconciledTables(client, handlers) : [];
    const backlogJson = 'backlog' in backlog ? { backlog: backlog.backlog } : { backlog: null, backlogNotRead: backlog.notRead };
    if (values.json) io.stdout(`${JSON.stringify({ ...status, changeTracking, ...backlogJson }, null, 2)}\n`);
    else {
      io.stdout(
        `${formatWebhookStatus(status)}${registration ? '' : `\nDrift not checked: no ${DEFAULT_REGISTRATION_FILE} here (run status in the app's folder, or pass --file).\n`}`,
      );
      const off = trackingOffLines(changeTracking, 'run "dataverse-webhooks register --enable-change-tracking"');
      if (off.length > 0) io.stdout(`\nReconciliation:\n${off.map((line) => `  ${line}`).join('\n')}\n`);
      io.stdout('backlog' in backlog ? `\n${formatBacklog(backlog.backlog)}` : `\nBacklog not read: ${backlog.notRead}\n`);
    }
    return 0;
  };
}

/**
 * No organization: the backlog alone. When it cannot be read (Azurite stopped, no connection), say
 * why, rather than ask for an organization the user did not mean to query.
 */
function printBacklogAlone(io: CommandIO, json: boolean, backlog: BacklogRead): number {
  if ('backlog' in backlog) {
    io.stdout(json ? `${JSON.stringify({ backlog: backlog.backlog }, null, 2)}\n` : formatBacklog(backlog.backlog));
    return 0;
  }
  if (json) io.stdout(`${JSON.stringify({ backlog: null, backlogNotRead: backlog.notRead }, null, 2)}\n`);
  io.stderr(`Backlog not read: ${backlog.notRead}\n`);
  return 1;
}

/** The registration file given, or the default one when it is here; null when there is none. */
async function registrationHere(io: CommandIO, given: string | undefined): Promise<Registration | null> {
  const file = path.resolve(io.cwd, given ?? DEFAULT_REGISTRATION_FILE);
  const exists =
    given !== undefined ||
    (await access(file).then(
      () => true,
      () => false,
    ));
  return exists ? loadRegistration(file) : null;
}

export const statusCommand = createStatusCommand(AZURE_DEPENDENCIES);

/**
 * The backlog, or why it could not be read (no storage connection here, storage unreachable): the
 * Dataverse part of status must not fail because of it.
 */
async function readBacklogOf(io: CommandIO): Promise<BacklogRead> {
  try {
    return { backlog: await readBacklog(await cliStorage(io)) };
  } catch (error) {
    if (error instanceof StorageConnectionError || error instanceof StorageConfigurationError) return { notRead: error.message };
    const explained = explainStorageError(error, io);
    if (explained) return { notRead: explained };
    throw error;
  }
}
