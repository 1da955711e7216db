import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { issueList, zodIssues } from '../src/dataverse/issues';

/**
 * The host settings the local host and the queue listener follow, read from the project's
 * host.json (its one owner) the way the Functions host reads them, including the app-setting
 * overrides `AzureFunctionsJobHost__<path>` (for example
 * `AzureFunctionsJobHost__extensions__queues__maxDequeueCount=2`), which win over the file
 * (https://learn.microsoft.com/azure/azure-functions/functions-host-json#override-hostjson-values).
 * Keys are matched without regard to case, as .NET configuration does.
 */

/** Values not set in host.json take the queue extension's defaults (QueuesOptions.cs). */
export interface QueuesOptions {
  /** Messages received per batch, 1 to 32 (QueuesOptions.BatchSize, default 16). */
  batchSize: number;
  /** Fetch the next batch only once this many or fewer are in flight (default batchSize/2 × processor count). */
  newBatchThreshold: number;
  /** Attempts before a message goes to `<queue>-poison` (default 5). */
  maxDequeueCount: number;
  /** How long a failed message stays invisible before its next attempt (default 0). */
  visibilityTimeoutMs: number;
  /** The longest wait between polls of an empty queue (default 1 minute, at least 100 ms). */
  maxPollingIntervalMs: number;
  /** How message text is decoded before the function sees it (default base64). */
  messageEncoding: 'base64' | 'none';
}

export interface HostJson {
  /** host.json `functionTimeout`; null when unlimited ("-1"). */
  functionTimeoutMs: number | null;
  queues: QueuesOptions;
  /** host.json `extensions.http.routePrefix` (default "api"). */
  routePrefix: string;
}

export class HostJsonError extends Error {
  override readonly name = 'HostJsonError';
}

const TIME_SPAN = /^(-)?(?:(\d+)\.)?(\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:\.(\d{1,7}))?)?$/;

/** A .NET TimeSpan as host.json writes it ("hh:mm:ss", "d.hh:mm:ss.fff", or a whole number of days), in ms. */
export function parseTimeSpan(text: string): number {
  const trimmed = text.trim();
  if (/^-?\d+$/.test(trimmed)) return Number(trimmed) * 86_400_000;
  const match = TIME_SPAN.exec(trimmed);
  if (!match) throw new HostJsonError(`"${text}" is not a time span such as "00:05:00"`);
  const [, minus, days = '0', hours = '0', minutes = '0', seconds = '0', fraction = ''] = match;
  if (Number(hours) > 23 || Number(minutes) > 59 || Number(seconds) > 59)
    throw new HostJsonError(`"${text}" is not a time span such as "00:05:00"`);
  const ms =
    ((Number(days) * 24 + Number(hours)) * 60 + Number(minutes)) * 60_000 +
    Number(seconds) * 1000 +
    Math.floor(Number(`0.${fraction || '0'}`) * 1000);
  return minus ? -ms : ms;
}

// QueuePollingIntervals.cs: Minimum 100 ms, DefaultMaximum 1 minute.
export const MIN_POLLING_INTERVAL_MS = 100;
const DEFAULT_MAX_POLLING_INTERVAL_MS = 60_000;
// QueuesOptions.MaxBatchSize: "Azure Queues currently limits the number of messages retrieved to 32".
export const MAX_BATCH_SIZE = 32;
/**
 * The host's default when host.json sets no functionTimeout outside the Consumption plan: 30
 * minutes (host.json reference, functionTimeout).
 */
const DEFAULT_FUNCTION_TIMEOUT_MS = 30 * 60_000;

const timeSpan = z.union([z.string(), z.number()]).transform((value, context) => {
  try {
    return typeof value === 'number' ? value * 86_400_000 : parseTimeSpan(value);
  } catch (error) {
    context.addIssue({ code: 'custom', message: (error as Error).message });
    return z.NEVER;
  }
});
const wholeNumber = z.coerce.number().int();

const queuesSchema = z.object({
  batchsize: wholeNumber.min(1).max(MAX_BATCH_SIZE).optional(),
  newbatchthreshold: wholeNumber.min(0).optional(),
  maxdequeuecount: wholeNumber.min(1).optional(),
  visibilitytimeout: timeSpan.pipe(z.number().min(0)).optional(),
  maxpollinginterval: timeSpan
    .pipe(z.number().min(MIN_POLLING_INTERVAL_MS, `must not be less than ${MIN_POLLING_INTERVAL_MS} ms`))
    .optional(),
  messageencoding: z
    .string()
    .transform((value) => value.toLowerCase())
    .pipe(z.enum(['base64', 'none']))
    .optional(),
});

