import { app, type InvocationContext } from '@azure/functions';
import { FUNCTION_NAMES } from '../functionNames';
import { invocationLog } from '../observability/log';
import { telemetry } from '../observability/telemetry';
import { recordPoisonedMessage } from '../pipeline/failures';
import { getStorageClients } from '../storage/clients';
import { POISON_QUEUE, STORAGE_CONNECTION } from '../storage/names';

export async function recordPoisonedEvent(message: unknown, context: InvocationContext): Promise<void> {
  const storage = getStorageClients();
  const messageId = context.triggerMetadata?.id;
  await recordPoisonedMessage(
    message,
    { storage, poisonQueue: storage.poisonQueue, log: invocationLog(context), telemetry: telemetry() },
    typeof messageId === 'string' ? { messageId } : {},
  );
}

// The host gives this queue no poison queue of its own: see recordPoisonedMessage for what
// happens to a message that cannot be recorded.
app.storageQueue(FUNCTION_NAMES.recordPoisonedEvent, {
  queueName: POISON_QUEUE,
  connection: STORAGE_CONNECTION,
  handler: recordPoisonedEvent,
});
