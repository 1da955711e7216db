import { app, type InvocationContext } from '@azure/functions';
import { invocationLog } from '../observability/log';
import { logIdentifiers, parseEnvelope } from '../pipeline/envelope';
import { loadEvent } from '../pipeline/loadEvent';
import { getStorageClients } from '../storage/clients';
import { EVENTS_QUEUE } from '../storage/names';

export async function processDataverseEvent(message: unknown, context: InvocationContext): Promise<void> {
  const envelope = parseEnvelope(message);
  const log = invocationLog(context);
  const event = await loadEvent(envelope, getStorageClients().payloads);
  log.info('Event rebuilt', { ...logIdentifiers(envelope), stage: event.stage, truncated: event.truncated });
}

app.storageQueue('processDataverseEvent', {
  queueName: EVENTS_QUEUE,
  connection: 'AzureWebJobsStorage',
  handler: processDataverseEvent,
});
