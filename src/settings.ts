import { z } from 'zod';
import { formatIssue, zodIssues } from './dataverse/issues';
import { FUNCTION_TIMEOUT_MS, INVOCATION_BUDGET_MS } from './hostConfig';

/**
 * Every setting the app reads, parsed once from app settings (environment variables; in local
 * development, `local.settings.json` Values). A bad value is reported once when the app starts
 * (`checkSettings`, from the appStart hook), naming the setting and never its value; the work that
 * needs it then fails in a way that loses nothing (a 503 that Dataverse retries, a queue retry).
 *
 * An empty value means unset: the Bicep writes `''` for a parameter nobody gave (DATAVERSE_URL,
 * WEBHOOK_ALLOWED_ORGANIZATIONS), and the portal lets anyone blank a setting.
 */

const positiveInteger = (fallback: number) => z.coerce.number().int().positive().default(fallback);

/** `{"x-api-key": ["current", "next"]}`: every name must match one of its values (two allow rotation). */
const credentialPairs = z
  .string()
  .optional()
  .transform((text, context) => {
    if (!text?.trim()) return [] as ExpectedCredential[];
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

/**
 * How long Dataverse waits for a webhook's answer: "The timeout is 60 seconds"; a request that
 * times out fails the step and is not retried
 * (https://learn.microsoft.com/power-apps/developer/data-platform/use-webhooks#troubleshoot-webhook-registrations).
 */
export const DATAVERSE_TIMEOUT_MS = 60_000;
/** What the app keeps in hand below Dataverse's timeout: reading the body, parsing, the answer's trip back. */
export const ANSWER_MARGIN_MS = 5_000;

const settingsSchema = z
  .object({
    WEBHOOK_MAX_BODY_BYTES: positiveInteger(4 * 1024 * 1024),
    WEBHOOK_STORAGE_DEADLINE_MS: positiveInteger(10_000),
    WEBHOOK_REJECTED_MAX_BYTES: positiveInteger(1024 * 1024),
    WEBHOOK_REQUIRED_HEADERS: credentialPairs,
    WEBHOOK_REQUIRED_QUERY: credentialPairs,
    WEBHOOK_ALLOWED_ORGANIZATIONS: commaList,
    // A person is waiting for their save: an inline handler gets seconds, not minutes.
    WEBHOOK_DECISION_TIMEOUT_MS: positiveInteger(5_000),
  })
  .superRefine((settings, context) => {
    // The inline handlers and then the storage writes must answer before Dataverse gives up.
    const available = DATAVERSE_TIMEOUT_MS - ANSWER_MARGIN_MS - settings.WEBHOOK_STORAGE_DEADLINE_MS;
    if (settings.WEBHOOK_DECISION_TIMEOUT_MS > available) {
      context.addIssue({
        code: 'custom',
        path: ['WEBHOOK_DECISION_TIMEOUT_MS'],
        message: `must be at most ${Math.max(0, available)} so that, with WEBHOOK_STORAGE_DEADLINE_MS and ${ANSWER_MARGIN_MS} ms in hand, the answer comes before Dataverse's ${DATAVERSE_TIMEOUT_MS / 1000} s timeout`,
      });
    }
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
  /**
   * How long one inline handler (`decide(…)`) may take before its signal aborts and the request
   * gets its time-limit answer. All the inline handlers of one request share what Dataverse's
   * 60 s leave after the storage deadline (`decisionsBudgetMs`).
   */
  decisionTimeoutMs: number;
}

/** What one request's inline handlers may take together: Dataverse's timeout less the storage deadline and a margin. */
export function decisionsBudgetMs(settings: Pick<IngestSettings, 'storageDeadlineMs'>): number {
  return Math.max(0, DATAVERSE_TIMEOUT_MS - ANSWER_MARGIN_MS - settings.storageDeadlineMs);
}

export class SettingsError extends Error {
  override readonly name = 'SettingsError';
  constructor(readonly problems: string[]) {
    super(`Invalid app settings: ${problems.join('; ')}`);
  }
}

/**
 * The settings that have a value: empty and blank ones are treated as unset, for everything the app
 * and the CLI read (the CLI's commands get their environment through this, in src/cli/main.ts).
 */
export function definedSettings(env: Readonly<Record<string, string | undefined>>): Record<string, string> {
  const defined: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) if (value !== undefined && value.trim() !== '') defined[name] = value;
  return defined;
}

function parseSettings<T>(schema: z.ZodType<T>, env: NodeJS.ProcessEnv): T {
  const parsed = schema.safeParse(definedSettings(env));
  if (parsed.success) return parsed.data;
  // Name the setting and the problem; the value itself may be a secret.
  throw new SettingsError(zodIssues(parsed.error, { root: '', limit: Number.POSITIVE_INFINITY }).map(formatIssue));
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
    decisionTimeoutMs: settings.WEBHOOK_DECISION_TIMEOUT_MS,
  };
}

/** Reads once, keeping the error too: a bad setting is not re-parsed (nor re-reported) per request. */
function once<T>(read: () => T): () => T {
  let result: { ok: true; value: T } | { ok: false; error: unknown } | undefined;
  return () => {
    if (!result) {
      try {
        result = { ok: true, value: read() };
      } catch (error) {
        result = { ok: false, error };
      }
    }
    if (!result.ok) throw result.error;
    return result.value;
  };
}

/**
 * The process-wide settings, read on first use (app settings do not change while a worker runs).
 * Throws the same SettingsError on every call while a setting is bad.
 */
export const ingestSettings: () => IngestSettings = once(() => readIngestSettings());

const FUNCTION_TIMEOUT_SECONDS = FUNCTION_TIMEOUT_MS / 1000;
/** The ledger lease's default: renewed every third of it, a dead holder's units are free again within it. */
export const DEFAULT_LEASE_SECONDS = 30;
const MIN_LEASE_SECONDS = 2;
const INVOCATION_BUDGET_SECONDS = INVOCATION_BUDGET_MS / 1000;

const processSettingsSchema = z.object({
  PROCESSOR_MAX_DEPTH: positiveInteger(8),
  // A unit's lease is short and renewed by its holder while the handler runs (see
  // pipeline/ledger/unitLease.ts): a dead holder's event runs again within about a lease, a live one
  // keeps it however long functionTimeout lets it run.
  PROCESSOR_LEASE_SECONDS: positiveInteger(DEFAULT_LEASE_SECONDS).refine(
    (seconds) => seconds >= MIN_LEASE_SECONDS,
    `must be at least ${MIN_LEASE_SECONDS}`,
  ),
  // How far apart copies of events that wait for a lease are spread (default a quarter of the lease).
  PROCESSOR_DEFER_JITTER_SECONDS: z.coerce.number().nonnegative().optional(),
  // Below functionTimeout, so that a hung handler fails its unit instead of restarting the worker.
  PROCESSOR_HANDLER_TIMEOUT_SECONDS: positiveInteger(120).refine(
    (seconds) => seconds <= INVOCATION_BUDGET_SECONDS,
    `must be at most ${INVOCATION_BUDGET_SECONDS} (host.json functionTimeout less ${FUNCTION_TIMEOUT_SECONDS - INVOCATION_BUDGET_SECONDS} s)`,
  ),
  DATAVERSE_URL: z.url({ protocol: /^https$/ }).optional(),
});

export interface ProcessSettings {
  /** Events deeper than this (a handler's writes triggering itself) are recorded and not handled. */
  maxDepth: number;
  /**
   * How long a unit's lease lasts from its claim or its last renewal, on the Table service's clock.
   * The processor renews it every third of this from the claim until the unit is marked done, and
   * aborts the handler's signal when it could not renew it in time, so a live handler is never run
   * twice at once and a dead one's unit is free again within this long (and a second's margin) of
   * its death.
   */
  leaseMs: number;
  /** A copy that waits for a lease (or follows a dead holder) comes back up to this much later, at random. */
  deferJitterMs: number;
  /**
   * How long one handler call may run before its signal aborts and its unit fails (to be retried
   * like any failure). Also bounded by what is left of the invocation's budget.
   */
  handlerTimeoutMs: number;
  /** The organization truncated records are re-read from (`rereadTruncated`); null: no re-reads. */
  dataverseUrl: string | null;
}

export function readProcessSettings(env: NodeJS.ProcessEnv = process.env): ProcessSettings {
  const settings = parseSettings(processSettingsSchema, env);
  return {
    maxDepth: settings.PROCESSOR_MAX_DEPTH,
    leaseMs: settings.PROCESSOR_LEASE_SECONDS * 1000,
    deferJitterMs:
      settings.PROCESSOR_DEFER_JITTER_SECONDS === undefined
        ? (settings.PROCESSOR_LEASE_SECONDS * 1000) / 4
        : settings.PROCESSOR_DEFER_JITTER_SECONDS * 1000,
    handlerTimeoutMs: settings.PROCESSOR_HANDLER_TIMEOUT_SECONDS * 1000,
    dataverseUrl: settings.DATAVERSE_URL ?? null,
  };
}

export const processSettings: () => ProcessSettings = once(() => readProcessSettings());

/**
 * How long the ledger keeps a row after its last write (and `failures` a replayed or resolved
 * record). The automatic redelivery windows are short: Dataverse retries a 502/503/504 once;
 * the queue redelivers at most maxDequeueCount (5) times, 30 s apart after a failure or 10 min
 * apart after a crash (the host's message lease), so within about an hour. What is not automatic
 * is a copy waiting on the queue while processing is stopped (a bad deploy, a disabled function):
 * the default week covers a long weekend of that after the queue-age alert fired. Poisoned events
 * are kept (with their ledger rows) until replayed or resolved, whatever their age.
 */
export const DEFAULT_RETENTION_DAYS = 7;
/** Below this the ledger could forget a delivery the queue may still redeliver (see above). */
export const MIN_RETENTION_DAYS = 1;

const retentionSettingsSchema = z.object({
  RETENTION_DAYS: z.coerce
    .number()
    .positive()
    .default(DEFAULT_RETENTION_DAYS)
    .refine(
      (days) => days >= MIN_RETENTION_DAYS,
      `must be at least ${MIN_RETENTION_DAYS} (a day), longer than the queue's redelivery window`,
    ),
});

export interface RetentionSettings {
  /** Ledger rows not written for this long are removed, and replayed or resolved failure records this long after. */
  retentionMs: number;
}

export function readRetentionSettings(env: NodeJS.ProcessEnv = process.env): RetentionSettings {
  const settings = parseSettings(retentionSettingsSchema, env);
  return { retentionMs: Math.round(settings.RETENTION_DAYS * 24 * 60 * 60 * 1000) };
}

export const retentionSettings: () => RetentionSettings = once(() => readRetentionSettings());

/** Reconciliation runs this often unless set (RECONCILE_INTERVAL, minutes). */
export const DEFAULT_RECONCILE_INTERVAL_MINUTES = 15;
/** The reconcile timer looks every minute: a shorter interval would not be honoured. */
const MIN_RECONCILE_INTERVAL_MINUTES = 1;
/**
 * How long a run holds its lease between two pages. A page is one Web API request (30 s at most,
 * retried a few times) and writing it to storage; a run that dies leaves the next one waiting this long.
 */
export const RECONCILE_LEASE_MS = 3 * 60_000;

const reconcileSettingsSchema = z.object({
  RECONCILE_INTERVAL: z.coerce
    .number()
    .positive()
    .default(DEFAULT_RECONCILE_INTERVAL_MINUTES)
    .refine(
      (minutes) => minutes >= MIN_RECONCILE_INTERVAL_MINUTES,
      `must be at least ${MIN_RECONCILE_INTERVAL_MINUTES} (minutes): the reconcile timer looks every minute`,
    ),
});

export interface ReconcileSettings {
  /** How long after a run started the next one starts (whichever instance's timer fires). */
  intervalMs: number;
  /** How long a run's lease lasts from its last renewal (after each page). */
  leaseMs: number;
}

export function readReconcileSettings(env: NodeJS.ProcessEnv = process.env): ReconcileSettings {
  const settings = parseSettings(reconcileSettingsSchema, env);
  return { intervalMs: Math.round(settings.RECONCILE_INTERVAL * 60_000), leaseMs: RECONCILE_LEASE_MS };
}

export const reconcileSettings: () => ReconcileSettings = once(() => readReconcileSettings());

/**
 * Every app setting the engine reads, by name, from the schemas above: what infra/main.bicep must
 * write on every provision (test/infra/settings.test.ts fails when it does not), and what
 * docs/settings.md lists.
 */
export const APP_SETTING_NAMES: readonly string[] = [
  ...Object.keys(settingsSchema.shape),
  ...Object.keys(processSettingsSchema.shape),
  ...Object.keys(retentionSettingsSchema.shape),
  ...Object.keys(reconcileSettingsSchema.shape),
];

/** The settings that hold credentials: a @secure() parameter in the Bicep, never a plain one. */
export const SECRET_SETTING_NAMES: readonly string[] = ['WEBHOOK_REQUIRED_HEADERS', 'WEBHOOK_REQUIRED_QUERY'] satisfies Array<
  keyof typeof settingsSchema.shape
>;

/** The settings, or why they are invalid: for work that must answer (503, a retry) rather than throw. */
export function settingsOrError<T>(read: () => T): T | SettingsError {
  try {
    return read();
  } catch (error) {
    if (error instanceof SettingsError) return error;
    throw error;
  }
}

/**
 * Every problem with the app's settings, one line each (the setting's name and what is wrong,
 * never its value): what the appStart hook reports. Empty when all is well.
 */
export function checkSettings(env: NodeJS.ProcessEnv = process.env): string[] {
  const problems: string[] = [];
  for (const read of [readIngestSettings, readProcessSettings, readRetentionSettings, readReconcileSettings]) {
    try {
      read(env);
    } catch (error) {
      if (!(error instanceof SettingsError)) throw error;
      problems.push(...error.problems);
    }
  }
  return problems;
}
