import type { Telemetry } from '../observability/telemetry';
import { type QueueBacklog, readQueueBacklog } from '../storage/backlog';
import type { StorageClients } from '../storage/clients';
import { failureStore } from './failures';

/** Is anything stuck: the main and poison queues, and the poisoned events waiting for a replay or a resolve. */
export interface Backlog {
  events: QueueBacklog;
  poison: QueueBacklog;
  /** Recorded poisoned events, neither replayed nor resolved. */
  failures: number;
}

export async function readBacklog(
  storage: Pick<StorageClients, 'eventsQueue' | 'poisonQueue' | 'failures' | 'payloads'>,
  now: Date = new Date(),
): Promise<Backlog> {
  const [events, poison, failures] = await Promise.all([
    readQueueBacklog(storage.eventsQueue, now),
    readQueueBacklog(storage.poisonQueue, now),
    failureStore(storage).countPoisoned(),
  ]);
  return { events, poison, failures };
}

/** The backlog as metrics, per queue: what the "oldest queued event" alert fires on. */
export function emitBacklog(backlog: Backlog, telemetry: Telemetry): void {
  for (const queue of [backlog.events, backlog.poison]) {
    telemetry.metric('queueAgeSeconds', queue.oldestAgeSeconds, { queue: queue.queue });
    telemetry.metric('queueLength', queue.length, { queue: queue.queue });
  }
  telemetry.metric('failuresPending', backlog.failures);
}

export function formatBacklog(backlog: Backlog): string {
  const line = (label: string, queue: QueueBacklog) =>
    `  ${label.padEnd(8)}${queue.queue}: ${queue.length} message(s)${queue.oldestInsertedOn ? `, oldest visible enqueued ${queue.oldestInsertedOn} (${formatAge(queue.oldestAgeSeconds)} ago)` : ''}`;
  return [
    'Backlog:',
    line('queue', backlog.events),
    line('poison', backlog.poison),
    `  failures: ${backlog.failures} poisoned event(s) waiting for replay or resolve${backlog.failures > 0 ? ' (dataverse-webhooks failures)' : ''}`,
    '',
  ].join('\n');
}

function formatAge(seconds: number): string {
  if (seconds < 120) return `${seconds} s`;
  if (seconds < 2 * 3600) return `${Math.floor(seconds / 60)} min`;
  if (seconds < 2 * 86400) return `${Math.floor(seconds / 3600)} h`;
  return `${Math.floor(seconds / 86400)} d`;
}
