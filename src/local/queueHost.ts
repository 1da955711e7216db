import type { QueueClient } from '@azure/storage-queue';
import { isMissingResource } from '../storage/errors';
import { decodeQueueMessage } from '../storage/queueMessages';

/**
 * What the Functions host does for a queue trigger, for the tests and the benchmark that run
 * without it: receive a batch, decode each message as host.json's base64 encoding says, call the
 * function with the dequeue count, delete the message when the function returns; when it throws,
 * make the message visible again after the visibility timeout, and once it has been dequeued
 * maxDequeueCount times, move it to `<queue>-poison`.
 */
export interface QueueHostOptions {
  maxDequeueCount: number;
  visibilityTimeoutSeconds: number;
  batchSize: number;
}

export type QueueFunction = (message: unknown, dequeueCount: number) => Promise<void>;

export interface DrainResult {
  succeeded: number;
  failed: number;
  poisoned: number;
}

export async function runQueueOnce(queue: QueueClient, poison: QueueClient, run: QueueFunction, options: QueueHostOptions): Promise<DrainResult & { received: number }> {
  const result = { received: 0, succeeded: 0, failed: 0, poisoned: 0 };
  let batch;
  try {
    batch = await queue.receiveMessages({ numberOfMessages: options.batchSize, visibilityTimeout: 60 });
  } catch (error) {
    // QueueListener.ExecuteAsync: a queue that does not exist (yet) is polled again later, not an error.
    if (isMissingResource('queue', error)) return result;
    throw error;
  }
  result.received = batch.receivedMessageItems.length;
  await Promise.all(
    batch.receivedMessageItems.map(async (item) => {
      try {
        await run(decodeQueueMessage(item.messageText), item.dequeueCount);
        await queue.deleteMessage(item.messageId, item.popReceipt);
        result.succeeded++;
      } catch {
        result.failed++;
        if (item.dequeueCount >= options.maxDequeueCount) {
          // QueueProcessor.CopyMessageToPoisonQueueAsync: AddMessageAndCreateIfNotExistsAsync, default time-to-live.
          await poison.createIfNotExists();
          await poison.sendMessage(item.messageText);
          await queue.deleteMessage(item.messageId, item.popReceipt);
          result.poisoned++;
        } else {
          await queue.updateMessage(item.messageId, item.popReceipt, undefined, options.visibilityTimeoutSeconds);
        }
      }
    }),
  );
  return result;
}

/** Runs batches until the queue has stayed empty for `idleMs` (messages may be invisible for a while). */
export async function drainQueueWithHost(queue: QueueClient, poison: QueueClient, run: QueueFunction, options: QueueHostOptions & { idleMs: number }): Promise<DrainResult> {
  const total = { succeeded: 0, failed: 0, poisoned: 0 };
  let idleSince = Date.now();
  while (Date.now() - idleSince < options.idleMs) {
    const once = await runQueueOnce(queue, poison, run, options);
    total.succeeded += once.succeeded;
    total.failed += once.failed;
    total.poisoned += once.poisoned;
    if (once.received > 0) idleSince = Date.now();
    else await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return total;
}
