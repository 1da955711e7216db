import { app, type InvocationContext } from '@azure/functions';
import { handlers } from '../handlers';
import { invocationLog } from '../observability/log';
import { parseEnvelope } from '../pipeline/envelope';
import { processEnvelope } from '../pipeline/process';
import { processSettings } from '../settings';
import { getStorageClients } from '../storage/clients';
import { EVENTS_QUEUE } from '../storage/names';

export async function processDataverseEvent(message: unknown, context: InvocationContext): Promise<void> {
  await processEnvelope(parseEnvelope(message), {
    storage: getStorageClients(),
    handlers,
    settings: processSettings(),
    log: invocationLog(context),
    deliveryCount: Number(context.triggerMetadata?.dequeueCount ?? 1),
  });
}

// A throw here makes the host retry the message (host.json extensions.queues) and finally move it
// to the poison queue, which recordPoisonedEvent reads.
app.storageQueue('processDataverseEvent', {
  queueName: EVENTS_QUEUE,
  connection: 'AzureWebJobsStorage',
  handler: processDataverseEvent,
});
