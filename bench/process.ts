import { randomUUID } from 'node:crypto';
import diagnostics from 'node:diagnostics_channel';
import type { ClientRequest } from 'node:http';
import path from 'node:path';
import { TableClient } from '@azure/data-tables';
import { QueueServiceClient } from '@azure/storage-queue';
import { startAzurite } from '../devhost/azurite';
import { readHostJson } from '../devhost/hostJson';
import { asFunctionInput, type QueueFunction, QueueListener } from '../devhost/queueListener';
import { largeCreateMultiple } from '../src/dataverse/samplePayloads';
import { webhookUrl } from '../src/functionNames';
import { on } from '../src/handlerApi';
import { registryOf } from '../src/handlerApi/load';
import { silentLog } from '../src/observability/log';
import { acceptWebhook } from '../src/pipeline/accept';
import { parseEnvelope } from '../src/pipeline/envelope';
import { processEnvelope } from '../src/pipeline/process';
import { readIngestSettings, readProcessSettings } from '../src/settings';
import { deletePayload, getPayload } from '../src/storage/claimCheck';
import { createStorageClients, ensureStorageResources, type StorageClients } from '../src/storage/clients';
import { docsSampleBody } from './parse';
import { median } from './stats';

/** Storage requests per event, by service (and the queue's receives apart: one per batch). */
export interface RoundTrips {
  queue: number;
  receive: number;
  table: number;
  blob: number;
  total: number;
}

export interface ProcessFigure {
  payload: string;
  events: number;
  azuriteAlonePerSecond: number;
  processedPerSecond: number;
  /** processed / Azurite alone: the goal is ≥ 0.7. */
  ratio: number;
  /** Round trips per event, Azurite alone and processed. */
  aloneRoundTrips: RoundTrips;
  processedRoundTrips: RoundTrips;
  /**
   * What effects-once cannot do without, measured alone at the same concurrency: its ledger round
   * trips per event (a claim before the effect, the done-mark after), and how long they take per event.
   */
  ledgerRoundTrips: number;
  ledgerMsPerEvent: number;
  /** The best ratio processing could reach: Azurite alone's time per event plus the ledger's, against Azurite alone's. */
  floorRatio: number;
  /** ratio / floorRatio: how close processing is to that floor (1 = at it). */
  ofFloor: number;
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
        // A busy machine can make a write miss the ack's deadline: post again, as Dataverse would.
        for (let attempt = 1; ; attempt++) {
          const result = await acceptWebhook(
            { method: 'POST', url: webhookUrl('http://localhost'), headers, body: async () => copy },
            { settings, storage, log: silentLog },
          );
          if (result.response.status === 202) break;
          if (result.response.status !== 503 || attempt === 5) throw new Error(`prefill answered ${result.response.status}`);
        }
      }),
    );
  }
}

/**
 * Counts the HTTP requests this process sends while `work` runs, by Azurite port (every storage SDK
 * call goes through node:http; Node publishes each request on this channel).
 */
async function counted<T>(
  ports: { queue: number; table: number; blob: number },
  work: () => Promise<T>,
): Promise<{ value: T; requests: Omit<RoundTrips, 'total'> }> {
  const requests = { queue: 0, receive: 0, table: 0, blob: 0 };
  const onRequest = (message: unknown) => {
    const request = (message as { request: ClientRequest }).request;
    const port = Number(String(request.getHeader('host') ?? '').split(':')[1]);
    if (port === ports.queue) {
      if (request.method === 'GET' && request.path.includes('/messages')) requests.receive++;
      else requests.queue++;
    } else if (port === ports.table) requests.table++;
    else if (port === ports.blob) requests.blob++;
  };
  diagnostics.subscribe('http.client.request.start', onRequest);
  try {
    return { value: await work(), requests };
  } finally {
    diagnostics.unsubscribe('http.client.request.start', onRequest);
  }
}

function perEvent(requests: Omit<RoundTrips, 'total'>, events: number): RoundTrips {
  const each = {
    queue: requests.queue / events,
    receive: requests.receive / events,
    table: requests.table / events,
    blob: requests.blob / events,
  };
  return { ...each, total: each.queue + each.receive + each.table + each.blob };
}

/**
 * The ledger's part of effects-once alone: per event, the unit's claim (an insert) and its
 * done-mark with the event's settlement, as the processor writes them, at the listener's
 * concurrency (batchSize + newBatchThreshold). Milliseconds per event.
 */
async function ledgerAlone(table: TableClient, events: number, concurrency: number): Promise<number> {
  let next = 0;
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < events) {
        next++;
        const partitionKey = randomUUID().replaceAll('-', '');
        await table.createEntity({ partitionKey, rowKey: 'no-op', state: 'processing', attempts: 1, leaseUntil: Date.now() + 30_000 });
        await table.upsertEntity({ partitionKey, rowKey: 'no-op', state: 'done', attempts: 1, leaseUntil: 0 }, 'Replace');
      }
    }),
  );
  return Number(process.hrtime.bigint() - started) / 1e6 / events;
}

