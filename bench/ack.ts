import { randomUUID } from 'node:crypto';
import { startAzurite } from '../devhost/azurite';
import { largeCreateMultiple } from '../src/dataverse/samplePayloads';
import { webhookUrl } from '../src/functionNames';
import { allow, decide } from '../src/handlerApi';
import { registryOf } from '../src/handlerApi/load';
import { silentLog } from '../src/observability/log';
import { acceptWebhook, type IncomingWebhook, MAX_INLINE_BODY_BYTES } from '../src/pipeline/accept';
import { readIngestSettings } from '../src/settings';
import { putPayload } from '../src/storage/claimCheck';
import { createStorageClients, ensureStorageResources, type StorageClients } from '../src/storage/clients';
import { encodeQueueMessage, fitsInQueueMessage } from '../src/storage/queueMessages';
import { compare, docsSampleBody } from './parse';
import { millis, percentile } from './stats';

export interface AckFigure {
  payload: string;
  bytes: number;
  bareP50: number;
  bareP99: number;
  ackP50: number;
  ackP99: number;
  p50Ratio: number;
  /**
   * The least a receiver that validates the body and wraps it in an envelope adds to the bare
   * handler: JSON.parse of the body and JSON.stringify of its text (the escaping an envelope
   * needs), timed in this process, over the bare p50: the ratio no ack path can beat on this machine.
   */
  floorP50Ratio: number;
}

/**
 * Microseconds of CPU that parsing the body and escaping it into an envelope take beyond base64
 * alone. A claim-checked body goes to Blob storage as it is, as the bare handler's does: parsing
 * is all that is added then.
 */
function unavoidableMicros(body: Buffer): number {
  const inline = body.length <= MAX_INLINE_BODY_BYTES;
  const bare = () => (inline ? Buffer.from(body).toString('base64') : null);
  const wrapped = () => {
    const text = body.toString('utf8');
    JSON.parse(text);
    return inline ? Buffer.from(JSON.stringify({ body: { inline: text } }), 'utf8').toString('base64') : null;
  };
  return compare(bare, wrapped, inline ? 500 : 20).extraNanos / 1000;
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
      const request: IncomingWebhook = { method: 'POST', url: webhookUrl('http://localhost'), headers, body: async () => body };
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
        floorP50Ratio: (percentile(bare, 50) + unavoidableMicros(body) / 1000) / percentile(bare, 50),
      });
    }
    return figures;
  } finally {
    await azurite.stop();
  }
}

export interface DecisionAckFigure {
  payload: string;
  rounds: number;
  plainP50: number;
  plainP99: number;
  inlineP50: number;
  inlineP99: number;
  p50Ratio: number;
  p99Ratio: number;
}

/**
 * The ack path of a synchronous step with an allowing no-op inline handler, against the same path
 * with no inline handler (request → checks → parse → enqueue → 202), alternating in one run on the
 * same Azurite. The difference is what deciding inline costs on its own: running the handler (a
 * no-op here) and nothing else, since an allow writes nothing but the enqueue (decide.ts). Every
 * request is a new delivery (its own OperationId, RequestId and CorrelationId), as every save is.
 */
export async function benchDecisionAck(rounds = 300): Promise<DecisionAckFigure> {
  const azurite = await startAzurite();
  try {
    const storage = createStorageClients(azurite.connectionString);
    await ensureStorageResources(storage);
    const settings = readIngestSettings({});
    const sample = JSON.parse(docsSampleBody().toString('utf8')) as Record<string, unknown>;
    // The docs sample as a synchronous PreOperation step sends it.
    const delivery = () =>
      Buffer.from(
        JSON.stringify({ ...sample, Stage: 20, Mode: 0, OperationId: randomUUID(), RequestId: randomUUID(), CorrelationId: randomUUID() }),
      );
    const registry = registryOf([decide({ name: 'no-op', entity: 'contact', message: 'Update', stage: 'PreOperation' }, () => allow())]);
    const post = async (body: Buffer, inline: boolean) => {
      const request: IncomingWebhook = { method: 'POST', url: webhookUrl('http://localhost'), headers, body: async () => body };
      const result = await acceptWebhook(request, {
        settings,
        storage,
        log: silentLog,
        ...(inline ? { decisions: { handlers: registry, ledger: storage.ledger } } : {}),
      });
      if (result.response.status !== 202) throw new Error(`ack path answered ${result.response.status}`);
      if (inline && result.response.jsonBody?.['decisions'] === undefined) throw new Error('the inline handler did not decide');
    };
    for (let i = 0; i < 20; i++) {
      await post(delivery(), false);
      await post(delivery(), true);
    }
    const plain: number[] = [];
    const inline: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const [first, second] = [delivery(), delivery()];
      plain.push(await millis(() => post(first, false)));
      inline.push(await millis(() => post(second, true)));
    }
    await storage.eventsQueue.clearMessages();
    return {
      payload: 'docs sample, sync PreOperation',
      rounds,
      plainP50: percentile(plain, 50),
      plainP99: percentile(plain, 99),
      inlineP50: percentile(inline, 50),
      inlineP99: percentile(inline, 99),
      p50Ratio: percentile(inline, 50) / percentile(plain, 50),
      p99Ratio: percentile(inline, 99) / percentile(plain, 99),
    };
  } finally {
    await azurite.stop();
  }
}
