import { type LocalSettings, LocalSettingsError, readLocalSettings } from '../localSettings';
import { createStorageClients, type StorageClients, type StorageConnection, storageConnectionFrom } from '../storage/clients';
import { storageErrorCode, storageStatus } from '../storage/errors';
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
  if (Object.keys(io.env).some((name) => name === 'AzureWebJobsStorage' || name.startsWith('AzureWebJobsStorage__'))) {
    return { connection: storageConnectionFrom(io.env), source: 'AzureWebJobsStorage from the environment', local: false };
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

/** Where each command's storage connection came from, for explaining its errors (src/cli/main.ts). */
const sources = new WeakMap<CommandIO, { source: string; local: boolean }>();

export async function cliStorage(io: CommandIO): Promise<StorageClients> {
  const { connection, source, local } = await storageConnection(io);
  sources.set(io, { source, local });
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
  if (status === 403) {
    return `The storage account refused the credentials (${used.source}, ${errorCode || 'HTTP 403'}): check the AccountKey in the connection string, or, for an identity-based connection, your role on the account (Storage Queue Data Contributor and Storage Table Data Contributor)`;
  }
  if (status === 404 && /NotFound$/.test(errorCode)) {
    return `The storage account has no ${errorCode.replace(/NotFound$/, '').toLowerCase()} the app uses (${used.source}, ${errorCode}): has the app run against it? It creates them the first time it does`;
  }
  return `Storage answered ${status === undefined ? 'with an error' : `HTTP ${status}`}${errorCode ? ` ${errorCode}` : ''} (${used.source})`;
}
