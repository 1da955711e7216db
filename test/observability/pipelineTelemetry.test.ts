import { randomUUID } from 'node:crypto';
import { beforeEach, describe, expect, it } from 'vitest';
import { rawEntity, rawExecutionContext } from '../../src/dataverse/samplePayloads';
import { on } from '../../src/handlerApi';
import { registryOf } from '../../src/handlerApi/load';
import { type RecordingTelemetry, recordingTelemetry } from '../../src/observability/telemetry';
import { replayFailures } from '../../src/pipeline/failures';
import type { StorageClients } from '../../src/storage/clients';
import { fixture } from '../support/fixtures';
import { ingest, processor } from '../support/processing';
import { dataverseHeaders } from '../support/requests';
import { isolatedStorage } from '../support/storage';

/** What the app tells Application Insights about one event, from the HTTP request to its handler. */
describe('telemetry along an event’s path', () => {
  let storage: StorageClients;
  let telemetry: RecordingTelemetry;
  beforeEach(async () => {
    storage = await isolatedStorage();
    telemetry = recordingTelemetry();
  });

  const FOLLOWED = {
    correlationId: 'b374239d-4233-41a9-8b17-a86cb4f737b5',
    operationId: '4af10637-4ea2-e711-8122-000d3aa2331c',
    correlationRequestId: '5bb3f2b0-7a9b-4f5e-9c52-1f3c0e7f0d11',
    organization: 'OrgName',
    table: 'contact',
    message: 'Update',
    recordId: '6d81597f-0f9f-e711-8122-000d3aa2331c',
  };

  it('received, accepted and processed carry the same identifiers, with the ack latency and the queue wait', async () => {
    const registry = registryOf([on({ name: 'any', entity: '*', message: '*' }, () => undefined)]);
    const eventId = await ingest(storage, fixture('use-webhooks.md').body, dataverseHeaders(), telemetry);
    await processor(storage, registry, { telemetry }).drain();

    expect(telemetry.events.map((event) => event.name)).toEqual(['received', 'accepted', 'processed']);
    expect(telemetry.eventsNamed('received')[0]?.properties).toEqual({ eventId, correlationRequestId: FOLLOWED.correlationRequestId });
    for (const name of ['accepted', 'processed'] as const) {
      expect(telemetry.eventsNamed(name)[0]?.properties).toMatchObject({ eventId, ...FOLLOWED });
    }
    expect(telemetry.eventsNamed('accepted')[0]).toMatchObject({
      properties: { status: '202' },
      measurements: { ackLatencyMs: expect.any(Number) },
    });
    expect(telemetry.eventsNamed('processed')[0]).toMatchObject({
      properties: { status: 'processed' },
      measurements: { queueWaitMs: expect.any(Number), units: 1 },
    });
    expect(telemetry.metrics.map((metric) => [metric.name, metric.properties])).toEqual([
      ['ackLatencyMs', { status: '202', table: 'contact', message: 'Update' }],
      ['queueWaitMs', { table: 'contact', message: 'Update' }],
    ]);
    expect(JSON.stringify(telemetry.events)).not.toContain('James');
  });

  it('rejected says why and with which status; truncated is told apart', async () => {
    await expect(ingest(storage, '{"MessageName": "Update"}', dataverseHeaders(), telemetry)).rejects.toThrow(/400/);
    expect(telemetry.eventsNamed('rejected')[0]?.properties).toMatchObject({ status: '400', reason: 'invalid-context' });

    const context = JSON.parse(fixture('use-webhooks.md').body.toString()) as Record<string, unknown>;
    delete context.InputParameters;
    await ingest(storage, JSON.stringify(context), dataverseHeaders({ 'x-ms-dynamics-msg-size-exceeded': 'true' }), telemetry);
    expect(telemetry.eventsNamed('truncated')[0]?.properties).toMatchObject(FOLLOWED);
  });

  it('duplicate, stale, poisoned and replayed are told too', async () => {
    let failing = true;
    const registry = registryOf([
      on({ name: 'fussy', entity: 'account', message: 'Update' }, () => {
        if (failing) throw new Error('no');
      }),
      on({ name: 'latest', entity: 'contact', message: 'Update', skipStale: true }, () => undefined),
    ]);
    const run = processor(storage, registry, { telemetry });

    await ingest(storage, fixture('08-').body, dataverseHeaders(), telemetry);
    await run.drain();
    const poisoned = telemetry.eventsNamed('poisoned')[0];
    expect(poisoned).toMatchObject({ properties: { table: 'account', message: 'Update', reason: 'fussy' }, measurements: { attempts: 3 } });
    failing = false;
    await replayFailures('all', { storage, telemetry });
    expect(telemetry.eventsNamed('replayed')[0]?.properties.eventId).toBe(poisoned?.properties.eventId);
    await run.drain();
    await ingest(storage, fixture('08-').body, dataverseHeaders(), telemetry);
    await run.drain();
    expect(telemetry.eventsNamed('duplicate')).toHaveLength(1);

    const id = randomUUID();
    const update = (versionnumber: number) =>
      JSON.stringify(
        rawExecutionContext({
          messageName: 'Update',
          entityName: 'contact',
          entityId: id,
          inputParameters: { Target: rawEntity('contact', id, { versionnumber }) },
        }),
      );
    await ingest(storage, update(2), dataverseHeaders(), telemetry);
    await run.drain();
    await ingest(storage, update(1), dataverseHeaders(), telemetry);
    await run.drain();
    expect(telemetry.eventsNamed('stale')).toEqual([
      expect.objectContaining({ properties: expect.objectContaining({ recordId: id, reason: 'latest' }) }),
    ]);
  });
});
