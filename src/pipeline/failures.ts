import { randomUUID } from 'node:crypto';
import type { QueueClient } from '@azure/storage-queue';
import { describeError, type EventLog } from '../observability/log';
import type { Telemetry } from '../observability/telemetry';
import type { StorageClients } from '../storage/clients';
import { isMissingResource } from '../storage/errors';
import { type FailureRecord, FailureStore, type KeptFailure, messageBlobName } from '../storage/failureStore';
import { decodeMessageText, QUEUE_MESSAGE_ENCODING, sendEncodedQueueMessage, sendQueueMessage } from '../storage/queueMessages';
import { deliveryKey } from './deliveryKey';
import { type EventEnvelope, InvalidEnvelopeError, parseEnvelope, telemetryIdentifiers } from './envelope';
import { Ledger, type UnitFailure } from './ledger/ledger';

type FailureStorage = Pick<StorageClients, 'failures' | 'payloads' | 'ledger' | 'eventsQueue'>;

export function failureStore(storage: Pick<StorageClients, 'failures' | 'payloads'>): FailureStore {
  return new FailureStore(storage.failures, storage.payloads);
}

export interface RecordDependencies {
  storage: FailureStorage;
  log: EventLog;
  telemetry?: Telemetry;
  now?: () => Date;
}

/** Where a poisoned message came from: its id in the poison queue names an unreadable one for good. */
export interface PoisonSource {
  messageId?: string;
}

/**
 * Records a message the Functions host moved to the poison queue, so that it is listed by
 * `failures` and can be replayed. The claim-check blob, if any, is kept for the replay. Recording
 * the same message twice gives one record: events are keyed by eventId, unreadable messages by
 * their poison-queue message id. A copy of a poisoned message that was already replayed (its
 * envelope counts no more replays than the record) is not recorded again: null.
 */
export async function recordPoisoned(message: unknown, deps: RecordDependencies, source: PoisonSource = {}): Promise<FailureRecord | null> {
  const now = (deps.now ?? (() => new Date()))();
  const store = failureStore(deps.storage);
  let envelope: EventEnvelope;
  try {
    envelope = parseEnvelope(message);
  } catch (error) {
    if (!(error instanceof InvalidEnvelopeError)) throw error;
    // Not ours to rebuild; keep it so nobody loses what it was.
    const failure = unreadableFailure(now, error.message, source.messageId);
    await store.record(failure, messageText(message));
    deps.log.error('A poisoned queue message is not an event envelope; kept as it came', { eventId: failure.eventId });
    deps.telemetry?.event('poisoned', { eventId: failure.eventId, reason: 'not-an-envelope' });
    return failure;
  }

  const previous = await store.get(envelope.eventId);
  if ((previous?.state === 'replayed' || previous?.state === 'resolved') && envelope.replays <= previous.replays) {
    deps.log.info(`A poisoned copy of an event already ${previous.state}; not recorded again`, {
      eventId: envelope.eventId,
      replays: envelope.replays,
    });
    return null;
  }

  const key = deliveryKey(envelope.summary);
  const failed = await new Ledger(deps.storage.ledger).failures(key);
  const failure = failureOf(envelope, key, failed, now);
  await store.record(failure, JSON.stringify(envelope));
  if ('blob' in envelope.body) await store.keepBody(envelope.eventId, envelope.body.blob.name);
  deps.log.error('Event poisoned: recorded for replay', {
    eventId: failure.eventId,
    table: failure.table,
    message: failure.message,
    attempts: failure.attempts,
  });
  // The failed handlers' names: their errors may quote customer data, so they stay in the table.
  deps.telemetry?.event(
    'poisoned',
    {
      ...telemetryIdentifiers(envelope.eventId, envelope.summary),
      reason: failed.map((unit) => unit.unit).join(',') || 'before-any-handler',
    },
    { attempts: failure.attempts },
  );
  return failure;
}

