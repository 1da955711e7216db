import { app, type InvocationContext } from '@azure/functions';
import { invocationLog } from '../observability/log';
import { telemetry } from '../observability/telemetry';
import { recordPoisoned } from '../pipeline/failures';
import { getStorageClients } from '../storage/clients';
import { POISON_QUEUE } from '../storage/names';

export async function recordPoisonedEvent(message: unknown, context: InvocationContext): Promise<void> {
  await recordPoisoned(message, { storage: getStorageClients(), log: invocationLog(context), telemetry: telemetry() });
}

app.storageQueue('recordPoisonedEvent', {
  queueName: POISON_QUEUE,
  connection: 'AzureWebJobsStorage',
  handler: recordPoisonedEvent,
});
