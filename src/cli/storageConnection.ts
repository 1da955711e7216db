import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { createStorageClients, type StorageClients } from '../storage/clients';
import type { CommandIO } from './io';

const localSettings = z.object({ Values: z.record(z.string(), z.string()).optional() });

/**
 * The storage the app uses: `AzureWebJobsStorage` from the environment, else from the Values of
 * local.settings.json in the current folder, so the tools work against Azurite and Azure alike.
 */
export async function storageConnectionString(io: CommandIO): Promise<string> {
  const fromEnvironment = io.env.AzureWebJobsStorage;
  if (fromEnvironment) return fromEnvironment;
  const file = path.join(io.cwd, 'local.settings.json');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    throw new Error('No storage connection: set AzureWebJobsStorage, or run this in the app folder (local.settings.json)');
  }
  const parsed = localSettings.safeParse(JSON.parse(text));
  const value = parsed.success ? parsed.data.Values?.AzureWebJobsStorage : undefined;
  if (!value) throw new Error(`No storage connection: ${file} has no Values.AzureWebJobsStorage`);
  return value;
}

export async function cliStorage(io: CommandIO): Promise<StorageClients> {
  return createStorageClients(await storageConnectionString(io), { retry: { maxTries: 2, tryTimeoutMs: 10_000 } });
}
