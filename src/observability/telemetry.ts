import { createRequire } from 'node:module';
import type * as Identity from '@azure/identity';
import type * as ApplicationInsights from 'applicationinsights';

/**
 * Custom telemetry about Dataverse events, sent to Application Insights when
 * `APPLICATIONINSIGHTS_CONNECTION_STRING` is set, and to nowhere otherwise; authenticated with a
 * managed identity when `APPLICATIONINSIGHTS_AUTHENTICATION_STRING` says `Authorization=AAD`.
 *
 * In Application Insights each event is a `customEvents` row named `dataverse.<name>` and each
 * metric a `customMetrics` row named `dataverse.<name>`; properties land in `customDimensions`,
 * measurements in `customMeasurements`. Properties carry identifiers only (see
 * TELEMETRY_PROPERTY_NAMES), never payload values.
 */

export const TELEMETRY_EVENT_NAMES = [
  'received',
  'accepted',
  'rejected',
  'truncated',
  'processed',
  'duplicate',
  'stale',
  'poisoned',
  'replayed',
  /** One inline handler's decision, in the webhook's request: `status` is allow, reject, error or timeout. */
  'decided',
  /** One retention run (the applyRetention timer): `status` complete or partial; counts in measurements. */
  'retention',
  /**
   * A processor found its unit taken over by another (its lease ran out: a stalled worker): `handler`,
   * and `reason` handler-stopped or effect-happened (the effect may run again).
   */
  'leaseLost',
  /**
   * One page of changes found by reconciliation, turned into events (queueReconciledChanges), per
   * `table`: `queued` (missed changes queued for the handlers, also as `creates`, `updates`,
   * `deletes`), `covered` (already applied), `rows` in measurements.
   */
  'reconciled',
  /** One reconcile run of one `table`: `status` token-taken, complete, partial, restarted, tracking-off or failed; `changed`, `deleted`, `pages`. */
  'reconcileRun',
] as const;
export type TelemetryEventName = (typeof TELEMETRY_EVENT_NAMES)[number];

export const TELEMETRY_METRIC_NAMES = [
  /** From the request reaching our code to the answer (what Dataverse waits for). */
  'ackLatencyMs',
  /** From `receivedAt` (enqueue) to the start of processing. */
  'queueWaitMs',
  /** Per queue (`queue`), from the monitorBacklog timer: how long the oldest visible message has waited (0 when none). */
  'queueAgeSeconds',
  /** Per queue (`queue`), from the monitorBacklog timer: the approximate number of messages on it. */
  'queueLength',
  /** From the monitorBacklog timer: poisoned events recorded and neither replayed nor resolved. */
  'failuresPending',
  /** Per `table`: a reconcile run found its change tracking token refused (`reason` expired or refused) and started over. */
  'reconcileRestarted',
] as const;
export type TelemetryMetricName = (typeof TELEMETRY_METRIC_NAMES)[number];

/**
 * The property names every item about one event carries, so that one KQL filter follows it from
 * the HTTP request through the queue to the handler. They are the names `logIdentifiers` uses in
 * log lines, plus `recordId` (PrimaryEntityId). `reason` says why for rejected and poisoned (and
 * carries a rejection's code, never its text); `status` is the HTTP status answered (on `decided`,
 * the decision); `handler` names the inline handler on `decided`.
 */
export const TELEMETRY_PROPERTY_NAMES = {
  eventId: 'eventId',
  correlationRequestId: 'correlationRequestId',
  correlationId: 'correlationId',
  operationId: 'operationId',
  organization: 'organization',
  table: 'table',
  message: 'message',
  recordId: 'recordId',
  reason: 'reason',
  status: 'status',
  handler: 'handler',
  /** On the queue metrics: the queue's name. */
  queue: 'queue',
} as const;

export type TelemetryPropertyName = keyof typeof TELEMETRY_PROPERTY_NAMES;

/**
 * Only the names above, so the KQL in the README keeps matching what is sent. Values are
 * identifiers; null and undefined are left out, the rest sent as text.
 */
export type TelemetryProperties = Readonly<Partial<Record<TelemetryPropertyName, string | number | boolean | null | undefined>>>;
export type TelemetryMeasurements = Readonly<Record<string, number>>;

export interface Telemetry {
  /** False when nothing is sent anywhere (no connection string, or the SDK failed). */
  readonly enabled: boolean;
  event(name: TelemetryEventName, properties: TelemetryProperties, measurements?: TelemetryMeasurements): void;
  /**
   * Pre-aggregated by the SDK (count, sum, min, max per minute and per distinct properties), so
   * give it low-cardinality properties (table, message, organization), not the eventId; put a
   * per-event value on the event as a measurement too when percentiles matter.
   */
  metric(name: TelemetryMetricName, value: number, properties?: TelemetryProperties): void;
  /** Sends what is buffered. */
  flush(): Promise<void>;
}