async function eventsPerSecond(
  queueService: QueueServiceClient,
  storage: StorageClients,
  run: QueueFunction,
  count: number,
): Promise<number> {
  const started = process.hrtime.bigint();
  // The host's own listener rules: batches of batchSize, refilled at newBatchThreshold.
  const listener = new QueueListener({
    queueService,
    queueName: storage.names.eventsQueue,
    queues: { ...QUEUES, maxPollingIntervalMs: 100 },
    run,
  });
  listener.start();
  try {
    while (listener.counts.succeeded + listener.counts.failed < count) await new Promise((resolve) => setTimeout(resolve, 5));
  } finally {
    await listener.stop();
  }
  if (listener.counts.failed > 0) throw new Error('a benchmark event failed');
  // A prefill post answered 503 whose write landed anyway leaves a message more: not for the next run.
  await storage.eventsQueue.clearMessages();
  return count / (Number(process.hrtime.bigint() - started) / 1e9);
}

/**
 * Events per second from a pre-filled queue through dedupe to a no-op handler, against what
 * Azurite alone sustains for the same reads and deletes (the message, and the claim-check blob),
 * with the storage round trips per event of each (counted at the HTTP layer) and the floor that
 * effects-once sets: its two ledger writes per event (the claim before the effect, the done-mark
 * after), measured alone at the same concurrency. `floorRatio` is the best ratio processing could
 * have if it did nothing but Azurite alone's work and those two writes; `ofFloor` how close it is.
 */
export async function benchProcess(): Promise<ProcessFigure[]> {
  const azurite = await startAzurite();
  try {
    const storage = createStorageClients(azurite.connectionString);
    const queueService = QueueServiceClient.fromConnectionString(azurite.connectionString);
    await ensureStorageResources(storage);
    const handlers = registryOf([on({ name: 'no-op', entity: '*', message: '*' }, () => undefined)]);
    const settings = readProcessSettings({});
    const processed: QueueFunction = async ({ body, message }) => {
      await processEnvelope(parseEnvelope(asFunctionInput(body)), {
        storage,
        handlers,
        settings,
        log: silentLog,
        deliveryCount: message.dequeueCount,
      });
    };
    const azuriteAlone: QueueFunction = async ({ body }) => {
      const envelope = parseEnvelope(asFunctionInput(body));
      if ('blob' in envelope.body) {
        await getPayload(storage.payloads, envelope.body.blob);
        await deletePayload(storage.payloads, envelope.body.blob);
      }
    };
    const floorTable = TableClient.fromConnectionString(azurite.connectionString, 'BenchLedgerFloor', { allowInsecureConnection: true });
    await floorTable.createTable();
    const payloads = [
      { payload: 'docs sample (contact Update)', body: docsSampleBody(), events: 400 },
      { payload: 'CreateMultiple, 250 KB', body: Buffer.from(largeCreateMultiple(250 * 1024)), events: 60 },
    ];
    const figures: ProcessFigure[] = [];
    for (const { payload, body, events } of payloads) {
      const alone: number[] = [];
      const ours: number[] = [];
      const ledger: number[] = [];
      let aloneRequests = { queue: 0, receive: 0, table: 0, blob: 0 };
      let processedRequests = aloneRequests;
      for (let round = 0; round < 3; round++) {
        await prefill(storage, body, events);
        const a = await counted(azurite.ports, () => eventsPerSecond(queueService, storage, azuriteAlone, events));
        alone.push(a.value);
        aloneRequests = a.requests;
        await prefill(storage, body, events);
        const o = await counted(azurite.ports, () => eventsPerSecond(queueService, storage, processed, events));
        ours.push(o.value);
        processedRequests = o.requests;
        ledger.push(await ledgerAlone(floorTable, events, QUEUES.batchSize + QUEUES.newBatchThreshold));
      }
      const ratio = median(ours) / median(alone);
      const aloneMsPerEvent = 1000 / median(alone);
      const ledgerMsPerEvent = median(ledger);
      const floorRatio = aloneMsPerEvent / (aloneMsPerEvent + ledgerMsPerEvent);
      figures.push({
        payload,
        events,
        azuriteAlonePerSecond: median(alone),
        processedPerSecond: median(ours),
        ratio,
        aloneRoundTrips: perEvent(aloneRequests, events),
        processedRoundTrips: perEvent(processedRequests, events),
        ledgerRoundTrips: 2,
        ledgerMsPerEvent,
        floorRatio,
        ofFloor: ratio / floorRatio,
      });
    }
    return figures;
  } finally {
    await azurite.stop();
  }
}

/** The processing figures as `npm run bench` prints them: the ratio with its goal, the round trips, and the floor. */
export function processLines(f: ProcessFigure): string[] {
  const trips = (r: RoundTrips) =>
    `${r.total.toFixed(2)} (queue ${r.queue.toFixed(2)} + receive ${r.receive.toFixed(2)}, table ${r.table.toFixed(2)}, blob ${r.blob.toFixed(2)})`;
  return [
    `  ${f.payload.padEnd(32)} ${String(f.events).padStart(4)} events  Azurite alone ${f.azuriteAlonePerSecond.toFixed(0).padStart(5)}/s  processed ${f.processedPerSecond.toFixed(0).padStart(5)}/s  ratio ${f.ratio.toFixed(2)}× (goal ≥ 0.70×)`,
    `    round trips per event: Azurite alone ${trips(f.aloneRoundTrips)}, processed ${trips(f.processedRoundTrips)}`,
    `    floor: + ${f.ledgerRoundTrips} ledger writes (claim, done-mark) = ${f.ledgerMsPerEvent.toFixed(2)} ms/event alone vs ${(1000 / f.azuriteAlonePerSecond).toFixed(2)} ms/event Azurite alone → best ratio ${f.floorRatio.toFixed(2)}×; processed is at ${(f.ofFloor * 100).toFixed(0)} % of it`,
  ];
}