type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

/** The object with every key lower-cased, as .NET configuration keys are case-insensitive. */
function lowerKeys(value: Json): Json {
  if (Array.isArray(value)) return value.map(lowerKeys);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key.toLowerCase(), lowerKeys(inner)]));
}

/** Applies `AzureFunctionsJobHost__a__b=value` settings onto the (lower-cased) host.json object. */
function withOverrides(json: Record<string, Json>, env: Readonly<Record<string, string | undefined>>): Record<string, Json> {
  const prefix = 'azurefunctionsjobhost__';
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined || !name.toLowerCase().startsWith(prefix)) continue;
    const keys = name.slice(prefix.length).toLowerCase().split('__');
    let target: Record<string, Json> = json;
    for (const key of keys.slice(0, -1)) {
      const next = target[key];
      if (next === null || typeof next !== 'object' || Array.isArray(next)) target[key] = {};
      target = target[key] as Record<string, Json>;
    }
    target[keys[keys.length - 1]!] = value;
  }
  return json;
}

function objectAt(json: Record<string, Json>, ...keys: string[]): Record<string, Json> {
  let current: Json = json;
  for (const key of keys) {
    current = current !== null && typeof current === 'object' && !Array.isArray(current) ? (current[key] ?? {}) : {};
  }
  return current !== null && typeof current === 'object' && !Array.isArray(current) ? current : {};
}

export interface ReadHostJsonOptions {
  /** App settings; `AzureFunctionsJobHost__*` entries override host.json. Default: none. */
  env?: Readonly<Record<string, string | undefined>>;
  /** For the default newBatchThreshold; default: this machine's (SkuUtility.ProcessorCount outside Consumption). */
  processorCount?: number;
}

/** Parses host.json text (with any overrides) into the settings the local host uses. */
export function parseHostJson(text: string, options: ReadHostJsonOptions = {}): HostJson {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new HostJsonError(`host.json is not valid JSON: ${(error as Error).message}`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new HostJsonError('host.json must hold a JSON object');
  const json = withOverrides(lowerKeys(raw as Json) as Record<string, Json>, options.env ?? {});

  const queues = queuesSchema.safeParse(objectAt(json, 'extensions', 'queues'));
  if (!queues.success) {
    throw new HostJsonError(`host.json ${issueList(zodIssues(queues.error, { root: 'extensions.queues' }))}`);
  }
  const batchSize = queues.data.batchsize ?? 16;
  const processorCount = options.processorCount ?? availableParallelism();

  let functionTimeoutMs: number | null = DEFAULT_FUNCTION_TIMEOUT_MS;
  const timeout = json['functiontimeout'];
  if (timeout !== undefined && timeout !== null) {
    const parsed = timeSpan.safeParse(timeout);
    if (!parsed.success) throw new HostJsonError(`host.json ${issueList(zodIssues(parsed.error, { root: 'functionTimeout', limit: 1 }))}`);
    functionTimeoutMs = parsed.data < 0 ? null : parsed.data;
  }

  const routePrefix = objectAt(json, 'extensions', 'http')['routeprefix'];
  return {
    functionTimeoutMs,
    queues: {
      batchSize,
      // QueuesOptions.NewBatchThreshold: "If not set then it defaults to BatchSize/2*processorCount".
      newBatchThreshold: queues.data.newbatchthreshold ?? Math.floor(batchSize / 2) * processorCount,
      maxDequeueCount: queues.data.maxdequeuecount ?? 5,
      visibilityTimeoutMs: queues.data.visibilitytimeout ?? 0,
      maxPollingIntervalMs: queues.data.maxpollinginterval ?? DEFAULT_MAX_POLLING_INTERVAL_MS,
      messageEncoding: queues.data.messageencoding ?? 'base64',
    },
    routePrefix: typeof routePrefix === 'string' ? routePrefix.replace(/^\/+|\/+$/g, '') : 'api',
  };
}

/** Reads `<projectRoot>/host.json`. */
export function readHostJson(projectRoot: string, options: ReadHostJsonOptions = {}): HostJson {
  const file = path.join(projectRoot, 'host.json');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new HostJsonError(`No host.json in ${projectRoot}: the Functions host needs one at the app's root`);
  }
  return parseHostJson(text, options);
}