/** The name an item has in Application Insights. */
export function telemetryItemName(name: TelemetryEventName | TelemetryMetricName): string {
  return `dataverse.${name}`;
}

export const NO_TELEMETRY: Telemetry = {
  enabled: false,
  event: () => undefined,
  metric: () => undefined,
  flush: async () => undefined,
};

export interface RecordedEvent {
  name: TelemetryEventName;
  properties: Record<string, string>;
  measurements: Record<string, number>;
}

export interface RecordedMetric {
  name: TelemetryMetricName;
  value: number;
  properties: Record<string, string>;
}

export interface RecordingTelemetry extends Telemetry {
  readonly events: RecordedEvent[];
  readonly metrics: RecordedMetric[];
  /** The recorded events with this name, in order. */
  eventsNamed(name: TelemetryEventName): RecordedEvent[];
  clear(): void;
}

/** Keeps every item in memory, exactly as it would be sent: for tests. */
export function recordingTelemetry(): RecordingTelemetry {
  const events: RecordedEvent[] = [];
  const metrics: RecordedMetric[] = [];
  return {
    enabled: true,
    events,
    metrics,
    event: (name, properties, measurements = {}) => {
      events.push({ name, properties: sendableProperties(properties), measurements: { ...measurements } });
    },
    metric: (name, value, properties = {}) => {
      metrics.push({ name, value, properties: sendableProperties(properties) });
    },
    flush: async () => undefined,
    eventsNamed: (name) => events.filter((event) => event.name === name),
    clear: () => {
      events.length = 0;
      metrics.length = 0;
    },
  };
}

export function sendableProperties(properties: TelemetryProperties): Record<string, string> {
  const sendable: Record<string, string> = {};
  for (const [name, value] of Object.entries(properties)) {
    if (value !== null && value !== undefined) sendable[name] = String(value);
  }
  return sendable;
}

type ApplicationInsightsModule = typeof ApplicationInsights;

/** Which managed identity telemetry authenticates as: a user-assigned one by its client id, else the system-assigned one. */
export interface TelemetryAuthentication {
  clientId: string | null;
}

/**
 * `APPLICATIONINSIGHTS_AUTHENTICATION_STRING`, read exactly as Application Insights' own agent reads
 * it (microsoft/ApplicationInsights-node.js 3.15.1, d92a053, src/agent/agentLoader.ts): `;`-separated
 * `key=value` pairs, keys in any case, a pair with more or fewer than one `=` ignored;
 * `Authorization=AAD` (exactly) asks for a managed identity, `ClientId` names a user-assigned one.
 * The `setup().start()` API the app uses never reads the setting (only the auto-attach agent
 * does), and with local authentication off (infra/modules/monitoring.bicep) ingestion drops
 * whatever comes without a token: so the app reads it itself. Null: no Entra ID authentication.
 */
export function telemetryAuthentication(text: string | undefined): TelemetryAuthentication | null {
  if (!text?.trim()) return null;
  const fields: Record<string, string> = {};
  for (const pair of text.split(';')) {
    const parts = pair.split('=');
    if (parts.length === 2) fields[parts[0]!.toLowerCase()] = parts[1]!;
  }
  if (fields['authorization'] !== 'AAD') return null;
  return { clientId: fields['clientid'] || null };
}

/**
 * Application Insights 3.x through its classic API (`setup().start()`, `defaultClient`), which
 * registers the global OpenTelemetry providers once. Its client throws from `trackEvent` when its
 * own setup failed (an invalid connection string, say): the first failure turns telemetry off
 * with one warning, since an event must never fail because of its telemetry.
 */
function applicationInsightsTelemetry(
  connectionString: string,
  authentication: TelemetryAuthentication | null,
  warn: (message: string) => void,
): { telemetry: Telemetry; sdk: ApplicationInsightsModule } {
  // Loaded only when used: the SDK pulls in OpenTelemetry, which an app without telemetry need not load.
  const load = createRequire(__filename);
  const appInsights = load('applicationinsights') as ApplicationInsightsModule;
  const configuration = appInsights
    .setup(connectionString)
    // The Functions host already sends what the invocation logs; console capture would double it.
    .setAutoCollectConsole(false, false);
  const client = appInsights.defaultClient;
  if (authentication) {
    // start() hands config.aadTokenCredential to the exporters as their credential (3.15.1,
    // src/shim/shim-config.ts parseConfig): every export then carries a bearer token for
    // https://monitor.azure.com/, got from the identity as the agent gets it.
    const { ManagedIdentityCredential } = load('@azure/identity') as typeof Identity;
    client.config.aadTokenCredential = new ManagedIdentityCredential(authentication.clientId ? { clientId: authentication.clientId } : {});
  }
  configuration.start();

  let failed = false;
  const guarded = (work: () => void) => {
    if (failed) return;
    try {
      work();
    } catch (error) {
      failed = true;
      warn(`Application Insights telemetry is off for this process: ${error instanceof Error ? error.message : String(error)}`);
    }
  };
  const telemetry: Telemetry = {
    get enabled() {
      return !failed;
    },
    event: (name, properties, measurements = {}) =>
      guarded(() =>
        client.trackEvent({ name: telemetryItemName(name), properties: sendableProperties(properties), measurements: { ...measurements } }),
      ),
    metric: (name, value, properties = {}) =>
      guarded(() => client.trackMetric({ name: telemetryItemName(name), value, properties: sendableProperties(properties) })),
    flush: async () => {
      if (failed) return;
      try {
        await client.flush();
      } catch {
        // Sending is best effort; the SDK retries what it buffered.
      }
    },
  };
  return { telemetry, sdk: appInsights };
}

