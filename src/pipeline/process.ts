import { RestError } from '@azure/storage-blob';
import { attribute, changedAttributes, postImage, preImage, recordVersion, targetEntity, targetRecords } from '../dataverse/accessors';
import type { DataverseEvent, Entity } from '../dataverse';
import type { DataverseRow, RecordReader } from '../dataverseApi/recordReader';
import { describeError, logWith, type EventLog, type LogProperties } from '../observability/log';
import { NO_TELEMETRY, type Telemetry } from '../observability/telemetry';
import type { ProcessSettings } from '../settings';
import { deletePayload } from '../storage/claimCheck';
import type { StorageClients } from '../storage/clients';
import { Ledger, type Completion, type EventSettlement } from '../storage/ledger';
import { encodeQueueMessage } from '../storage/queueMessages';
import { deliveryKey } from './deliveryKey';
import { logIdentifiers, telemetryIdentifiers, type EventEnvelope } from './envelope';
import type { HandlerContext, HandlerRegistry, RegisteredHandler } from './handlerRegistry';
import { loadEvent } from './loadEvent';

/**
 * Processing one queued event: at least once in, effects once out.
 *
 * The queue may deliver a message twice and Dataverse may POST an event twice; both copies share a
 * delivery key. Each handler (each record, for per-record handlers) claims its unit of work in the
 * ledger before its effect and marks it done after, so a copy finds it done and skips it. A handler
 * that throws leaves its unit `failed` and the error goes back to the Functions host, which retries
 * the message after the visibility timeout and, after maxDequeueCount attempts, moves it to the
 * poison queue. Nothing is acknowledged that has not been handled, skipped on purpose, or recorded.
 */

export interface ProcessDependencies {
  storage: Pick<StorageClients, 'payloads' | 'ledger' | 'eventsQueue'>;
  handlers: HandlerRegistry;
  settings: ProcessSettings;
  log: EventLog;
  /** The queue's dequeue count for this message (1 on first delivery). */
  deliveryCount: number;
  /** Re-reads records of truncated events for handlers that ask; null when DATAVERSE_URL is not set. */
  recordReader?: RecordReader | null;
  telemetry?: Telemetry;
  now?: () => number;
}

export type UnitResult = 'done' | 'duplicate' | 'stale';

export interface ProcessOutcome {
  eventId: string;
  status: EventSettlement | 'duplicate' | 'deferred';
  units: Array<{ handler: string; recordId: string | null; result: UnitResult }>;
  truncated: boolean | null;
}

export class HandlerFailedError extends Error {
  override readonly name = 'HandlerFailedError';
  constructor(
    readonly handler: string,
    readonly eventId: string,
    cause: unknown,
  ) {
    super(`handler ${handler} failed for event ${eventId}: ${describeError(cause)}`, { cause });
  }
}

/** A copy of a message another processor is working on comes back after this long at the most. */
const MAX_DEFER_MS = 10_000;

export async function processEnvelope(envelope: EventEnvelope, deps: ProcessDependencies): Promise<ProcessOutcome> {
  const now = deps.now ?? Date.now;
  const ledger = new Ledger(deps.storage.ledger, now);
  const key = deliveryKey(envelope.summary);
  const ids: LogProperties = { ...logIdentifiers(envelope), deliveryCount: deps.deliveryCount, replays: envelope.replays };
  const telemetry = deps.telemetry ?? NO_TELEMETRY;
  const telemetryIds = telemetryIdentifiers(envelope.eventId, envelope.summary);
  const queueWaitMs = Math.max(0, now() - Date.parse(envelope.receivedAt));
  telemetry.metric('queueWaitMs', queueWaitMs, { table: envelope.summary.primaryEntityName, message: envelope.summary.messageName });
  const outcome = (status: ProcessOutcome['status'], units: ProcessOutcome['units'] = [], truncated: boolean | null = null): ProcessOutcome => {
    if (status === 'duplicate') telemetry.event('duplicate', telemetryIds);
    else if (status !== 'deferred') telemetry.event('processed', { ...telemetryIds, status }, { queueWaitMs, units: units.length });
    for (const unit of units) if (unit.result === 'stale') telemetry.event('stale', { ...telemetryIds, reason: unit.handler });
    return { eventId: envelope.eventId, status, units, truncated };
  };

  // The last unit's completion is written with the event's settlement, in one transaction.
  let lastCompletion: Completion | undefined;

  if (envelope.summary.depth > deps.settings.maxDepth) {
    deps.log.warn('Event deeper than PROCESSOR_MAX_DEPTH: recorded, not handled', { ...ids, depth: envelope.summary.depth, maxDepth: deps.settings.maxDepth });
    return settle('depth-exceeded', [], null);
  }

  let event: DataverseEvent;
  try {
    event = await loadEvent(envelope, deps.storage.payloads);
  } catch (error) {
    // A copy of a settled claim-check event finds its blob deleted: that is a duplicate, not a fault.
    if (!isNotFound(error) || !(await ledger.eventSettlement(key))) throw error;
    deps.log.info('Event already settled; this copy is a duplicate', ids);
    return outcome('duplicate');
  }
  const matched = deps.handlers.match(event);
  if (matched.length === 0) {
    deps.log.info('No handler for this event', ids);
    return settle('unhandled', [], event.truncated);
  }

  const work = matched.flatMap((handler) => {
    const perRecord = handler.perRecord ? targetRecords(event) : [];
    const records: Array<Entity | null> = perRecord.length > 0 ? perRecord : [targetEntity(event)];
    return records.map((record) => ({ handler, record, unit: handler.perRecord && record ? `${handler.name}~${record.id.toLowerCase()}` : handler.name }));
  });
  const units: ProcessOutcome['units'] = [];
  for (const [index, { handler, record, unit }] of work.entries()) {
    const claim = await ledger.claim(key, unit, envelope.eventId, deps.settings.leaseMs);
    if (claim.kind === 'busy') {
      await defer(envelope, claim.retryAfterMs, deps);
      deps.log.info('Event is being processed elsewhere; a copy will look again later', { ...ids, handler: handler.name, retryAfterMs: claim.retryAfterMs });
      return outcome('deferred', units, event.truncated);
    }
    const recordId = record?.id ?? null;
    if (claim.kind === 'already-done') {
      units.push({ handler: handler.name, recordId, result: 'duplicate' });
      continue;
    }
    const log = logWith(deps.log, { ...ids, handler: handler.name, recordId });
    const result = await runUnit(event, envelope, handler, record, log, ledger, claim, deps);
    units.push({ handler: handler.name, recordId, result });
    const completion: Completion = { claim, state: result, eventId: envelope.eventId };
    if (index === work.length - 1) lastCompletion = completion;
    else await ledger.complete(completion);
  }
  if (units.every((unit) => unit.result === 'duplicate')) {
    deps.log.info('Every handler had already run; this copy is a duplicate', ids);
    return settle('processed', units, event.truncated, 'duplicate');
  }
  deps.log.info('Event processed', { ...ids, units: units.length, truncated: event.truncated });
  return settle('processed', units, event.truncated);

  async function settle(
    settlement: EventSettlement,
    settledUnits: ProcessOutcome['units'],
    truncated: boolean | null,
    status: ProcessOutcome['status'] = settlement,
  ): Promise<ProcessOutcome> {
    await ledger.settleEvent(key, envelope.eventId, settlement, lastCompletion);
    await releaseClaimCheck(envelope, deps);
    return outcome(status, settledUnits, truncated);
  }
}

