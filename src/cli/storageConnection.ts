import { type LocalSettings, LocalSettingsError, readLocalSettings } from '../localSettings';
import { createStorageClients, type StorageClients, type StorageConnection, storageConnectionFrom } from '../storage/clients';
import { storageErrorCode, storageStatus } from '../storage/errors';
import { STORAGE_CONNECTION } from '../storage/names';
import type { CommandIO } from './io';

export class StorageConnectionError extends Error {
  override readonly name = 'StorageConnectionError';
}

/**
 * The storage the app uses: the `AzureWebJobsStorage` settings from the environment, else from the
 * Values of local.settings.json in the current folder, so the tools work against Azurite and Azure
 * alike (a connection string, or an identity-based connection with your Azure login). `source`
 * says which, for error messages.
 */
export async function storageConnection(io: CommandIO): Promise<{ connection: StorageConnection; source: string; local: boolean }> {
  if (Object.keys(io.env).some((name) => name === STORAGE_CONNECTION || name.startsWith(`${STORAGE_CONNECTION}__`))) {
    return { connection: storageConnectionFrom(io.env), source: `${STORAGE_CONNECTION} from the environment`, local: false };
  }
  let local: LocalSettings | null;
  try {
    local = readLocalSettings(io.cwd);
  } catch (error) {
    // Its message names the file and the JSON path, never a value.
    if (error instanceof LocalSettingsError) throw new StorageConnectionError(`No storage connection: ${error.message.split('\n')[0]}`);
    throw error;
  }
  if (!local)
    throw new StorageConnectionError('No storage connection: set AzureWebJobsStorage, or run this in the app folder (local.settings.json)');
  return { connection: storageConnectionFrom(local.values), source: `AzureWebJobsStorage from ${local.file}`, local: true };
}

interface UsedConnection {
  source: string;
  local: boolean;
  /** The service endpoints of an identity-based connection (null: a connection string). */
  identity: Readonly<Record<StorageService, string>> | null;
}

/** Where each command's storage connection came from, for explaining its errors (src/cli/main.ts). */
const sources = new WeakMap<CommandIO, UsedConnection>();

export async function cliStorage(io: CommandIO): Promise<StorageClients> {
  const { connection, source, local } = await storageConnection(io);
  sources.set(io, {
    source,
    local,
    identity: connection.kind === 'identity' ? { blob: connection.blobUrl, queue: connection.queueUrl, table: connection.tableUrl } : null,
  });
  try {
    return createStorageClients(connection, { retry: { maxTries: 2, tryTimeoutMs: 10_000 } });
  } catch (error) {
    // The SDKs' own messages about a connection string never repeat it; still, only the first line.
    throw new StorageConnectionError(
      `${source} is not a valid connection string (${firstLine(error)}): copy it again from the storage account's Access keys, or use UseDevelopmentStorage=true for Azurite`,
    );
  }
}

function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0]!.slice(0, 200);
}

type StorageService = 'blob' | 'queue' | 'table';

/**
 * The data role each service needs for what the CLI does (status reads, failures records what the
 * poison queue holds, replay and resolve write): what infra/modules/roleAssignments.bicep grants
 * whoever runs `azd up`.
 */
export const CLI_DATA_ROLES: Readonly<Record<StorageService, string>> = {
  blob: 'Storage Blob Data Contributor',
  queue: 'Storage Queue Data Contributor',
  table: 'Storage Table Data Contributor',
};

/** Which service a failed request went to: by the connection's endpoints, else by Azure's host names. */
function serviceOf(error: Error, used: UsedConnection): StorageService | null {
  const url = (error as { request?: { url?: unknown } }).request?.url;
  if (typeof url !== 'string') return null;
  const services = Object.keys(CLI_DATA_ROLES) as StorageService[];
  const byEndpoint = services.find((service) => used.identity && url.startsWith(used.identity[service].replace(/\/+$/, '')));
  if (byEndpoint) return byEndpoint;
  const host = (() => {
    try {
      return new URL(url).hostname;
    } catch {
      return '';
    }
  })();
  return services.find((service) => host.includes(`.${service}.`)) ?? null;
}

