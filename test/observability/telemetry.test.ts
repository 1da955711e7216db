import { randomBytes, randomUUID } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  NO_TELEMETRY,
  recordingTelemetry,
  startTelemetry,
  TELEMETRY_EVENT_NAMES,
  TELEMETRY_METRIC_NAMES,
  telemetry,
  telemetryAuthentication,
  telemetryItemName,
} from '../../src/observability/telemetry';
import { type AppServiceIdentity, startAppServiceIdentity } from '../support/appServiceIdentity';
import { runToExit } from '../support/childProcess';
import { provisionedAppSettings } from '../support/provisionedSettings';
import { type IngestedItem, type IngestionEndpoint, startIngestionEndpoint, trackRequests } from '../support/telemetryIngestion';
import { useTempDirs } from '../support/tempDirs';

const CHILD = path.join(__dirname, 'telemetryChild.cjs');
const tempDir = useTempDirs();
const LOOPBACK_ONLY = path.join(__dirname, '..', 'support', 'loopbackOnly.cjs');

interface ChildReport {
  startedByAppEntry: boolean;
  startedEnabled: boolean;
  sameOnSecondStart: boolean;
  enabledAfterCalls: boolean;
  threw: string | null;
  warnings: string[];
  sdkLoaded: boolean;
}

type Call =
  | { kind: 'event'; name: string; properties: Record<string, string | number>; measurements?: Record<string, number> }
  | { kind: 'metric'; name: string; value: number; properties: Record<string, string> };

/**
 * The non-loopback connections the child tried, each blocked by the guard. Application Insights
 * 3.15 (@azure/monitor-opentelemetry 1.18, the newest that supports Node 20) always asks the Azure
 * VM metadata service for resource attributes when it starts; anything else would be a leak.
 */
function blockedConnections(stderr: string): string[] {
  return [...new Set(stderr.split('\n').filter((line) => line.startsWith('BLOCKED-NON-LOOPBACK')))];
}
const ONLY_THE_VM_METADATA_PROBE = ['BLOCKED-NON-LOOPBACK 169.254.169.254'];

/** Runs the built module in a child with only the environment given (never the developer's own). */
async function runChild(env: Record<string, string>, calls: Call[]): Promise<{ report: ChildReport; stderr: string }> {
  const { code, stdout, stderr } = await runToExit(process.execPath, ['--require', LOOPBACK_ONLY, CHILD], {
    timeoutMs: 20_000,
    env: {
      PATH: process.env.PATH ?? '',
      // The SDK keeps unsent telemetry on disk under the temp folder: not the developer's.
      TMPDIR: tempDir('telemetry-child-'),
      // Its own usage statistics go to Microsoft: off, and the loopback guard catches the rest.
      APPLICATION_INSIGHTS_NO_STATSBEAT: 'true',
      APPLICATIONINSIGHTS_STATSBEAT_DISABLED: 'true',
      APPLICATIONINSIGHTS_SDKSTATS_DISABLED: 'true',
      // As on Azure Functions. (The SDK's resource detection still asks the Azure VM metadata
      // service, 169.254.169.254, once at start; the loopback guard blocks it here.)
      WEBSITE_SITE_NAME: 'dataverse-webhooks-test',
      FUNCTIONS_EXTENSION_VERSION: '~4',
      REPORT_EVERY_CONNECTION: '1',
      TELEMETRY_CALLS: JSON.stringify(calls),
      ...env,
    },
  });
  const line = stdout.trim().split('\n').pop() ?? '';
  if (code !== 0 || !line.startsWith('{')) throw new Error(`child exited ${code}\nstdout: ${stdout}\nstderr: ${stderr}`);
  return { report: JSON.parse(line) as ChildReport, stderr };
}

const eventIds = { accepted: randomUUID(), rejected: randomUUID() };
const identifiers = {
  correlationRequestId: '5bb3f2b0-7a9b-4f5e-9c52-1f3c0e7f0d11',
  correlationId: '9f7c3c39-1b44-4cd5-8d5f-0e9d6c1c7a10',
  operationId: 'c0c2c7e1-1f1a-4a43-9e0f-3d5c3f0c8b21',
  organization: 'contoso',
  table: 'account',
  message: 'Update',
};
const CALLS: Call[] = [
  {
    kind: 'event',
    name: 'accepted',
    properties: { eventId: eventIds.accepted, ...identifiers, status: 202 },
    measurements: { ackLatencyMs: 12.5 },
  },
  { kind: 'event', name: 'rejected', properties: { eventId: eventIds.rejected, reason: 'invalid-json', status: 400 } },
  { kind: 'metric', name: 'ackLatencyMs', value: 12.5, properties: { table: 'account', message: 'Update' } },
  { kind: 'metric', name: 'queueWaitMs', value: 250, properties: { table: 'account', message: 'Update' } },
  // What the monitorBacklog timer sends, and the queue-age alert reads (infra/monitoring/alerts/queue-age.kql).
  { kind: 'metric', name: 'queueAgeSeconds', value: 930, properties: { queue: 'dataverse-events' } },
];

