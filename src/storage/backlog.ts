import type { QueueClient } from '@azure/storage-queue';
import { isMissingResource } from './errors';

/** What waits on one queue. */
export interface QueueBacklog {
  queue: string;
  /** The service's approximate count (visible and invisible messages alike). */
  length: number;
  /** When the oldest message still visible was first enqueued; null when none is visible. */
  oldestInsertedOn: string | null;
  /** Seconds since then; 0 when none is visible. */
  oldestAgeSeconds: number;
}

/**
 * Reads a queue's backlog: its approximate length and, by peeking, the oldest visible message (a
 * queue returns the oldest first; a message being processed or waiting out a back-off is invisible
 * and not seen, and a retried message keeps its first insertion time). A queue that does not exist
 * is empty: the app creates its queues on first use, so a fresh account has none.
 */
export async function readQueueBacklog(queue: QueueClient, now: Date = new Date()): Promise<QueueBacklog> {
  try {
    const [properties, peeked] = await Promise.all([queue.getProperties(), queue.peekMessages({ numberOfMessages: 1 })]);
    const insertedOn = peeked.peekedMessageItems[0]?.insertedOn ?? null;
    return {
      queue: queue.name,
      length: properties.approximateMessagesCount ?? 0,
      oldestInsertedOn: insertedOn ? insertedOn.toISOString() : null,
      oldestAgeSeconds: insertedOn ? Math.max(0, Math.floor((now.getTime() - insertedOn.getTime()) / 1000)) : 0,
    };
  } catch (error) {
    if (!isMissingResource('queue', error)) throw error;
    return { queue: queue.name, length: 0, oldestInsertedOn: null, oldestAgeSeconds: 0 };
  }
}