/**
 * One line for a 403, by Azure Storage's error code (learn.microsoft.com/rest/api/storageservices/
 * common-rest-api-error-codes): AuthorizationPermissionMismatch is an Entra ID caller without the
 * data role the operation needs ("This request is not authorized to perform this operation using
 * this permission"), on blobs, queues and tables alike; KeyBasedAuthenticationNotPermitted an
 * account key on an account with shared key access off (as infra/modules/storage.bicep sets it);
 * AuthenticationFailed a signature or token the service could not verify; AuthorizationFailure any
 * other refusal, network rules among them.
 */
function explainForbidden(error: Error, errorCode: string, used: UsedConnection): string {
  const where = `${used.source}, ${errorCode || 'HTTP 403'}`;
  if (errorCode === 'KeyBasedAuthenticationNotPermitted')
    return `The storage account does not accept account keys (${where}): use an identity-based connection, AzureWebJobsStorage__accountName=<account>, signed in with "az login"`;
  if (!used.identity) {
    return `The storage account refused the credentials (${where}): check the AccountKey in the connection string, or use an identity-based connection (AzureWebJobsStorage__accountName) with your Azure login`;
  }
  if (errorCode === 'AuthorizationPermissionMismatch') {
    const service = serviceOf(error, used);
    const roles = service ? [CLI_DATA_ROLES[service]] : Object.values(CLI_DATA_ROLES);
    return `The signed-in identity lacks the ${roles.join(', ')} role${roles.length > 1 ? 's' : ''} on the storage account (${where}): "azd up" grants ${roles.length > 1 ? 'them' : 'it'} to whoever deploys, or run "az role assignment create --assignee <you> --role '${roles[0]}' --scope <storage account id>"; a new role takes a few minutes to apply`;
  }
  if (errorCode === 'AuthenticationFailed')
    return `The storage account could not verify the token (${where}): sign in again ("az login") to the account's tenant`;
  return `The storage account refused the request (${where}): its network rules may not admit this machine, or the signed-in identity has no data role on it (${Object.values(CLI_DATA_ROLES).join(', ')})`;
}

const UNREACHABLE: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'connection refused',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host name lookup failed',
  ETIMEDOUT: 'no answer',
  ECONNRESET: 'connection reset',
};

/**
 * One actionable line for a storage failure of a command that used `cliStorage`, naming where the
 * connection came from; null when the error is not a storage one. Never the service's raw XML or
 * OData body, never the connection string.
 */
export function explainStorageError(error: unknown, io: CommandIO): string | null {
  const used = sources.get(io);
  if (!used || !(error instanceof Error)) return null;
  const code = 'code' in error ? String(error.code) : '';
  const status = storageStatus(error);
  const errorCode = storageErrorCode(error) ?? '';
  const reason = UNREACHABLE[code];
  if (reason) {
    const where = /connect \w+ ([^\s]+)/.exec(error.message)?.[1];
    const hint = used.local
      ? 'Is Azurite running? "npm start" starts it (or run "npx azurite --inMemoryPersistence")'
      : 'check the account name and your network';
    return `Could not reach the storage account${where ? ` at ${where}` : ''} (${used.source}): ${reason}. ${hint}`;
  }
  if (error.name !== 'RestError' && status === undefined) return null;
  if (status === 403) return explainForbidden(error, errorCode, used);
  if (status === 404 && /NotFound$/.test(errorCode)) {
    return `The storage account has no ${errorCode.replace(/NotFound$/, '').toLowerCase()} the app uses (${used.source}, ${errorCode}): has the app run against it? It creates them the first time it does`;
  }
  return `Storage answered ${status === undefined ? 'with an error' : `HTTP ${status}`}${errorCode ? ` ${errorCode}` : ''} (${used.source})`;
}
