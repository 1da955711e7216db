import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { createStorageClients, storageConnectionFrom, type StorageClients, type StorageConnection } from '../storage/clients';
import type { CommandIO } from './io';

const localSettings = z.object({ Values: z.record(z.string(), z.string()).optional() });

/**
 * The storage the app uses: the `AzureWebJobsStorage` settings from the environment, else from the
 * Values of local.settings.json in the current folder, so the tools work against Azurite and Azure
 * alike (a connection string, or an identity-based connection with your Azure login).
 */
export async function storageConnection(io: CommandIO): Promise<StorageConnection> {
  if (Object.keys(io.env).some((name) => name === 'AzureWebJobsStorage' || name.startsWith('AzureWebJobsStorage__'))) {
    return storageConnectionFrom(io.env);
  }
  const file = path.join(io.cwd, 'local.settings.json');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    throw new Error('No storage connection: set AzureWebJobsStorage, or run this in the app folder (local.settings.json)');
  }
  const parsed = localSettings.safeParse(JSON.parse(text));
  if (!parsed.success) throw new Error(`No storage connection: ${file} is not a local.settings.json`);
  return storageConnectionFrom(parsed.data.Values ?? {});
}

export async function cliStorage(io: CommandIO): Promise<StorageClients> {
  return createStorageClients(await storageConnection(io), { retry: { maxTries: 2, tryTimeoutMs: 10_000 } });
}
