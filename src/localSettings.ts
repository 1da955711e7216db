import { readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { issueList, zodIssues } from './dataverse/issues';

/**
 * `local.settings.json`, read once way for everything that reads it: the CLI (for the storage
 * connection) and the local host (for the app settings and the port), as Core Tools reads it:
 * `Values` are app settings (numbers and booleans taken as text) and `Host.LocalHttpPort` the port.
 */
const localSettingsSchema = z.object({
  Values: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()]).transform(String)).optional(),
  Host: z.object({ LocalHttpPort: z.coerce.number().int().min(0).max(65535).optional() }).optional(),
});

export interface LocalSettings {
  /** The file read. */
  file: string;
  values: Record<string, string>;
  port: number | undefined;
}

export class LocalSettingsError extends Error {
  override readonly name = 'LocalSettingsError';
}

/** `<folder>/local.settings.json`, or null when there is none; a file that is not one is an error that names it. */
export function readLocalSettings(folder: string): LocalSettings | null {
  const file = path.join(folder, 'local.settings.json');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return null;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new LocalSettingsError(`${file} is not valid JSON: ${(error as Error).message}`);
  }
  const parsed = localSettingsSchema.safeParse(json);
  if (!parsed.success) throw new LocalSettingsError(`${file} is not a local.settings.json (${issueList(zodIssues(parsed.error))})`);
  return { file, values: parsed.data.Values ?? {}, port: parsed.data.Host?.LocalHttpPort };
}
