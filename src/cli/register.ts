import path from 'node:path';
import { parseArgs } from 'node:util';
import { settingsAuthValue } from '../registration/authValue';
import { loadRegistration, type Registration } from '../registration/definition';
import { fetchFunctionKey } from '../registration/functionKeys';
import { MASKED, registerWebhook, type RegisterResult } from '../registration/register';
import { AUTHENTICATION_HELP, AZURE_DEPENDENCIES, connectToDataverse, ORG_OPTION_HELP, type ConnectionDependencies } from './dataverseConnection';
import { UsageError, type CommandIO } from './io';

export const DEFAULT_REGISTRATION_FILE = path.join('registration', 'webhook.json');
/** The HTTP function that receives webhooks (src/functions/dataverseWebhook.ts). */
const WEBHOOK_FUNCTION = 'dataverseWebhook';

export const REGISTER_USAGE = `Usage: dataverse-webhooks register [--file FILE] [--org URL] [--url URL] [key options] [--rotate-key] [--prune] [--dry-run] [--json]

Creates or updates the Dataverse webhook, its steps and their images from a declarative file.

The endpoint is found by name, each step by name, each image by alias; only what differs is
written, so running it again with the same file writes nothing.

  --file FILE      the registration file (default: ${DEFAULT_REGISTRATION_FILE})
${ORG_OPTION_HELP}
  --url URL        the function's URL, without ?code= (default: endpoint.url in the file)
  --prune          delete the endpoint's steps that the file no longer lists (kept otherwise)
  --rotate-key     write the key/settings even though the endpoint exists (Dataverse never
                   returns them, so a new key cannot be detected): use it after adding a key
  --dry-run        only read Dataverse: print those reads and every write it would send
                   (secrets masked), and send no write
  --json           print the result as JSON

Key options (a WebhookKey endpoint needs its function key when it is created or rotated):
  --key KEY                 the function key itself
  --key-from-azure          read it from the function app through Azure Resource Manager, with
    --subscription ID       (default: AZURE_SUBSCRIPTION_ID)
    --resource-group NAME   (default: AZURE_RESOURCE_GROUP)
    --app NAME              the function app (default: AZURE_FUNCTION_APP_NAME)
    --function NAME         whose keys to read (default: ${WEBHOOK_FUNCTION}); --host-key reads the host's keys
    --key-name NAME         which key (default: default)
HttpHeader and HttpQueryString values come from the environment variables the file names.

${AUTHENTICATION_HELP}`;