let processTelemetry: Telemetry = NO_TELEMETRY;
/** The SDK, once it started: the correlation hook needs it. */
let startedSdk: ApplicationInsightsModule | undefined;
let started = false;
let stopProcessTelemetry: (() => Promise<void>) | undefined;

export interface StartTelemetryOptions {
  env?: NodeJS.ProcessEnv;
  warn?: (message: string) => void;
}

/**
 * Starts the process-wide telemetry once, from `APPLICATIONINSIGHTS_CONNECTION_STRING` (and
 * `APPLICATIONINSIGHTS_AUTHENTICATION_STRING`, see `telemetryAuthentication`): called by
 * `src/index.ts` before any function file loads, so the SDK is in place before any invocation.
 * Without the setting nothing is loaded, exported or sent. Later calls return the same telemetry.
 */
export function startTelemetry(options: StartTelemetryOptions = {}): Telemetry {
  if (started) return processTelemetry;
  started = true;
  const env = options.env ?? process.env;
  const warn = options.warn ?? ((message: string) => process.stderr.write(`${message}\n`));
  const connectionString = env['APPLICATIONINSIGHTS_CONNECTION_STRING']?.trim();
  if (!connectionString) return processTelemetry;
  const authenticationString = env['APPLICATIONINSIGHTS_AUTHENTICATION_STRING'];
  const authentication = telemetryAuthentication(authenticationString);
  if (!authentication && authenticationString?.trim())
    warn('APPLICATIONINSIGHTS_AUTHENTICATION_STRING does not say Authorization=AAD: telemetry is sent without an Entra ID token');
  try {
    const { telemetry, sdk } = applicationInsightsTelemetry(connectionString, authentication, warn);
    processTelemetry = telemetry;
    startedSdk = sdk;
    stopProcessTelemetry = async () => {
      await processTelemetry.flush();
      try {
        await sdk.defaultClient.shutdown();
      } catch {
        // An SDK whose own setup failed cannot shut down either; there is nothing left to send.
      }
    };
  } catch (error) {
    warn(`Application Insights could not start; no telemetry is sent: ${error instanceof Error ? error.message : String(error)}`);
  }
  return processTelemetry;
}

/** The process-wide telemetry: a no-op until `startTelemetry` found a connection string. */
export function telemetry(): Telemetry {
  return processTelemetry;
}

/** Sends what is buffered and stops the exporters (a process that is about to exit). */
export async function shutdownTelemetry(): Promise<void> {
  const stop = stopProcessTelemetry;
  stopProcessTelemetry = undefined;
  processTelemetry = NO_TELEMETRY;
  startedSdk = undefined;
  await stop?.();
}

/** What correlation needs of a preInvocation hook's context; @azure/functions' PreInvocationContext fits. */
export interface InvocationToCorrelate<Handler> {
  readonly invocationContext: { readonly traceContext?: { readonly traceParent?: string | undefined } | undefined };
  functionHandler: Handler;
}

const TRACEPARENT = /^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/**
 * A preInvocation hook (`app.hook.preInvocation(continueHostTrace)`): runs the invocation inside the
 * trace the Functions host started for it, so our events share the operation_Id of the host's
 * request and trace telemetry. Application Insights 3.x no longer does this by itself in Functions.
 */
export function continueHostTrace<Handler extends (...args: never[]) => unknown>(hook: InvocationToCorrelate<Handler>): void {
  const sdk = startedSdk;
  const traceParent = hook.invocationContext.traceContext?.traceParent;
  const parts = traceParent ? TRACEPARENT.exec(traceParent) : null;
  if (!sdk || !parts) return;
  try {
    const hostTrace = sdk.startOperation({
      traceId: parts[1]!,
      spanId: parts[2]!,
      traceFlags: Number.parseInt(parts[3]!, 16),
      isRemote: true,
    });
    if (hostTrace) hook.functionHandler = sdk.wrapWithCorrelationContext(hook.functionHandler, hostTrace);
  } catch {
    // Correlation is a nicety: an invocation must run whatever the SDK does.
  }
}
