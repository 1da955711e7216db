import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FUNCTION_NAMES as NAMES } from '../../src/functionNames';
import {
  recordingTelemetry,
  TELEMETRY_EVENT_NAMES,
  TELEMETRY_METRIC_NAMES,
  TELEMETRY_PROPERTY_NAMES,
  telemetryItemName,
} from '../../src/observability/telemetry';
import { emitBacklog } from '../../src/pipeline/backlog';
import { EVENTS_QUEUE, POISON_QUEUE } from '../../src/storage/names';

/**
 * The workbook panels and alert rules that deploy with the app (infra/modules/operations.bicep),
 * read from the very .kql files the Bicep loads with loadTextContent, and held to the names the app
 * emits: src/observability/telemetry.ts for events, metrics and their properties, and the function
 * registrations in src/functions for the host's own `requests` rows. Renaming an event, a metric, a
 * property or a function breaks this test, not a dashboard.
 */
const root = path.resolve(__dirname, '..', '..');
const read = (file: string) => readFileSync(path.join(root, file), 'utf8');
const operations = read('infra/modules/operations.bicep');
const main = read('infra/main.bicep');

/** Every file the Bicep loads, resolved from the module's folder as Bicep resolves it. */
const loaded = [...operations.matchAll(/loadTextContent\('([^']+)'\)/g)].map((match) => path.posix.join('infra/modules', match[1]!));
const kqlFiles = (folder: string) =>
  readdirSync(path.join(root, 'infra', 'monitoring', folder)).map((file) => `infra/monitoring/${folder}/${file}`);
const panels = kqlFiles('panels');
const alerts = kqlFiles('alerts');

const EVENT_ITEMS = new Set(TELEMETRY_EVENT_NAMES.map(telemetryItemName));
const METRIC_ITEMS = new Set(TELEMETRY_METRIC_NAMES.map(telemetryItemName));
const PROPERTIES = new Set<string>(Object.values(TELEMETRY_PROPERTY_NAMES));

/** The functions the app registers (app.http / app.storageQueue / app.timer), by name. */
const FUNCTION_NAMES = new Set<string>(Object.values(NAMES));

interface Query {
  file: string;
  /** The table the query reads (its first line that is not a comment). */
  table: string;
  items: string[];
  dimensions: string[];
  measurements: string[];
  operations: string[];
}

function parse(file: string): Query {
  const text = read(file);
  const code = text
    .split('\n')
    .filter((line) => !line.trimStart().startsWith('//'))
    .join('\n');
  return {
    file,
    table: code.trim().split(/\s/)[0]!,
    items: [...code.matchAll(/"(dataverse\.[A-Za-z]+)"/g)].map((match) => match[1]!),
    dimensions: [...code.matchAll(/customDimensions\.(\w+)/g)].map((match) => match[1]!),
    measurements: [...code.matchAll(/customMeasurements\.(\w+)/g)].map((match) => match[1]!),
    operations: [...code.matchAll(/operation_Name == "([^"]+)"/g)].map((match) => match[1]!),
  };
}

describe('the workbook and alerts deployed with the app', () => {
  it('load every query file under infra/monitoring, and only files that exist', () => {
    expect([...loaded].sort()).toEqual([...panels, ...alerts].sort());
    expect(panels.length).toBeGreaterThanOrEqual(9);
    expect(alerts.length).toBe(5);
  });

  for (const file of [...panels, ...alerts]) {
    it(`${file} reads only telemetry the app emits, under its names`, () => {
      const query = parse(file);
      expect(['customEvents', 'customMetrics', 'requests'], 'one table per query').toContain(query.table);
      // Each query is about something the app sends: an item, or a function the host times.
      expect(query.items.length + query.operations.length).toBeGreaterThan(0);
      const known = query.table === 'customEvents' ? EVENT_ITEMS : METRIC_ITEMS;
      for (const item of query.items) expect(known, `${item} in ${query.table}`).toContain(item);
      if (query.table === 'requests') expect(query.items).toEqual([]);
      for (const dimension of query.dimensions) expect(PROPERTIES, `customDimensions.${dimension}`).toContain(dimension);
      // The only measurement read is the ack latency, which `accepted` carries for exact percentiles.
      for (const measurement of query.measurements) expect(measurement).toBe('ackLatencyMs');
      for (const operation of query.operations) expect(FUNCTION_NAMES, `operation_Name ${operation}`).toContain(operation);
      if (query.table !== 'requests') expect(query.operations).toEqual([]);
    });
  }

  it('answer each question the operator asks', () => {
    const uses = (file: string) => parse(`infra/monitoring/panels/${file}.kql`);
    expect(uses('events-per-minute').items.sort()).toEqual(
      ['accepted', 'poisoned', 'processed'].map((name) => telemetryItemName(name as 'accepted')).sort(),
    );
    expect(uses('ack-latency').measurements).toEqual(['ackLatencyMs']);
    expect(read('infra/monitoring/panels/ack-latency.kql')).toMatch(/percentile\(ackLatencyMs, 95\)/);
    expect(uses('processing-latency').operations).toEqual([NAMES.processEvent]);
    expect(read('infra/monitoring/panels/processing-latency.kql')).toMatch(/percentile\(duration, 95\)/);
    expect(uses('unavailable-by-cause')).toMatchObject({ items: [telemetryItemName('rejected')], dimensions: ['status', 'reason'] });
    expect(uses('queue-age')).toMatchObject({ items: [telemetryItemName('queueAgeSeconds')], dimensions: ['queue'] });
    expect(uses('decisions-by-outcome')).toMatchObject({ items: [telemetryItemName('decided')], dimensions: ['status', 'handler'] });
    expect(uses('failing-handlers').items).toEqual([telemetryItemName('poisoned')]);
  });

  it('alert on any poisoned event, the 503 rate, the age of the oldest queued event and processing failures', () => {
    const alert = (name: string) => {
      const block = operations.match(new RegExp(`name: '${name}'\\n[\\s\\S]*?windowSize: '[^']+'`))?.[0];
      if (!block) throw new Error(`no alert ${name}`);
      return block;
    };
    expect(alert('poisoned-event')).toMatch(
      /loadTextContent\('\.\.\/monitoring\/alerts\/poisoned\.kql'\)[\s\S]*timeAggregation: 'Count'[\s\S]*threshold: 0\n/,
    );
    expect(parse('infra/monitoring/alerts/poisoned.kql').items).toEqual([telemetryItemName('poisoned')]);

    expect(alert('webhook-503-rate')).toMatch(
      /unavailable-rate\.kql'\)[\s\S]*metricMeasureColumn: 'unavailablePercent'[\s\S]*threshold: unavailablePercentThreshold/,
    );
    expect(read('infra/monitoring/alerts/unavailable-rate.kql')).toMatch(/extend unavailablePercent = /);

    expect(alert('queue-age')).toMatch(
      /alerts\/queue-age\.kql'\)[\s\S]*metricMeasureColumn: 'oldestSeconds'[\s\S]*threshold: queueAgeMinutes \* 60/,
    );
    // The main queue, by the name the app writes it under.
    expect(read('infra/monitoring/alerts/queue-age.kql')).toContain(`tostring(customDimensions.queue) == "${EVENTS_QUEUE}"`);
    expect(read('infra/monitoring/alerts/queue-age.kql')).toMatch(/summarize oldestSeconds = /);

    expect(alert('processing-failures')).toMatch(
      /processing-failures\.kql'\)[\s\S]*timeAggregation: 'Count'[\s\S]*threshold: processingFailuresThreshold/,
    );
    expect(read('infra/monitoring/alerts/processing-failures.kql')).toMatch(/success == false/);

    // Every rule but app-down fires on a figure above its threshold.
    expect([...operations.matchAll(/operator: '(\w+)'/g)].map((match) => match[1])).toEqual([
      'GreaterThan',
      'GreaterThan',
      'GreaterThan',
      'GreaterThan',
      'LessThan',
    ]);
    expect(operations).toContain('operator: alert.operator');

    // Every rule notifies the action group.
    expect(operations).toMatch(/resource alertRules 'Microsoft\.Insights\/scheduledQueryRules@[\d-]+' = \[\s+for alert in alerts:/);
    expect(operations).toContain('actions: { actionGroups: [actionGroup.id] }');
    expect(operations).toContain('scopes: [applicationInsightsId]');
  });

  it('e-mail the action group only when an address was given (an unset parameter is an empty string)', () => {
    expect(operations).toMatch(/emailReceivers: empty\(alertEmail\) \? \[\] : \[\s+\{\s+name: 'operator'\s+emailAddress: alertEmail/);
    expect(main).toMatch(/^param alertEmail string = ''$/m);
    expect(JSON.parse(read('infra/main.parameters.json')).parameters.alertEmail).toEqual({ value: `\${ALERT_EMAIL=}` });
    expect(main).toMatch(
      /module operations 'modules\/operations\.bicep' = \{[\s\S]*alertEmail: alertEmail[\s\S]*applicationInsightsId: monitoring\.outputs\.applicationInsightsId|module operations 'modules\/operations\.bicep' = \{[\s\S]*applicationInsightsId: monitoring\.outputs\.applicationInsightsId[\s\S]*alertEmail: alertEmail/,
    );
    expect(read('infra/modules/monitoring.bicep')).toContain('output applicationInsightsId string = applicationInsights.id');
  });

  it('put every panel in the workbook, which reads the Application Insights resource', () => {
    const panelBlocks = [...operations.matchAll(/title: '([^']+)'\n\s+query: loadTextContent\('\.\.\/monitoring\/panels\/([^']+)'\)/g)];
    expect(panelBlocks.map((match) => `infra/monitoring/panels/${match[2]}`).sort()).toEqual([...panels].sort());
    expect(operations).toMatch(/items: \[\s+for \(panel, index\) in panels:/);
    expect(operations).toContain("resourceType: 'microsoft.insights/components'");
    expect(operations).toContain('serializedData: string(workbookContent)');
    expect(operations).toContain('sourceId: applicationInsightsId');
  });

  it('alert when the app itself is down: no heartbeat, a metric monitorBacklog sends every minute even with nothing queued', () => {
    const block = operations.match(/name: 'app-down'\n[\s\S]*?windowSize: '[^']+'/)?.[0] ?? '';
    expect(block).toMatch(
      /loadTextContent\('\.\.\/monitoring\/alerts\/app-down\.kql'\)[\s\S]*timeAggregation: 'Maximum'[\s\S]*metricMeasureColumn: 'heartbeats'[\s\S]*operator: 'LessThan'[\s\S]*threshold: 1\n[\s\S]*windowSize: 'PT\$\{appDownMinutes\}M'/,
    );
    expect(block).toMatch(/severity: 1/);
    // The query always returns one row (a summarize with no "by"), so no data at all is a 0, not an empty result.
    const query = read('infra/monitoring/alerts/app-down.kql');
    expect(query).toMatch(/\| summarize heartbeats = count\(\)\s*$/);
    const heartbeat = parse('infra/monitoring/alerts/app-down.kql');
    expect(heartbeat).toMatchObject({ table: 'customMetrics', items: [telemetryItemName('queueLength')], dimensions: ['queue'] });
    expect(query).toContain(`tostring(customDimensions.queue) == "${EVENTS_QUEUE}"`);

    // What the app sends for an empty backlog: the heartbeat is there even when nothing waits.
    const recorder = recordingTelemetry();
    const empty = { queue: EVENTS_QUEUE, length: 0, oldestAgeSeconds: 0, oldestInsertedOn: null };
    emitBacklog({ events: empty, poison: { ...empty, queue: POISON_QUEUE }, failures: 0 }, recorder);
    expect(recorder.metrics).toContainEqual({ name: 'queueLength', value: 0, properties: { queue: EVENTS_QUEUE } });
    // Every minute, well within the shortest window the alert allows.
    // (Read from the source: importing the registration would register it with @azure/functions.)
    expect(read('src/functions/monitorBacklog.ts')).toMatch(/^export const BACKLOG_SCHEDULE = '0 \* \* \* \* \*';$/m);
    expect(read('src/functions/monitorBacklog.ts')).toMatch(/schedule: BACKLOG_SCHEDULE,\n\s+runOnStartup: false,/);
    const allowed = /@allowed\(\[([\d, ]+)\]\)\nparam appDownMinutes int/.exec(operations)?.[1]?.split(',').map(Number) ?? [];
    expect(Math.min(...allowed)).toBeGreaterThanOrEqual(10);
    expect(main).toMatch(/^param appDownAlertMinutes int = 10$/m);
    expect(main).toContain('appDownMinutes: appDownAlertMinutes');
  });

  it('the app emits the queue-age metric the alert reads, on its timer, and RETENTION_DAYS reaches the app as the Bicep writes it', () => {
    expect(FUNCTION_NAMES).toContain(NAMES.monitorBacklog);
    expect(FUNCTION_NAMES).toContain(NAMES.applyRetention);
    expect(main).toMatch(/^\s+RETENTION_DAYS: retentionDays$/m);
    expect(JSON.parse(read('infra/main.parameters.json')).parameters.retentionDays).toEqual({ value: `\${RETENTION_DAYS=}` });
  });
});
