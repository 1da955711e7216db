import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { QueueServiceClient } from '@azure/storage-queue';
import { largeCreateMultiple } from '../src/dataverse/samplePayloads';
import { startAzurite } from '../devhost/azurite';
import { readHostJson } from '../devhost/hostJson';
import { asFunctionInput, QueueListener, type QueueFunction } from '../devhost/queueListener';
import { silentLog } from '../src/observability/log';
import { acceptWebhook } from '../src/pipeline/accept';
import { parseEnvelope } from '../src/pipeline/envelope';
import { HandlerRegistry } from '../src/pipeline/handlerRegistry';
import { processEnvelope } from '../src/pipeline/process';
import { readIngestSettings, readProcessSettings } from '../src/settings';
import { getPayload, deletePayload } from '../src/storage/claimCheck';
import { createStorageClients, ensureStorageResources, type StorageClients } from '../src/storage/clients';
import { docsSampleBody } from './parse';
import { median } from './stats';

export interface ProcessFigure {
  payload: string;
  events: number;
  azuriteAlonePerSecond: number;
  processedPerSecond: number;
  ratio: number;
}

/** The deployed app's queue settings: host.json, as the host reads it from the app's root. */
const QUEUES = readHostJson(path.join(__dirname, '..', '..')).queues;

/** A copy of the body that is a different delivery (new correlation and operation ids). */
function distinctDelivery(body: Buffer): Buffer {
  const context = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
  context.CorrelationId = randomUUID();
  context.OperationId = randomUUID();
  context.RequestId = randomUUID();
  return Buffer.from(JSON.stringify(context));
}

async function prefill(storage: StorageClients, body: Buffer, count: number): Promise<void> {
  const settings = readIngestSettings({});
  const headers = new Headers({ 'x-ms-dynamics-organization': 'contoso.crm.dynamics.com' });
  for (let i = 0; i < count; i += 16) {
    await Promise.all(
      Array.from({ length: Math.min(16, count - i) }, async () => {
        const copy = distinctDelivery(body);
        const result = await acceptWebhook({ method: 'POST', url: 'http://localhost/api/dataverse/webhook', headers, body: async () => copy }, { settings, storage, log: silentLog });
        if (result.response.status !== 202) throw new Error(`prefill answered ${result.response.status}`);
      }),
    );
  }
}

async function eventsPerSecond(queueService: QueueServiceClient, storage: StorageClients, run: QueueFunction, count: number): Promise<number> {
  const started = process.hrtime.bigint();
  // The host's own listener rules: batches of batchSize, refilled at newBatchThreshold.
  const listener = new QueueListener({ queueService, queueName: storage.names.eventsQueue, queues: { ...QUEUES, maxPollingIntervalMs: 100 }, run });
  listener.start();
  try {
    while (listener.counts.succeeded + listener.counts.failed < count) await new Promise((resolve) => setTimeout(resolve, 5));
  } finally {
    await listener.stop();
  }
  if (listener.counts.failed > 0) throw new Error('a benchmark event failed');
  return count / (Number(process.hrtime.bigint() - started) / 1e9);
}

/**
 * Events per second from a pre-filled queue through dedupe to a no-op handler, against what
 * Azurite alone sustains for the same reads and deletes (the message, and the claim-check blob).
 */
export async function benchProcess(): Promise<ProcessFigure[]> {
  const azurite = await startAzurite();
  try {
    const storage = createStorageClients(azurite.connectionString);
    const queueService = QueueServiceClient.fromConnectionString(azurite.connectionString);
    await ensureStorageResources(storage);
    const handlers = new HandlerRegistry().on({ name: 'no-op', entity: '*', message: '*' }, () => undefined);
    const settings = readProcessSettings({});
    const processed: QueueFunction = async ({ body, message }) => {
      await processEnvelope(parseEnvelope(asFunctionInput(body)), { storage, handlers, settings, log: silentLog, deliveryCount: message.dequeueCount });
    };
    const azuriteAlone: QueueFunction = async ({ body }) => {
      const envelope = parseEnvelope(asFunctionInput(body));
      if ('blob' in envelope.body) {
        await getPayload(storage.payloads, envelope.body.blob);
        await deletePayload(storage.payloads, envelope.body.blob);
      }
    };
    const payloads = [
      { payload: 'docs sample (contact Update)', body: docsSampleBody(), events: 400 },
      { payload: 'CreateMultiple, 250 KB', body: Buffer.from(largeCreateMultiple(250 * 1024)), events: 60 },
    ];
    const figures: ProcessFigure[] = [];
    for (const { payload, body, events } of payloads) {
      const alone: number[] = [];
      const ours: number[] = [];
      for (let round = 0; round < 3; round++) {
        await prefill(storage, body, events);
        alone.push(await eventsPerSecond(queueService, storage, azuriteAlone, events));
        await prefill(storage, body, events);
        ours.push(await eventsPerSecond(queueService, storage, processed, events));
      }
      figures.push({ payload, events, azuriteAlonePerSecond: median(alone), processedPerSecond: median(ours), ratio: median(ours) / median(alone) });
    }
    return figures;
  } finally {
    await azurite.stop();
  }
}