/** Runs one handler on one record (or the event), unless a newer version was already applied. */
async function runUnit(
  event: DataverseEvent,
  envelope: EventEnvelope,
  handler: RegisteredHandler,
  record: Entity | null,
  log: EventLog,
  ledger: Ledger,
  claim: Completion['claim'],
  deps: Pick<ProcessDependencies, 'deliveryCount' | 'recordReader'>,
): Promise<'done' | 'stale'> {
  const version = handler.skipStale ? recordVersion(event, record) : null;
  const address = { table: record?.logicalName ?? event.primaryEntityName, id: record?.id ?? event.primaryEntityId };
  if (version && (await ledger.isStale(address, handler.name, version))) {
    log.info('Skipped: a newer version of the record was already applied', { versionKind: version.kind });
    return 'stale';
  }
  try {
    const rereadRecord = await reread(event, handler, record, deps.recordReader ?? null);
    await handler.handle(event, handlerContext(event, envelope, record, rereadRecord, log, deps.deliveryCount));
  } catch (error) {
    await ledger.fail(claim, envelope.eventId, describeError(error));
    log.error('Handler failed; the message will be retried', { attempt: claim.attempts, error: describeError(error) });
    throw new HandlerFailedError(handler.name, envelope.eventId, error);
  }
  if (version) await ledger.advanceWatermark(address, handler.name, version, envelope.eventId);
  return 'done';
}

function isNotFound(error: unknown): boolean {
  return error instanceof RestError && error.statusCode === 404;
}

export class RereadUnavailableError extends Error {
  override readonly name = 'RereadUnavailableError';
}

/** The record read again from Dataverse, for a truncated event and a handler that asked. */
async function reread(event: DataverseEvent, handler: RegisteredHandler, record: Entity | null, reader: RecordReader | null): Promise<DataverseRow | null> {
  if (!event.truncated || handler.rereadColumns === null) return null;
  if (!reader) throw new RereadUnavailableError(`handler ${handler.name} re-reads truncated events, and DATAVERSE_URL is not set`);
  return reader.retrieve(record?.logicalName ?? event.primaryEntityName, record?.id ?? event.primaryEntityId, handler.rereadColumns);
}

function handlerContext(
  event: DataverseEvent,
  envelope: EventEnvelope,
  record: Entity | null,
  rereadRecord: DataverseRow | null,
  log: EventLog,
  deliveryCount: number,
): HandlerContext {
  return {
    eventId: envelope.eventId,
    deliveryCount,
    log,
    record,
    rereadRecord,
    changes: (alias) => changedAttributes(event, alias),
    attribute: (name) => attribute(event, name),
    preImage: (alias) => preImage(event, alias),
    postImage: (alias) => postImage(event, alias),
  };
}

/** Once an event is settled its claim-check blob has served; a failure to delete is left to the lifecycle rule. */
async function releaseClaimCheck(envelope: EventEnvelope, deps: ProcessDependencies): Promise<void> {
  if (!('blob' in envelope.body)) return;
  try {
    await deletePayload(deps.storage.payloads, envelope.body.blob);
  } catch (error) {
    deps.log.warn('Could not delete a claim-check blob; the lifecycle rule will', { eventId: envelope.eventId, error: describeError(error) });
  }
}

/**
 * Puts a copy of the message back, invisible until the other processor's lease could have run out,
 * and lets this one be acknowledged. Unlike throwing, this spends none of the message's attempts.
 */
async function defer(envelope: EventEnvelope, retryAfterMs: number, deps: ProcessDependencies): Promise<void> {
  const seconds = Math.max(1, Math.ceil(Math.min(retryAfterMs, MAX_DEFER_MS) / 1000));
  await deps.storage.eventsQueue.sendMessage(encodeQueueMessage(envelope), { visibilityTimeout: seconds });
}