describe('telemetry in this process', () => {
  it('is a no-op until started, and starting without a connection string leaves it off', () => {
    expect(telemetry()).toBe(NO_TELEMETRY);
    const started = startTelemetry({ env: {}, warn: () => expect.unreachable('no warning without a connection string') });
    expect(started.enabled).toBe(false);
    expect(telemetry()).toBe(started);
    expect(() => {
      started.event('accepted', { eventId: randomUUID() });
      started.metric('ackLatencyMs', 3);
    }).not.toThrow();
  });

  it('records events and metrics in memory with the properties that would be sent', () => {
    const recorder = recordingTelemetry();
    recorder.event('rejected', { eventId: 'e1', reason: 'invalid-context', status: 400, operationId: null, table: undefined });
    recorder.metric('queueWaitMs', 42, { table: 'contact' });
    expect(recorder.eventsNamed('rejected')).toEqual([
      { name: 'rejected', properties: { eventId: 'e1', reason: 'invalid-context', status: '400' }, measurements: {} },
    ]);
    expect(recorder.metrics).toEqual([{ name: 'queueWaitMs', value: 42, properties: { table: 'contact' } }]);
    recorder.clear();
    expect(recorder.events).toEqual([]);
  });

  it('reads APPLICATIONINSIGHTS_AUTHENTICATION_STRING as the Application Insights agent does', () => {
    expect(telemetryAuthentication('ClientId=abc;Authorization=AAD')).toEqual({ clientId: 'abc' });
    expect(telemetryAuthentication('authorization=AAD; ')).toEqual({ clientId: null });
    expect(telemetryAuthentication('CLIENTID=abc;AUTHORIZATION=AAD')).toEqual({ clientId: 'abc' });
    // The value is compared exactly; a pair with a second "=" is ignored, as the agent ignores it.
    expect(telemetryAuthentication('ClientId=abc;Authorization=aad')).toBeNull();
    expect(telemetryAuthentication('ClientId=a=b;Authorization=AAD')).toEqual({ clientId: null });
    expect(telemetryAuthentication('')).toBeNull();
    expect(telemetryAuthentication(undefined)).toBeNull();
  });

  it('names every item dataverse.<name>', () => {
    expect(TELEMETRY_EVENT_NAMES.map(telemetryItemName)).toEqual([
      'dataverse.received',
      'dataverse.accepted',
      'dataverse.rejected',
      'dataverse.truncated',
      'dataverse.processed',
      'dataverse.duplicate',
      'dataverse.stale',
      'dataverse.poisoned',
      'dataverse.replayed',
      'dataverse.decided',
      'dataverse.retention',
      'dataverse.leaseLost',
      'dataverse.reconciled',
      'dataverse.reconcileRun',
    ]);
    expect(TELEMETRY_METRIC_NAMES.map(telemetryItemName)).toEqual([
      'dataverse.ackLatencyMs',
      'dataverse.queueWaitMs',
      'dataverse.queueAgeSeconds',
      'dataverse.queueLength',
      'dataverse.failuresPending',
      'dataverse.reconcileRestarted',
    ]);
  });
});

