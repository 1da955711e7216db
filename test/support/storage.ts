import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
import { createStorageClients, type StorageClientOptions, type StorageClients } from '../../src/storage/clients';
import { isMissingResource } from '../../src/storage/errors';
import { decodeQueueMessage } from '../../src/storage/queueMessages';

/**
 * Storage clients on the shared test Azurite with names of their own (queue, containers, tables),
 * so each test sees only its own messages and blobs. None of them exists yet: the account is, for
 * the test, as empty as a fresh one, and the app must create what it uses, as under the real host.
 */
export async function isolatedStorage(
  options: { connectionString?: string; retry?: StorageClientOptions['retry'] } = {},
): Promise<StorageClients> {
  const suffix = randomBytes(4).toString('hex');
  const clients = createStorageClients(options.connectionString ?? inject('azuriteConnectionString'), {
    retry: options.retry ?? { maxTries: 2, tryTimeoutMs: 5_000 },
    names: {
      eventsQueue: `events-${suffix}`,
      payloadContainer: `payloads-${suffix}`,
      rejectedContainer: `rejected-${suffix}`,
      ledgerTable: `Ledger${suffix}`,
      failuresTable: `Failures${suffix}`,
      reconcileTable: `Reconcile${suffix}`,
      reconcileQueue: `reconcile-${suffix}`,
    },
  });
  return clients;
}

/** Every message now on a queue (none when the queue does not exist), decoded from the base64 the host expects, and removed. */
export async function drainQueue(queue: StorageClients['eventsQueue']): Promise<unknown[]> {
  const messages: unknown[] = [];
  for (;;) {
    let received;
    try {
      received = await queue.receiveMessages({ numberOfMessages: 32, visibilityTimeout: 30 });
    } catch (error) {
      if (isMissingResource('queue', error)) return messages;
      throw error;
    }
    if (received.receivedMessageItems.length === 0) return messages;
    for (const item of received.receivedMessageItems) {
      messages.push(decodeQueueMessage(item.messageText));
      await queue.deleteMessage(item.messageId, item.popReceipt);
    }
  }
}

/** The blobs in a container (none when the container does not exist). */
export async function blobNames(container: StorageClients['payloads']): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const blob of container.listBlobsFlat()) names.push(blob.name);
  } catch (error) {
    if (!isMissingResource('container', error)) throw error;
  }
  return names;
}
