import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
import { createStorageClients, ensureStorageResources, type StorageClients } from '../../src/storage/clients';
import { decodeQueueMessage } from '../../src/storage/queueMessages';

/**
 * Storage clients on the shared test Azurite with names of their own (queue, containers, tables),
 * so each test sees only its own messages and blobs.
 */
export async function isolatedStorage(options: { connectionString?: string; create?: boolean } = {}): Promise<StorageClients> {
  const suffix = randomBytes(4).toString('hex');
  const clients = createStorageClients(options.connectionString ?? inject('azuriteConnectionString'), {
    retry: { maxTries: 2, tryTimeoutMs: 5_000 },
    names: {
      eventsQueue: `events-${suffix}`,
      payloadContainer: `payloads-${suffix}`,
      rejectedContainer: `rejected-${suffix}`,
      ledgerTable: `Ledger${suffix}`,
      failuresTable: `Failures${suffix}`,
    },
  });
  if (options.create !== false) await ensureStorageResources(clients);
  return clients;
}

/** Every message now on a queue, decoded from the base64 the host expects, and removed. */
export async function drainQueue(queue: StorageClients['eventsQueue']): Promise<unknown[]> {
  const messages: unknown[] = [];
  for (;;) {
    const received = await queue.receiveMessages({ numberOfMessages: 32, visibilityTimeout: 30 });
    if (received.receivedMessageItems.length === 0) return messages;
    for (const item of received.receivedMessageItems) {
      messages.push(decodeQueueMessage(item.messageText));
      await queue.deleteMessage(item.messageId, item.popReceipt);
    }
  }
}

export async function blobNames(container: StorageClients['payloads']): Promise<string[]> {
  const names: string[] = [];
  for await (const blob of container.listBlobsFlat()) names.push(blob.name);
  return names;
}
