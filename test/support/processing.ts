import type { RecordReader } from '../../src/dataverseApi';
import { drainQueueWithHost, type DrainResult } from '../../src/local/queueHost';
import { silentLog, type EventLog } from '../../src/observability/log';
import type { Telemetry } from '../../src/observability/telemetry';
import { acceptWebhook } from '../../src/pipeline/accept';
import { parseEnvelope } from '../../src/pipeline/envelope';
import { recordPoisonedMessage } from '../../src/pipeline/failures';
import type { HandlerRegistry } from '../../src/pipeline/handlerRegistry';
import { processEnvelope, type ProcessOutcome } from '../../src/pipeline/process';
import { readIngestSettings, readProcessSettings, type ProcessSettings } from '../../src/settings';
import type { StorageClients } from '../../src/storage/clients';
import { dataverseHeaders, FUNCTION_URL } from './requests';

/** Host settings for tests: host.json's behaviour, with no wait between attempts. */
export const TEST_HOST = { maxDequeueCount: 3, visibilityTimeoutSeconds: 0, batchSize: 16, idleMs: 300 };

/** POSTs a body through the real ingest path onto the test's queue; returns the eventId. */
export async function ingest(storage: StorageClients, body: Buffer | string, headers: Record<string, string> = dataverseHeaders(), telemetry?: Telemetry): Promise<string> {
  const result = await acceptWebhook(
    { method: 'POST', url: `${FUNCTION_URL}?code=k`, headers: new Headers(headers), body: async () => Buffer.from(body) },
    { settings: readIngestSettings({}), storage, log: silentLog, ...(telemetry ? { telemetry } : {}) },
  );
  if (result.response.status !== 202) throw new Error(`ingest answered ${result.response.status}: ${JSON.stringify(result.response.jsonBody)}`);
  return result.eventId;
}

export interface Processor {
  outcomes: ProcessOutcome[];
  /** Runs the queue like the host until it stays empty; poisoned messages are recorded like the poison function does. */
  drain(): Promise<DrainResult>;
}

export interface ProcessorOptions {
  settings?: Partial<ProcessSettings>;
  log?: EventLog;
  recordReader?: RecordReader | null;
  telemetry?: Telemetry;
}

export function processor(storage: StorageClients, handlers: HandlerRegistry, options: ProcessorOptions = {}): Processor {
  const outcomes: ProcessOutcome[] = [];
  const full = { ...readProcessSettings({}), ...options.settings };
  const { log = silentLog, recordReader = null, telemetry } = options;
  return {
    outcomes,
    async drain() {
      const result = await drainQueueWithHost(
        storage.eventsQueue,
        storage.poisonQueue,
        async (message, deliveryCount) => {
          outcomes.push(await processEnvelope(parseEnvelope(message), { storage, handlers, settings: full, log, deliveryCount, recordReader, ...(telemetry ? { telemetry } : {}) }));
        },
        TEST_HOST,
      );
      await drainQueueWithHost(storage.poisonQueue, storage.poisonQueue, async (message) => {
        await recordPoisonedMessage(message, { storage, poisonQueue: storage.poisonQueue, log, ...(telemetry ? { telemetry } : {}) });
      }, { ...TEST_HOST, maxDequeueCount: 100 });
      return result;
    },
  };
}
