import { randomUUID } from 'node:crypto';
import { largeCreateMultiple } from '../src/dataverse/samplePayloads';
import { startAzurite } from '../src/local/azurite';
import { silentLog } from '../src/observability/log';
import { acceptWebhook, type IncomingWebhook } from '../src/pipeline/accept';
import { readIngestSettings } from '../src/settings';
import { putPayload } from '../src/storage/claimCheck';
import { createStorageClients, ensureStorageResources, type StorageClients } from '../src/storage/clients';
import { encodeQueueMessage, fitsInQueueMessage } from '../src/storage/queueMessages';
import { docsSampleBody } from './parse';

export interface AckFigure {
  payload: string;
  bytes: number;
  bareP50: number;
  bareP99: number;
  ackP50: number;
  ackP99: number;
  p50Ratio: number;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]!;
}

async function millis(work: () => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint();
  await work();
  return Number(process.hrtime.bigint() - start) / 1e6;
}

const headers = new Headers({
  'content-type': 'application/json',
  'x-ms-dynamics-organization': 'contoso.crm.dynamics.com',
  'x-ms-dynamics-entity-name': 'contact',
  'x-ms-dynamics-request-name': 'Update',
  'x-ms-correlation-request-id': randomUUID(),
});

/**
 * The bare handler: the same storage writes the app makes (a blob first when the body is too
 * large for a message), with no checks, no parsing and no envelope.
 */
async function bareEnqueue(storage: StorageClients, body: Buffer): Promise<void> {
  const inline = Buffer.from(body).toString('base64');
  if (fitsInQueueMessage(inline)) {
    await storage.eventsQueue.sendMessage(inline);
    return;
  }
  const reference = await putPayload(storage.payloads, `${randomUUID()}.json`, body);
  await storage.eventsQueue.sendMessage(encodeQueueMessage(reference));
}

/** The ack path: request in, checks, parse, envelope, enqueue (claim check when large), response. */
export async function benchAck(): Promise<AckFigure[]> {
  const azurite = await startAzurite();
  try {
    const storage = createStorageClients(azurite.connectionString);
    await ensureStorageResources(storage);
    const settings = readIngestSettings({});
    const payloads = [
      { payload: 'docs sample (contact Update)', body: docsSampleBody(), rounds: 400 },
      { payload: 'CreateMultiple, 250 KB', body: Buffer.from(largeCreateMultiple(250 * 1024)), rounds: 80 },
    ];
    const figures: AckFigure[] = [];
    for (const { payload, body, rounds } of payloads) {
      const request: IncomingWebhook = { method: 'POST', url: 'http://localhost/api/dataverse/webhook', headers, body: async () => body };
      const ack = async () => {
        const result = await acceptWebhook(request, { settings, storage, log: silentLog });
        if (result.response.status !== 202) throw new Error(`ack path answered ${result.response.status}`);
      };
      for (let i = 0; i < 20; i++) {
        await bareEnqueue(storage, body);
        await ack();
      }
      const bare: number[] = [];
      const acked: number[] = [];
      // Alternate, so whatever else the machine (and Azurite) is doing weighs on both alike.
      for (let i = 0; i < rounds; i++) {
        bare.push(await millis(() => bareEnqueue(storage, body)));
        acked.push(await millis(ack));
      }
      await storage.eventsQueue.clearMessages();
      figures.push({
        payload,
        bytes: body.length,
        bareP50: percentile(bare, 50),
        bareP99: percentile(bare, 99),
        ackP50: percentile(acked, 50),
        ackP99: percentile(acked, 99),
        p50Ratio: percentile(acked, 50) / percentile(bare, 50),
      });
    }
    return figures;
  } finally {
    await azurite.stop();
  }
}
