import { randomUUID } from 'node:crypto';
import { describeError, type EventLog } from '../observability/log';
import type { Telemetry } from '../observability/telemetry';
import type { StorageClients } from '../storage/clients';
import { FailureStore, type FailureRecord } from '../storage/failureStore';
import { Ledger } from '../storage/ledger';
import { encodeQueueMessage } from '../storage/queueMessages';
import { deliveryKey } from './deliveryKey';
import { InvalidEnvelopeError, parseEnvelope, telemetryIdentifiers, type EventEnvelope } from './envelope';

type FailureStorage = Pick<StorageClients, 'failures' | 'payloads' | 'ledger' | 'eventsQueue'>;

export function failureStore(storage: Pick<StorageClients, 'failures' | 'payloads'>): FailureStore {
  return new FailureStore(storage.failures, storage.payloads);
}

/**
 * Records a message the Functions host moved to the poison queue, so that it is listed by
 * `failures` and can be replayed. The claim-check blob, if any, is kept for the replay.
 */
export async function recordPoisoned(
  message: unknown,
  deps: { storage: FailureStorage; log: EventLog; telemetry?: Telemetry; now?: () => Date },
): Promise<FailureRecord> {
  const now = (deps.now ?? (() => new Date()))();
  const store = failureStore(deps.storage);
  let envelope: EventEnvelope;
  try {
    envelope = parseEnvelope(message);
  } catch (error) {
    if (!(error instanceof InvalidEnvelopeError)) throw error;
    // Not ours to rebuild; keep it so nobody loses what it was.
    const failure = unreadableFailure(now, error.message);
    await store.record(failure, typeof message === 'string' ? message : JSON.stringify(message) ?? '');
    deps.log.error('A poisoned queue message is not an event envelope; kept as it came', { eventId: failure.eventId });
    deps.telemetry?.event('poisoned', { eventId: failure.eventId, reason: 'not-an-envelope' });
    return failure;
  }

  const failed = await new Ledger(deps.storage.ledger).failures(deliveryKey(envelope.summary));
  const { summary } = envelope;
  const failure: FailureRecord = {
    eventId: envelope.eventId,
    poisonedAt: now.toISOString(),
    table: summary.primaryEntityName,
    message: summary.messageName,
    recordId: summary.primaryEntityId,
    correlationId: summary.correlationId,
    operationId: summary.operationId ?? '',
    organization: summary.organizationName ?? summary.organizationId,
    attempts: Math.max(0, ...failed.map((unit) => unit.attempts)),
    replays: envelope.replays,
    error: failed.length > 0 ? failed.map((unit) => `${unit.unit}: ${unit.error}`).join(' | ').slice(0, 4000) : 'the message failed before any handler ran',
    state: 'poisoned',
  };
  await store.record(failure, JSON.stringify(envelope));
  deps.log.error('Event poisoned: recorded for replay', { eventId: failure.eventId, table: failure.table, message: failure.message, attempts: failure.attempts });
  // The failed handlers' names: their errors may quote customer data, so they stay in the table.
  deps.telemetry?.event('poisoned', { ...telemetryIdentifiers(envelope.eventId, summary), reason: failed.map((unit) => unit.unit).join(',') || 'before-any-handler' }, { attempts: failure.attempts });
  return failure;
}

function unreadableFailure(now: Date, reason: string): FailureRecord {
  return {
    eventId: `unreadable-${randomUUID()}`,
    poisonedAt: now.toISOString(),
    table: '',
    message: '',
    recordId: '',
    correlationId: '',
    operationId: '',
    organization: '',
    attempts: 0,
    replays: 0,
    error: reason,
    state: 'poisoned',
  };
}

export interface ReplayResult {
  eventId: string;
  replayed: boolean;
  reason?: string;
}

/** Puts poisoned events back on the main queue as they were, counting the replay. */
export async function replayFailures(eventIds: string[] | 'all', deps: { storage: FailureStorage; telemetry?: Telemetry; now?: () => Date }): Promise<ReplayResult[]> {
  const store = failureStore(deps.storage);
  const now = deps.now ?? (() => new Date());
  const failures = eventIds === 'all' ? await store.list() : await Promise.all(eventIds.map(async (id) => (await store.get(id)) ?? id));
  const results: ReplayResult[] = [];
  for (const failure of failures) {
    if (typeof failure === 'string') {
      results.push({ eventId: failure, replayed: false, reason: 'no such poisoned event' });
      continue;
    }
    if (failure.state !== 'poisoned') {
      results.push({ eventId: failure.eventId, replayed: false, reason: `already ${failure.state}` });
      continue;
    }
    try {
      const envelope = parseEnvelope(await store.message(failure.eventId));
      await deps.storage.eventsQueue.sendMessage(encodeQueueMessage({ ...envelope, replays: envelope.replays + 1 }));
      await store.markReplayed(failure, now());
      deps.telemetry?.event('replayed', { ...telemetryIdentifiers(envelope.eventId, envelope.summary) }, { replays: envelope.replays + 1 });
      results.push({ eventId: failure.eventId, replayed: true });
    } catch (error) {
      results.push({ eventId: failure.eventId, replayed: false, reason: describeError(error) });
    }
  }
  return results;
}