describe('telemetry in a process of its own', () => {
  it('without a connection string loads no SDK, opens no connection and never throws', async () => {
    const { report, stderr } = await runChild({}, CALLS);
    expect(report).toMatchObject({
      startedByAppEntry: false,
      startedEnabled: false,
      sameOnSecondStart: true,
      threw: null,
      warnings: [],
      sdkLoaded: false,
    });
    expect(stderr).not.toContain('CONNECT');
  });

  it('with a connection string the SDK cannot use, calls are still safe: one warning, then off', async () => {
    const { report, stderr } = await runChild(
      { APPLICATIONINSIGHTS_CONNECTION_STRING: 'InstrumentationKey=not-a-guid;IngestionEndpoint=https://127.0.0.1:9/' },
      CALLS,
    );
    expect(report.threw).toBeNull();
    expect(report.sdkLoaded).toBe(true);
    expect(report.enabledAfterCalls).toBe(false);
    expect(report.warnings).toHaveLength(1);
    expect(blockedConnections(stderr)).toEqual(ONLY_THE_VM_METADATA_PROBE);
  });

  describe('with a connection string, against a local ingestion endpoint', () => {
    let ingestion: IngestionEndpoint;

    beforeAll(async () => {
      ingestion = await startIngestionEndpoint(tempDir('telemetry-tls-'));
    });

    afterAll(async () => {
      await ingestion?.close();
    });

    it('exports the custom events and metrics, with their properties, and sends nothing elsewhere; the app flushes them as the worker ends', async () => {
      const hostTrace = { traceId: randomBytes(16).toString('hex'), spanId: randomBytes(8).toString('hex') };
      const iKey = randomUUID();
      const endpoint = ingestion.url;
      const { report, stderr } = await runChild(
        {
          APPLICATIONINSIGHTS_CONNECTION_STRING: `InstrumentationKey=${iKey};IngestionEndpoint=${endpoint};LiveEndpoint=${endpoint}`,
          // Read once at process start: the child trusts the self-signed certificate of this server only.
          NODE_EXTRA_CA_CERTS: ingestion.certificate,
          LOAD_APP_ENTRY: '1',
          // No explicit shutdown: the app's appTerminate hook must send what is buffered.
          END_WITH_APP_TERMINATE: '1',
          HOST_TRACE_PARENT: `00-${hostTrace.traceId}-${hostTrace.spanId}-01`,
        },
        CALLS,
      );
      expect(report).toMatchObject({
        startedByAppEntry: true,
        startedEnabled: true,
        sameOnSecondStart: true,
        enabledAfterCalls: true,
        threw: null,
        warnings: [],
        sdkLoaded: true,
      });
      expect(blockedConnections(stderr)).toEqual(ONLY_THE_VM_METADATA_PROBE);

      const tracked = trackRequests(ingestion.received);
      expect(tracked.length).toBeGreaterThan(0);
      // No APPLICATIONINSIGHTS_AUTHENTICATION_STRING: no token.
      expect(tracked.filter((request) => request.authorization)).toEqual([]);
      const items = tracked.flatMap((request) => request.items);
      expect(new Set(items.map((item) => item.iKey))).toEqual(new Set([iKey]));

      const eventItems = items.filter((item) => item.data.baseType === 'EventData');
      // Inside the host's trace: the same operation as the host's request telemetry.
      for (const item of eventItems)
        expect(item.tags).toMatchObject({ 'ai.operation.id': hostTrace.traceId, 'ai.operation.parentId': hostTrace.spanId });
      const events = eventItems.map((item) => item.data.baseData);
      expect(events.map((event) => event['name']).sort()).toEqual(['dataverse.accepted', 'dataverse.rejected']);
      expect(events.find((event) => event['name'] === 'dataverse.accepted')).toMatchObject({
        properties: { eventId: eventIds.accepted, ...identifiers, status: '202' },
        measurements: { ackLatencyMs: 12.5 },
      });
      expect(events.find((event) => event['name'] === 'dataverse.rejected')).toMatchObject({
        properties: { eventId: eventIds.rejected, reason: 'invalid-json', status: '400' },
      });

      const metrics = metricsIn(items);
      expect(metrics.find((metric) => metric.name === 'dataverse.ackLatencyMs')).toMatchObject({
        value: 12.5,
        properties: { table: 'account', message: 'Update' },
      });
      expect(metrics.find((metric) => metric.name === 'dataverse.queueWaitMs')).toMatchObject({
        value: 250,
        properties: { table: 'account', message: 'Update' },
      });
      expect(metrics.find((metric) => metric.name === 'dataverse.queueAgeSeconds')).toMatchObject({
        value: 930,
        properties: { queue: 'dataverse-events' },
      });
    });
  });

  describe('as deployed: with the settings the Bicep writes and the managed identity App Service serves', () => {
    /**
     * The exporter asks for scope https://monitor.azure.com/.default (@azure/monitor-opentelemetry-exporter,
     * platform/nodejs/httpSender.ts), which the managed identity clients send as the resource less
     * "/.default" (appServiceMsi2019.ts mapScopesToResource).
     */
    const MONITOR_AUDIENCE = 'https://monitor.azure.com';
    const clientId = randomUUID();
    let ingestion: IngestionEndpoint;
    let identity: AppServiceIdentity;

    beforeAll(async () => {
      ingestion = await startIngestionEndpoint(tempDir('telemetry-aad-tls-'));
      identity = await startAppServiceIdentity(clientId);
    });

    afterAll(async () => {
      await ingestion?.close();
      await identity?.close();
    });

    it('sends every ingestion request with the app identity’s token for Azure Monitor, the app’s own events and metrics among them', async () => {
      const iKey = randomUUID();
      // Exactly what a provision with no optional azd value writes: APPLICATIONINSIGHTS_AUTHENTICATION_STRING
      // names the identity, and local authentication is off, so nothing without a token is kept.
      const settings = provisionedAppSettings(
        {},
        {
          identityClientId: clientId,
          storageAccountName: 'stexample',
          applicationInsightsConnectionString: `InstrumentationKey=${iKey};IngestionEndpoint=${ingestion.url};LiveEndpoint=${ingestion.url}`,
        },
      );
      expect(settings['APPLICATIONINSIGHTS_AUTHENTICATION_STRING']).toBe(`ClientId=${clientId};Authorization=AAD`);
      const { report, stderr } = await runChild(
        {
          ...settings,
          // What App Service sets in the app's environment for its token endpoint.
          IDENTITY_ENDPOINT: identity.endpoint,
          IDENTITY_HEADER: identity.header,
          NODE_EXTRA_CA_CERTS: ingestion.certificate,
          LOAD_APP_ENTRY: '1',
          END_WITH_APP_TERMINATE: '1',
        },
        CALLS,
      );
      expect(report).toMatchObject({ startedByAppEntry: true, enabledAfterCalls: true, threw: null, warnings: [] });
      expect(blockedConnections(stderr)).toEqual(ONLY_THE_VM_METADATA_PROBE);

      const requests = ingestion.received;
      const authenticated = requests.filter((request) => {
        const token = /^Bearer (.+)$/.exec(request.authorization ?? '')?.[1];
        const issued = token ? identity.tokenFor(token) : undefined;
        return issued?.clientId === clientId && issued.resource === MONITOR_AUDIENCE;
      });
      expect(`${authenticated.length} of ${requests.length} ingestion requests carry the identity's token`).toBe(
        `${requests.length} of ${requests.length} ingestion requests carry the identity's token`,
      );
      // The identity was asked as the clients ask App Service, for Azure Monitor, and answered.
      expect(identity.requests.length).toBeGreaterThan(0);
      for (const request of identity.requests) {
        expect(request).toMatchObject({
          status: 200,
          query: { 'api-version': '2019-08-01', resource: MONITOR_AUDIENCE, client_id: clientId },
        });
      }

      const items = trackRequests(requests).flatMap((request) => request.items);
      const events = items.filter((item) => item.data.baseType === 'EventData').map((item) => item.data.baseData['name']);
      expect(events).toEqual(expect.arrayContaining(['dataverse.accepted', 'dataverse.rejected']));
      expect(metricsIn(items).map((metric) => metric.name)).toEqual(
        expect.arrayContaining(['dataverse.ackLatencyMs', 'dataverse.queueWaitMs', 'dataverse.queueAgeSeconds']),
      );
    });

    it('an authentication string that does not say Authorization=AAD is one warning, and no token is asked for', async () => {
      const before = identity.requests.length;
      const { report } = await runChild(
        {
          APPLICATIONINSIGHTS_CONNECTION_STRING: `InstrumentationKey=${randomUUID()};IngestionEndpoint=${ingestion.url}`,
          APPLICATIONINSIGHTS_AUTHENTICATION_STRING: `ClientId=${clientId};Authorization=aad`,
          IDENTITY_ENDPOINT: identity.endpoint,
          IDENTITY_HEADER: identity.header,
          NODE_EXTRA_CA_CERTS: ingestion.certificate,
        },
        CALLS,
      );
      expect(report.threw).toBeNull();
      expect(report.warnings).toEqual([
        'APPLICATIONINSIGHTS_AUTHENTICATION_STRING does not say Authorization=AAD: telemetry is sent without an Entra ID token',
      ]);
      expect(identity.requests.length).toBe(before);
    });
  });
});

/** The metrics among exported items, each with the properties of its item. */
function metricsIn(items: IngestedItem[]): Array<{ name: string; value: number; properties: unknown }> {
  return items
    .filter((item) => item.data.baseType === 'MetricData')
    .flatMap((item) =>
      (item.data.baseData['metrics'] as Array<{ name: string; value: number }>).map((metric) => ({
        ...metric,
        properties: item.data.baseData['properties'],
      })),
    );
}
