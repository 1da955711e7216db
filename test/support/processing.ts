import path from 'node:path';
import { type Pipeline, QueueServiceClient } from '@azure/storage-queue';
import { type QueuesOptions, readHostJson } from '../../devhost/hostJson';
import { asFunctionInput, type DrainResult, runUntilIdle } from '../../devhost/queueListener';
import type { RecordReader } from '../../src/dataverseApi';
import { type EventLog, silentLog } from '../../src/observability/log';
import type { Telemetry } from '../../src/observability/telemetry';
import { acceptWebhook } from '../../src/pipeline/accept';
import { type EventEnvelope, parseEnvelope } from '../../src/pipeline/envelope';
import { recordPoisonedMessage } from '../../src/pipeline/failures';
import type { HandlerRegistry } from '../../src/pipeline/handlerRegistry';
import { type ProcessOutcome, processEnvelope } from '../../src/pipeline/process';
import { type ProcessSettings, readIngestSettings, readProcessSettings } from '../../src/settings';
import type { StorageClients } from '../../src/storage/clients';
import { dataverseHeaders, FUNCTION_URL } from './requests';
import { drainQueue } from './storage';

/**
 * The app's host.json queue settings, with what tests change: 3 attempts, no wait between them,
 * and polls at most 200 ms apart, so that a retried message is seen again at once.
 */
export const TEST_QUEUES: QueuesOptions = {
  ...readHostJson(path.join(__dirname, '..', '..')).queues,
  maxDequeueCount: 3,
  visibilityTimeoutMs: 0,
  maxPollingIntervalMs: 200,
};
const IDLE_MS = 300;

/**
 * The account of the test's queues, with the same credentials and retry options: the listener
 * reaches a queue's poison queue through its account, as the host does.
 */
export function accountOf(queue: StorageClients['eventsQueue']): QueueServiceClient {
  const url = new URL(queue.url);
  url.pathname = url.pathname.replace(/\/[^/]+\/?$/, '');
  return new QueueServiceClient(url.toString(), (queue as unknown as { pipeline: Pipeline }).pipeline);
}

/** POSTs a body through the real ingest path onto the test's queue; returns the eventId. */
export async function ingest(
  storage: StorageClients,
  body: Buffer | string,
  headers: Record<string, string> = dataverseHeaders(),
  telemetry?: Telemetry,
): Promise<string> {
  const result = await acceptWebhook(
    { method: 'POST', url: `${FUNCTION_URL}?code=k`, headers: new Headers(headers), body: async () => Buffer.from(body) },
    { settings: readIngestSettings({}), storage, log: silentLog, ...(telemetry ? { telemetry } : {}) },
  );
  if (result.response.status !== 202)
    throw new Error(`ingest answered ${result.response.status}: ${JSON.stringify(result.response.jsonBody)}`);
  return result.eventId;
}

/** Ingests a body and takes its message back off the queue: the envelope a test then processes by hand. */
export async function queuedEnvelope(storage: StorageClients, body: Buffer | string): Promise<EventEnvelope> {
  await ingest(storage, body);
  const [message] = await drainQueue(storage.eventsQueue);
  return parseEnvelope(message);
}

export interface Processor {
  outcomes: ProcessOutcome[];
  /** Runs the queue with the host's listener until it stays empty; poisoned messages are recorded like the poison function does. */
  drain(): Promise<DrainResult>;
}

export interface ProcessorOptions {
  settings?: Partial<ProcessSettings>;
  log?: EventLog;
  recordReader?: RecordReader | null;
  telemetry?: Telemetry;
  /** host.json queue settings besides TEST_QUEUES' (e.g. `batchSize: 1` to run copies one after another). */
  queues?: Partial<QueuesOptions>;
}

export function processor(storage: StorageClients, handlers: HandlerRegistry, options: ProcessorOptions = {}): Processor {
  const outcomes: ProcessOutcome[] = [];
  const full = { ...readProcessSettings({}), ...options.settings };
  const { log = silentLog, recordReader = null, telemetry } = options;
  const queueService = accountOf(storage.eventsQueue);
  const queues = { ...TEST_QUEUES, ...options.queues };
  return {
    outcomes,
    async drain() {
      const result = await runUntilIdle({
        queueService,
        queueName: storage.names.eventsQueue,
        queues,
        idleMs: IDLE_MS,
        run: async ({ body, message }) => {
          const deps = {
            storage,
            handlers,
            settings: full,
            log,
            deliveryCount: message.dequeueCount,
            recordReader,
            ...(telemetry ? { telemetry } : {}),
          };
          outcomes.push(await processEnvelope(parseEnvelope(asFunctionInput(body)), deps));
        },
      });
      await runUntilIdle({
        queueService,
        queueName: storage.poisonQueue.name,
        queues: TEST_QUEUES,
        idleMs: IDLE_MS,
        run: async ({ body, message }) => {
          await recordPoisonedMessage(
            asFunctionInput(body),
            { storage, poisonQueue: storage.poisonQueue, log, ...(telemetry ? { telemetry } : {}) },
            { messageId: message.messageId },
          );
        },
      });
      return result;
    },
  };
}