/** A poisoned event's record: what it is about, and each failed unit's attempts and error, from the ledger. */
function failureOf(envelope: EventEnvelope, key: string, failed: UnitFailure[], now: Date): FailureRecord {
  const { summary } = envelope;
  return {
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
    error:
      failed.length > 0
        ? failed
            .map((unit) => `${unit.unit}: ${unit.error}`)
            .join(' | ')
            .slice(0, 4000)
        : 'the message failed before any handler ran',
    state: 'poisoned',
    deliveryKey: key,
  };
}

/** The prefix of an unreadable message's id in `failures`. */
export const UNREADABLE_PREFIX = 'unreadable-';

function unreadableFailure(now: Date, reason: string, messageId: string | undefined): FailureRecord {
  return {
    eventId: `${UNREADABLE_PREFIX}${messageId ?? randomUUID()}`,
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

/** How long a poisoned message whose recording failed waits, as a fresh copy, before the next try. */
export const REQUEUE_DELAY_SECONDS = 300;

/** The queue message's body as the host wrote it: text as it is, anything the library parsed as JSON again. */
function messageText(message: unknown): string {
  return typeof message === 'string' ? message : (JSON.stringify(message) ?? '');
}

/**
 * What the poison queue's function does with each message. The poison queue has no poison queue
 * of its own (QueueListenerFactory.CreatePoisonQueueReference): a message whose recording keeps
 * failing is retried by the host only every 10 minutes (a failure is not released, so it waits out
 * its receive lease), skipped after maxDequeueCount deliveries, and left to expire 7 days after
 * the host copied it there, never recorded. So when recording fails, a fresh copy of the message
 * goes back on the poison queue (no expiry, a new dequeue count, a few minutes' delay) and this
 * delivery succeeds; only when even that fails is the error the host's to retry.
 */
export async function recordPoisonedMessage(
  message: unknown,
  deps: RecordDependencies & { poisonQueue: QueueClient; requeueDelaySeconds?: number },
  source: PoisonSource = {},
): Promise<'recorded' | 'requeued'> {
  try {
    await recordPoisoned(message, deps, source);
    return 'recorded';
  } catch (error) {
    const text = messageText(message);
    await sendEncodedQueueMessage(deps.poisonQueue, Buffer.from(text, 'utf8').toString(QUEUE_MESSAGE_ENCODING), {
      visibilityTimeoutSeconds: deps.requeueDelaySeconds ?? REQUEUE_DELAY_SECONDS,
    });
    deps.log.error('Could not record a poisoned message; a fresh copy waits on the poison queue for the next try', {
      error: describeError(error),
      ...source,
    });
    return 'requeued';
  }
}

export interface SweepResult {
  /** Messages found waiting in the poison queue and recorded now. */
  recorded: number;
  /** Messages the poison queue still holds that could not be read now (invisible: being recorded or retried). */
  invisible: number;
}

/**
 * Records every message waiting in the poison queue, as its function would, and removes it from
 * the queue once recorded: what `failures` and `replay` do first, so that a poisoned event the
 * function never recorded (it was not running, or recording failed) is listed, replayable and
 * kept past the 7 days after which the host's copy would expire. Messages the host holds at that
 * moment are invisible to anyone else; they are counted, not read.
 */
export async function sweepPoisonQueue(deps: RecordDependencies & { poisonQueue: QueueClient }): Promise<SweepResult> {
  const { poisonQueue } = deps;
  let recorded = 0;
  try {
    for (;;) {
      const batch = await poisonQueue.receiveMessages({ numberOfMessages: 32, visibilityTimeout: 60 });
      if (batch.receivedMessageItems.length === 0) break;
      for (const item of batch.receivedMessageItems) {
        try {
          // Decoded as the host decodes it; text that is not base64 is kept as it is.
          await recordPoisoned(decodeMessageText(item.messageText, QUEUE_MESSAGE_ENCODING) ?? item.messageText, deps, {
            messageId: item.messageId,
          });
        } catch (error) {
          // Back for the next try at once; the error says why.
          await poisonQueue.updateMessage(item.messageId, item.popReceipt, undefined, 0);
          throw error;
        }
        await poisonQueue.deleteMessage(item.messageId, item.popReceipt);
        recorded++;
      }
    }
    const properties = await poisonQueue.getProperties();
    return { recorded, invisible: properties.approximateMessagesCount ?? 0 };
  } catch (error) {
    // No poison queue yet: nothing was ever poisoned.
    if (isMissingResource('queue', error)) return { recorded, invisible: 0 };
    throw error;
  }
}

export interface ReplayResult {
  eventId: string;
  replayed: boolean;
  reason?: string;
  /** A replayed event whose record changed while it was replayed (poisoned again): left as it is, still listed. */
  note?: string;
}

/** Puts poisoned events back on the main queue as they were, counting the replay. */
export async function replayFailures(
  eventIds: string[] | 'all',
  deps: { storage: FailureStorage; telemetry?: Telemetry; now?: () => Date },
): Promise<ReplayResult[]> {
  const store = failureStore(deps.storage);
  const ids = eventIds === 'all' ? (await store.list()).map((failure) => failure.eventId) : eventIds;
  const results: ReplayResult[] = [];
  for (const eventId of ids) results.push(await replayOne(eventId, store, deps));
  return results;
}

/** One poisoned event back on the main queue: read with the ETags of its record and what was kept, sent, then marked. */
async function replayOne(
  eventId: string,
  store: FailureStore,
  deps: { storage: FailureStorage; telemetry?: Telemetry; now?: () => Date },
): Promise<ReplayResult> {
  let kept: KeptFailure | null;
  let envelope: EventEnvelope;
  try {
    kept = await store.kept(eventId);
    if (!kept) return { eventId, replayed: false, reason: 'no such poisoned event' };
    if (kept.failure.state !== 'poisoned' || kept.message === null)
      return { eventId, replayed: false, reason: `already ${kept.failure.state}` };
    envelope = parseEnvelope(kept.message);
  } catch (error) {
    const reason =
      error instanceof InvalidEnvelopeError
        ? `not an event envelope, so there is nothing to process again; it is kept as it came in ${deps.storage.payloads.containerName}/${messageBlobName(eventId)}`
        : describeError(error);
    return { eventId, replayed: false, reason };
  }
  try {
    if ('blob' in envelope.body) await store.restoreBody(envelope.eventId, envelope.body.blob.name);
    await sendQueueMessage(deps.storage.eventsQueue, { ...envelope, replays: envelope.replays + 1 });
    const marked = await store.markReplayed(kept, (deps.now ?? (() => new Date()))());
    deps.telemetry?.event('replayed', { ...telemetryIdentifiers(envelope.eventId, envelope.summary) }, { replays: envelope.replays + 1 });
    if (marked === 'changed') return { eventId, replayed: true, note: REPOISONED_NOTE };
    return { eventId, replayed: true };
  } catch (error) {
    return { eventId, replayed: false, reason: describeError(error) };
  }
}

/** Why a replayed event is still listed: its record was written again after the replay read it. */
export const REPOISONED_NOTE = 'its record was written again while it was replayed (poisoned again): kept as it is, and listed';

export interface ResolveResult {
  eventId: string;
  resolved: boolean;
  reason?: string;
}

/**
 * Marks poisoned events as needing no replay (their effect was made by hand, or was never wanted):
 * they leave `failures` and `replay`, and the retention timer removes their record, kept message
 * and ledger rows once the retention period has passed since.
 */
export async function resolveFailures(
  eventIds: string[],
  deps: { storage: Pick<StorageClients, 'failures' | 'payloads'>; now?: () => Date },
): Promise<ResolveResult[]> {
  const store = failureStore(deps.storage);
  const now = deps.now ?? (() => new Date());
  const results: ResolveResult[] = [];
  for (const eventId of eventIds) {
    const failure = await store.get(eventId);
    if (!failure) results.push({ eventId, resolved: false, reason: 'no such poisoned event' });
    else if (failure.state !== 'poisoned') results.push({ eventId, resolved: false, reason: `already ${failure.state}` });
    else {
      await store.markResolved(failure, now());
      results.push({ eventId, resolved: true });
    }
  }
  return results;
}