export function createRegisterCommand(dependencies: ConnectionDependencies) {
  return async function registerCommand(args: string[], io: CommandIO): Promise<number> {
    const { values } = parseArgs({
      args,
      allowPositionals: false,
      options: {
        file: { type: 'string' },
        org: { type: 'string' },
        url: { type: 'string' },
        key: { type: 'string' },
        'key-from-azure': { type: 'boolean', default: false },
        subscription: { type: 'string' },
        'resource-group': { type: 'string' },
        app: { type: 'string' },
        function: { type: 'string' },
        'host-key': { type: 'boolean', default: false },
        'key-name': { type: 'string', default: 'default' },
        'rotate-key': { type: 'boolean', default: false },
        prune: { type: 'boolean', default: false },
        'dry-run': { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
      },
    });
    if (values.key !== undefined && values['key-from-azure']) throw new UsageError('Pass --key or --key-from-azure, not both');
    if (values['host-key'] && values.function !== undefined) throw new UsageError('Pass --function or --host-key, not both');

    const file = path.resolve(io.cwd, values.file ?? DEFAULT_REGISTRATION_FILE);
    const registration = await loadRegistration(file);
    const url = values.url ?? registration.endpoint.url;
    if (!url) throw new UsageError(`The webhook URL is neither in ${file} (endpoint.url) nor given with --url`);
    if (registration.endpoint.auth.type !== 'WebhookKey' && (values.key !== undefined || values['key-from-azure'])) {
      throw new UsageError(`--key and --key-from-azure are for WebhookKey endpoints; this one is ${registration.endpoint.auth.type}`);
    }

    // A dry run still reads (it must know what exists); it lists those reads, so nothing it sent is hidden.
    const reads: string[] = [];
    const sendFetch = dependencies.fetch ?? ((input: string, init: RequestInit) => fetch(input, init));
    const recordingFetch = (input: string, init: RequestInit) => {
      reads.push(`${init.method ?? 'GET'} ${readable(input)}`);
      return sendFetch(input, init);
    };
    const { client, http } = connectToDataverse(values.org, io, values['dry-run'] ? { ...dependencies, fetch: recordingFetch } : dependencies);

    const authValue = async (): Promise<string> => {
      const auth = registration.endpoint.auth;
      if (auth.type !== 'WebhookKey') return settingsAuthValue(auth, io.env);
      if (values.key !== undefined) return values.key;
      if (!values['key-from-azure']) {
        throw new UsageError('The endpoint needs its function key (new endpoint, new auth type, or --rotate-key): pass --key-from-azure, or --key');
      }
      const required = (value: string | undefined, option: string, variable: string) => {
        const resolved = value ?? io.env[variable];
        if (!resolved) throw new UsageError(`--key-from-azure needs ${option} (or ${variable})`);
        return resolved;
      };
      const location = {
        subscriptionId: required(values.subscription, '--subscription', 'AZURE_SUBSCRIPTION_ID'),
        resourceGroup: required(values['resource-group'], '--resource-group', 'AZURE_RESOURCE_GROUP'),
        app: required(values.app, '--app', 'AZURE_FUNCTION_APP_NAME'),
        functionName: values['host-key'] ? undefined : (values.function ?? WEBHOOK_FUNCTION),
        keyName: values['key-name'],
      };
      // A dry run prints the key masked anyway, so it does not call Azure for it.
      if (values['dry-run']) return MASKED;
      return fetchFunctionKey(location, { ...http, armUrl: dependencies.armUrl });
    };

    const result = await registerWebhook(client, {
      registration,
      url,
      authValue,
      rotateKey: values['rotate-key'],
      prune: values.prune,
      dryRun: values['dry-run'],
    });
    io.stdout(values.json ? `${JSON.stringify(values['dry-run'] ? { ...result, reads } : result, null, 2)}\n` : formatRegisterResult(result, registration, values['dry-run'] ? reads : null));
    return 0;
  };
}

export const registerCommand = createRegisterCommand(AZURE_DEPENDENCIES);

function readable(url: string): string {
  try {
    return decodeURIComponent(url);
  } catch {
    return url;
  }
}

/** `dryRunReads`: the requests a dry run sent (reads only), or null for a real run. */
export function formatRegisterResult(result: RegisterResult, registration: Registration, dryRunReads: string[] | null): string {
  const dryRun = dryRunReads !== null;
  const lines: string[] = [];
  const describe = (kind: string, outcome: { name: string; action: string; changes: string[] }) =>
    `${kind} "${outcome.name}": ${dryRun && outcome.action !== 'unchanged' && !outcome.action.startsWith('kept') ? `would be ${outcome.action}` : outcome.action}${outcome.changes.length > 0 ? ` (${outcome.changes.join('; ')})` : ''}`;
  lines.push(describe('endpoint', result.endpoint) + (result.endpoint.id ? ` [${result.endpoint.id}]` : ''));
  for (const step of result.steps) lines.push(describe('step', step));
  if (registration.steps.length === 0) lines.push('(the file lists no steps)');
  if (dryRunReads !== null) {
    lines.push('', `Dry run: read Dataverse with ${dryRunReads.length} request(s):`, ...dryRunReads);
    lines.push('', result.writes.length === 0 ? 'Dry run: nothing to write.' : `Dry run: nothing was written. ${result.writes.length} request(s) would be sent:`);
    for (const write of result.writes) {
      lines.push(`${write.method} ${write.url}`);
      if (write.body) lines.push(`  ${JSON.stringify(write.body)}`);
    }
  } else {
    lines.push('', result.writes.length === 0 ? 'Nothing to write: Dataverse already matches the file.' : `${result.writes.length} write(s) sent.`);
  }
  return `${lines.join('\n')}\n`;
}
