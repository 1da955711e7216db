import { execFile, spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  NO_TELEMETRY,
  recordingTelemetry,
  startTelemetry,
  TELEMETRY_EVENT_NAMES,
  TELEMETRY_METRIC_NAMES,
  telemetry,
  telemetryItemName,
} from '../../src/observability/telemetry';
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
function runChild(env: Record<string, string>, calls: Call[]): Promise<{ report: ChildReport; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--require', LOOPBACK_ONLY, CHILD], {
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
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      const line = stdout.trim().split('\n').pop() ?? '';
      if (code !== 0 || !line.startsWith('{')) return reject(new Error(`child exited ${code}\nstdout: ${stdout}\nstderr: ${stderr}`));
      resolve({ report: JSON.parse(line) as ChildReport, stderr });
    });
  });
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
    ]);
    expect(TELEMETRY_METRIC_NAMES.map(telemetryItemName)).toEqual([
      'dataverse.ackLatencyMs',
      'dataverse.queueWaitMs',
      'dataverse.queueAgeSeconds',
      'dataverse.queueLength',
      'dataverse.failuresPending',
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
    interface Received {
      path: string;
      encoding: string | undefined;
      items: Array<{
        name: string;
        iKey: string;
        tags: Record<string, string>;
        data: { baseType: string; baseData: Record<string, unknown> };
      }>;
    }
    const received: Received[] = [];
    let server: Server;
    let certificate: string;

    beforeAll(async () => {
      const dir = tempDir('telemetry-tls-');
      certificate = path.join(dir, 'cert.pem');
      const key = path.join(dir, 'key.pem');
      await promisify(execFile)('openssl', [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        key,
        '-out',
        certificate,
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
      ]);
      server = createServer({ key: readFileSync(key), cert: readFileSync(certificate) }, (request, response) => {
        const chunks: Buffer[] = [];
        request.on('data', (chunk: Buffer) => chunks.push(chunk));
        request.on('end', () => {
          const raw = Buffer.concat(chunks);
          const encoding = request.headers['content-encoding'];
          const text = (encoding === 'gzip' ? gunzipSync(raw) : raw).toString('utf8');
          let items: Received['items'] = [];
          if (request.url?.includes('/track') && text) {
            // v2.1/track takes a JSON array; the older form is one JSON object a line.
            items = text.trimStart().startsWith('[')
              ? JSON.parse(text)
              : text
                  .split('\n')
                  .filter(Boolean)
                  .map((line) => JSON.parse(line));
          }
          received.push({ path: request.url ?? '', encoding, items });
          response.writeHead(200, { 'content-type': 'application/json' });
          response.end(JSON.stringify({ itemsReceived: items.length, itemsAccepted: items.length, errors: [] }));
        });
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    });

    afterAll(async () => {
      await new Promise<void>((resolve) => server?.close(() => resolve()));
    });

    it('exports the custom events and metrics, with their properties, and sends nothing elsewhere; the app flushes them as the worker ends', async () => {
      const { port } = server.address() as AddressInfo;
      const hostTrace = { traceId: randomBytes(16).toString('hex'), spanId: randomBytes(8).toString('hex') };
      const iKey = randomUUID();
      const endpoint = `https://127.0.0.1:${port}/`;
      const { report, stderr } = await runChild(
        {
          APPLICATIONINSIGHTS_CONNECTION_STRING: `InstrumentationKey=${iKey};IngestionEndpoint=${endpoint};LiveEndpoint=${endpoint}`,
          // Read once at process start: the child trusts the self-signed certificate of this server only.
          NODE_EXTRA_CA_CERTS: certificate,
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

      const tracked = received.filter((request) => /^\/v2(\.1)?\/track/.test(request.path));
      expect(tracked.length).toBeGreaterThan(0);
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

      const metrics = items
        .filter((item) => item.data.baseType === 'MetricData')
        .flatMap((item) =>
          (item.data.baseData['metrics'] as Array<{ name: string; value: number; count?: number }>).map((metric) => ({
            ...metric,
            properties: item.data.baseData['properties'],
          })),
        );
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
});
