import { app, type InvocationContext } from '@azure/functions';
import { createRecordReader, getDataverseClient, type RecordReader } from '../dataverseApi';
import { FUNCTION_NAMES } from '../functionNames';
import { appHandlers, HandlerLoadError } from '../handlerApi/load';
import { handlerFiles } from '../handlers';
import { maxDequeueCount } from '../hostConfig';
import { invocationLog } from '../observability/log';
import { telemetry } from '../observability/telemetry';
import { parseEnvelope } from '../pipeline/envelope';
import { processEnvelope } from '../pipeline/process';
import { processSettings, SettingsError, settingsOrError } from '../settings';
import { getStorageClients } from '../storage/clients';
import { EVENTS_QUEUE, STORAGE_CONNECTION } from '../storage/names';

let recordReader: RecordReader | null | undefined;

/** One reader per worker, so the table metadata it caches is reused; its client is the worker's one. */
function processRecordReader(dataverseUrl: string | null): RecordReader | null {
  recordReader ??= dataverseUrl ? createRecordReader(getDataverseClient(dataverseUrl)) : null;
  return recordReader;
}

export async function processDataverseEvent(message: unknown, context: InvocationContext): Promise<void> {
  const handlers = appHandlers(handlerFiles);
  // Retried, then poisoned and listed by `failures`: fix the declaration, then `replay --all`.
  if (handlers instanceof HandlerLoadError) throw handlers;
  const settings = settingsOrError(processSettings);
  await processEnvelope(parseEnvelope(message), {
    storage: getStorageClients(),
    handlers,
    settings,
    log: invocationLog(context),
    deliveryCount: Number(context.triggerMetadata?.dequeueCount ?? 1),
    maxDequeueCount: maxDequeueCount(process.env),
    recordReader: settings instanceof SettingsError ? null : processRecordReader(settings.dataverseUrl),
    telemetry: telemetry(),
  });
}

// A throw here makes the host retry the message (host.json extensions.queues) and finally move it
// to the poison queue, which recordPoisonedEvent reads.
app.storageQueue(FUNCTION_NAMES.processEvent, {
  queueName: EVENTS_QUEUE,
  connection: STORAGE_CONNECTION,
  handler: processDataverseEvent,
});
