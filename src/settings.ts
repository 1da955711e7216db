import { z } from 'zod';

/**
 * Every setting the app reads, parsed once from app settings (environment variables; in local
 * development, `local.settings.json` Values). A bad value fails loudly at start-up, not per request.
 */

const positiveInteger = (fallback: number) => z.coerce.number().int().positive().default(fallback);

/** `{"x-api-key": ["current", "next"]}`: every name must match one of its values (two allow rotation). */
const credentialPairs = z
  .string()
  .optional()
  .transform((text, context) => {
    if (!text || !text.trim()) return [] as ExpectedCredential[];
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      context.addIssue({ code: 'custom', message: 'must be a JSON object such as {"name": ["value1", "value2"]}' });
      return z.NEVER;
    }
    const parsed = z.record(z.string().min(1), z.union([z.string().min(1), z.array(z.string().min(1)).min(1)])).safeParse(json);
    if (!parsed.success) {
      context.addIssue({ code: 'custom', message: 'must map each name to a non-empty value or list of values' });
      return z.NEVER;
    }
    return Object.entries(parsed.data).map(([name, values]) => ({ name, values: Array.isArray(values) ? values : [values] }));
  });

const commaList = z
  .string()
  .optional()
  .transform((text) =>
    (text ?? '')
      .split(',')
      .map((item) => item.trim().toLowerCase())
      .filter((item) => item.length > 0),
  );

export interface ExpectedCredential {
  name: string;
  values: string[];
}

const settingsSchema = z.object({
  WEBHOOK_MAX_BODY_BYTES: positiveInteger(4 * 1024 * 1024),
  WEBHOOK_STORAGE_DEADLINE_MS: positiveInteger(10_000),
  WEBHOOK_REJECTED_MAX_BYTES: positiveInteger(1024 * 1024),
  WEBHOOK_REQUIRED_HEADERS: credentialPairs,
  WEBHOOK_REQUIRED_QUERY: credentialPairs,
  WEBHOOK_ALLOWED_ORGANIZATIONS: commaList,
});

export interface IngestSettings {
  /** Bodies larger than this get 413. */
  maxBodyBytes: number;
  /** The storage writes must finish within this, or the request gets 503 (Dataverse waits 60 s). */
  storageDeadlineMs: number;
  /** How much of a rejected body is kept for inspection. */
  rejectedMaxBytes: number;
  /** HttpHeader registrations: headers every request must carry. */
  requiredHeaders: ExpectedCredential[];
  /** HttpQueryString registrations: query parameters every request must carry. */
  requiredQuery: ExpectedCredential[];
  /** Organization host names (x-ms-dynamics-organization) or OrganizationId GUIDs; empty allows all. */
  allowedOrganizations: string[];
}

export class SettingsError extends Error {
  override readonly name = 'SettingsError';
}

function parseSettings<T>(schema: z.ZodType<T>, env: NodeJS.ProcessEnv): T {
  const parsed = schema.safeParse(env);
  if (parsed.success) return parsed.data;
  // Name the setting and the problem; the value itself may be a secret.
  const problems = parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('; ');
  throw new SettingsError(`Invalid app settings: ${problems}`);
}

export function readIngestSettings(env: NodeJS.ProcessEnv = process.env): IngestSettings {
  const settings = parseSettings(settingsSchema, env);
  return {
    maxBodyBytes: settings.WEBHOOK_MAX_BODY_BYTES,
    storageDeadlineMs: settings.WEBHOOK_STORAGE_DEADLINE_MS,
    rejectedMaxBytes: settings.WEBHOOK_REJECTED_MAX_BYTES,
    requiredHeaders: settings.WEBHOOK_REQUIRED_HEADERS,
    requiredQuery: settings.WEBHOOK_REQUIRED_QUERY,
    allowedOrganizations: settings.WEBHOOK_ALLOWED_ORGANIZATIONS,
  };
}

let cachedIngestSettings: IngestSettings | undefined;

/** The process-wide settings, read on first use (app settings do not change while a worker runs). */
export function ingestSettings(): IngestSettings {
  cachedIngestSettings ??= readIngestSettings();
  return cachedIngestSettings;
}

const processSettingsSchema = z.object({
  PROCESSOR_MAX_DEPTH: positiveInteger(8),
  PROCESSOR_LEASE_SECONDS: positiveInteger(300),
  DATAVERSE_URL: z.url({ protocol: /^https$/ }).optional(),
});

export interface ProcessSettings {
  /** Events deeper than this (a handler's writes triggering itself) are recorded and not handled. */
  maxDepth: number;
  /**
   * How long a processor holds an event before another may take it over. At least the function
   * timeout (host.json functionTimeout, 5 min), so a live handler is never run twice at once.
   */
  leaseMs: number;
  /** The organization truncated records are re-read from (`rereadTruncated`); null: no re-reads. */
  dataverseUrl: string | null;
}

export function readProcessSettings(env: NodeJS.ProcessEnv = process.env): ProcessSettings {
  const settings = parseSettings(processSettingsSchema, env);
  return { maxDepth: settings.PROCESSOR_MAX_DEPTH, leaseMs: settings.PROCESSOR_LEASE_SECONDS * 1000, dataverseUrl: settings.DATAVERSE_URL ?? null };
}

let cachedProcessSettings: ProcessSettings | undefined;

export function processSettings(): ProcessSettings {
  cachedProcessSettings ??= readProcessSettings();
  return cachedProcessSettings;
}
