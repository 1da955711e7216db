import { parseArgs } from 'node:util';
import { formatWebhookStatus, readWebhookStatus } from '../registration/status';
import { AUTHENTICATION_HELP, AZURE_DEPENDENCIES, connectToDataverse, ORG_OPTION_HELP, type ConnectionDependencies } from './dataverseConnection';
import { UsageError, type CommandIO } from './io';

const DEFAULT_FAILED_JOBS = 5;

export const STATUS_USAGE = `Usage: dataverse-webhooks status [--org URL] [--name ENDPOINT] [--failed N] [--json]

Lists the webhook endpoints, their steps and images, and each step's recent failed System Jobs.

${ORG_OPTION_HELP}
  --name ENDPOINT  only the endpoint with this name
  --failed N       failed jobs (asyncoperations with statuscode 31) shown per step (default: ${DEFAULT_FAILED_JOBS}; 0 for none)
  --json           print the status as JSON

Only asynchronous steps leave System Jobs: a synchronous step's failure is an error to the user
who made the change, and is not recorded here.

${AUTHENTICATION_HELP}`;

export function createStatusCommand(dependencies: ConnectionDependencies) {
  return async function statusCommand(args: string[], io: CommandIO): Promise<number> {
    const { values } = parseArgs({
      args,
      allowPositionals: false,
      options: {
        org: { type: 'string' },
        name: { type: 'string' },
        failed: { type: 'string' },
        json: { type: 'boolean', default: false },
      },
    });
    const failedJobsPerStep = values.failed === undefined ? DEFAULT_FAILED_JOBS : Number(values.failed);
    if (!Number.isInteger(failedJobsPerStep) || failedJobsPerStep < 0 || failedJobsPerStep > 5000) throw new UsageError('--failed takes a whole number from 0 to 5000');

    const { client } = connectToDataverse(values.org, io, dependencies);
    const status = await readWebhookStatus(client, { endpointName: values.name, failedJobsPerStep });
    io.stdout(values.json ? `${JSON.stringify(status, null, 2)}\n` : formatWebhookStatus(status));
    return 0;
  };
}

export const statusCommand = createStatusCommand(AZURE_DEPENDENCIES);
