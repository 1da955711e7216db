import type { DataverseEvent, Entity } from '../dataverse';
import { recordVersion, targetEntity, targetRecords } from '../dataverse/accessors';
import type { DataverseRow, RecordReader } from '../dataverseApi/recordReader';
import { INVOCATION_BUDGET_MS, MAX_DEQUEUE_COUNT } from '../hostConfig';
import { describeError, type EventLog, type LogProperties, logWith } from '../observability/log';
import { NO_TELEMETRY, type Telemetry } from '../observability/telemetry';
import { type ProcessSettings, SettingsError } from '../settings';
import { deletePayload } from '../storage/claimCheck';
import type { StorageClients } from '../storage/clients';
import { storageErrorCode, storageStatus, wasRefused } from '../storage/errors';
import { sendQueueMessage } from '../storage/queueMessages';
import { Deadline, DeadlineExceededError } from './deadline';
import { deliveryKey, unitIdempotencyKey } from './deliveryKey';
import { type EventEnvelope, logIdentifiers, telemetryIdentifiers } from './envelope';
import { handlerContext } from './handlerContext';
import type { HandlerRegistry, RegisteredHandler } from './handlerRegistry';
import { type Completion, type EventSettlement, type HeldClaim, type HolderWrite, Ledger, SERVICE_CLOCK_MARGIN_MS } from './ledger/ledger';
import { UnitLease } from './ledger/unitLease';
import { loadEvent } from './loadEvent';
import { claimChange, reconciledHandlers } from './reconcile/claimChange';

/**
 * Processing one queued event: at least once in, effects once out.
 *
 * The queue may deliver a message twice and Dataverse may POST an event twice; both copies share a
 * delivery key. Each handler (each record, for per-record handlers) claims its unit of work in the
 * ledger before its effect and marks it done after, so a copy finds it done and skips it. A handler
 * that throws (or outlives its time limit) leaves its unit `failed` and the error goes back to the
 * Functions host, which retries the message after the visibility timeout and, after
 * maxDequeueCount attempts, moves it to the poison queue. Nothing is acknowledged that has not been
 * handled, skipped on purpose, or recorded.
 *
 * A unit's lease is short and renewed from its claim until its done-mark lands (unitLease.ts). A
 * copy that finds a unit held puts itself back on the queue until the lease ends, plus a random
 * part; one that finds the unit's last run dead (its lease ran out) records that run as failed and
 * comes back after a random wait, so the events that died in one worker are not run side by side
 * again with whatever killed it. The ledger counts a unit's runs whichever message carried them:
 * once a unit has failed or died maxDequeueCount times, the event goes to the poison queue as the
 * host would send it. Every write of a held unit is conditioned on holding it (ledger.ts): a
 * processor that finds its unit taken over (it stalled past its lease) writes nothing more there,
 * and puts a copy of the message back rather than failing it: the event is not what went wrong.
 *
 * Every invocation returns to the host by itself before host.json's functionTimeout: past it the
 * host restarts the whole Node worker, and every other invocation in flight there loses an attempt.
 */

export interface ProcessDependencies {
  storage: Pick<StorageClients, 'payloads' | 'ledger' | 'eventsQueue' | 'poisonQueue'>;
  handlers: HandlerRegistry;
  /** The app's settings, or why they are invalid: the event then fails (and is retried) with that reason. */
  settings: ProcessSettings | SettingsError;
  log: EventLog;
  /** The queue's dequeue count for this message (1 on first delivery). */
  deliveryCount: number;
  /** host.json maxDequeueCount as the host applies it (hostConfig.maxDequeueCount); default host.json's. */
  maxDequeueCount?: number;
  /** For the random part of a deferred copy's wait; default Math.random. */
  random?: () => number;
  /** Re-reads records of truncated events for handlers that ask; null when DATAVERSE_URL is not set. */
  recordReader?: RecordReader | null;
  telemetry?: Telemetry;
  now?: () => number;
  /** How long the whole invocation may take; default host.json functionTimeout less a margin. */
  invocationBudgetMs?: number;
  /** How retries of a ledger write wait; tests make it instant. */
  sleep?: (ms: number) => Promise<void>;
}

export type UnitResult = 'done' | 'duplicate' | 'stale';

export interface ProcessOutcome {
  eventId: string;
  status: EventSettlement | 'duplicate' | 'deferred' | 'poisoned';
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
    // What the host logs for a failed invocation: the message names the handler's own line
    // (describeError); the engine's frames would only hide it, once per attempt.
    this.stack = `${this.name}: ${this.message}`;
  }
}

export class HandlerTimeoutError extends Error {
  override readonly name = 'HandlerTimeoutError';
  constructor(readonly limitMs: number) {
    super(`did not finish within its time limit of ${limitMs} ms (its ctx.signal was aborted)`);
  }
}

export async function processEnvelope(envelope: EventEnvelope, deps: ProcessDependencies): Promise<ProcessOutcome> {
  const now = deps.now ?? Date.now;
  const budgetEnd = now() + (deps.invocationBudgetMs ?? INVOCATION_BUDGET_MS);
  const ledger = new Ledger(deps.storage.ledger, now);
  const key = deliveryKey(envelope.summary);
  const ids: LogProperties = { ...logIdentifiers(envelope), deliveryCount: deps.deliveryCount, replays: envelope.replays };
  const telemetry = deps.telemetry ?? NO_TELEMETRY;
  const telemetryIds = telemetryIdentifiers(envelope.eventId, envelope.summary);
  const queueWaitMs = Math.max(0, now() - Date.parse(envelope.receivedAt));
  telemetry.metric('queueWaitMs', queueWaitMs, { table: envelope.summary.primaryEntityName, message: envelope.summary.messageName });
  const outcome = (
    status: ProcessOutcome['status'],
    units: ProcessOutcome['units'] = [],
    truncated: boolean | null = null,
  ): ProcessOutcome => {
    if (status === 'duplicate') telemetry.event('duplicate', telemetryIds);
    else if (status !== 'deferred' && status !== 'poisoned')
      telemetry.event('processed', { ...telemetryIds, status }, { queueWaitMs, units: units.length });
    for (const unit of units) if (unit.result === 'stale') telemetry.event('stale', { ...telemetryIds, reason: unit.handler });
    return { eventId: envelope.eventId, status, units, truncated };
  };

  /** An event that fails outside any handler says why in the ledger, for its poison record (best effort). */
  const failEvent = async (error: unknown): Promise<never> => {
    try {
      await ledger.failEvent(key, envelope.eventId, deps.deliveryCount, describeError(error));
    } catch (ledgerError) {
      deps.log.warn('Could not note why the event failed', { ...ids, error: describeError(ledgerError) });
    }
    deps.log.error('Event failed before its handlers ran; the message will be retried', { ...ids, error: describeError(error) });
    throw error;
  };

  if (deps.settings instanceof SettingsError) return failEvent(deps.settings);
  const settings = deps.settings;
  // Once a unit's effect happened, marking it done is worth waiting for: given up, the message
  // would be retried and the effect repeated. It is conditioned on holding the unit, whose lease is
  // renewed meanwhile, so it is tried for as long as the invocation's budget allows.
  const persist = <T>(what: string, write: () => Promise<T>) => persistWrite(what, write, budgetEnd, { ...deps, now }, ids);

  // The last unit's completion is written with the event's settlement, in one transaction.
  let lastCompletion: { completion: Completion; lease: UnitLease; handler: string } | undefined;

  /**
   * This processor no longer holds a unit: another one took it over after its lease ran out here
   * (the worker stalled, or lost storage for longer than the lease). Nothing more is written there;
   * a copy of the message comes back after a lease, to find the unit done or its new run dead.
   */
  const lostUnit = async (handler: string, effect: 'stopped' | 'happened'): Promise<ProcessOutcome> => {
    const retryAfterMs = settings.leaseMs + SERVICE_CLOCK_MARGIN_MS + Math.floor((deps.random ?? Math.random)() * settings.deferJitterMs);
    const message =
      effect === 'happened'
        ? "A unit's effect happened, and another processor took the unit over before it was marked done: the effect may run again"
        : 'Another processor took the unit over while its handler ran here (its lease ran out); nothing more is written for it here';
    deps.log[effect === 'happened' ? 'error' : 'warn'](message, { ...ids, handler, retryAfterMs });
    telemetry.event('leaseLost', { ...telemetryIds, handler, reason: effect === 'happened' ? 'effect-happened' : 'handler-stopped' });
    await defer(envelope, retryAfterMs, deps);
    return outcome('deferred', [], null);
  };

  if (envelope.summary.depth > settings.maxDepth) {
    deps.log.warn('Event deeper than PROCESSOR_MAX_DEPTH: recorded, not handled', {
      ...ids,
      depth: envelope.summary.depth,
      maxDepth: settings.maxDepth,
    });
    return settle('depth-exceeded', [], null);
  }

  let event: DataverseEvent;
  try {
    event = await loadEvent(envelope, deps.storage.payloads);
  } catch (error) {
    // A copy of a settled claim-check event finds its blob deleted: that is a duplicate, not a fault.
    if (isBlobNotFound(error) && (await ledger.eventSettlement(key))) {
      deps.log.info('Event already settled; this copy is a duplicate', ids);
      return outcome('duplicate');
    }
    return failEvent(error);
  }
  // A reconciled event runs only the reconciling handlers it was found for (reconcile/fanOut.ts).
  const matched = envelope.reconciled ? reconciledHandlers(deps.handlers, envelope.reconciled.handlers, event) : deps.handlers.match(event);
  if (matched.length === 0) {
    deps.log.info('No handler for this event', ids);
    return settle('unhandled', [], event.truncated);
  }

  const work = matched.flatMap((handler) => {
    const perRecord = handler.perRecord ? targetRecords(event) : [];
    const records: Array<Entity | null> = perRecord.length > 0 ? perRecord : [targetEntity(event)];
    return records.map((record) => ({
      handler,
      record,
      unit: handler.perRecord && record ? `${handler.name}~${record.id.toLowerCase()}` : handler.name,
    }));
  });
  const units: ProcessOutcome['units'] = [];
  for (const [index, { handler, record, unit }] of work.entries()) {
    const claim = await ledger.claimUnit(key, unit, envelope.eventId, settings.leaseMs, {
      maxAttempts: deps.maxDequeueCount ?? MAX_DEQUEUE_COUNT,
      replays: envelope.replays,
      deadJitterMs: settings.deferJitterMs,
      ...(deps.random ? { random: deps.random } : {}),
    });
    if (claim.kind === 'busy') {
      const retryAfterMs = claim.retryAfterMs + (claim.jittered ? 0 : Math.floor((deps.random ?? Math.random)() * settings.deferJitterMs));
      await defer(envelope, retryAfterMs, deps);
      deps.log.info('Event is being processed elsewhere, or its last run died; a copy will look again later', {
        ...ids,
        handler: handler.name,
        retryAfterMs,
      });
      return outcome('deferred', units, event.truncated);
    }
    if (claim.kind === 'exhausted') {
      // As the host does after the last failed attempt (QueueProcessor.HandlePoisonMessageAsync):
      // the message goes to the poison queue, which recordPoisonedEvent reads; this one is acknowledged.
      await sendQueueMessage(deps.storage.poisonQueue, envelope);
      deps.log.error('A handler failed or died on every attempt; the event was moved to the poison queue', {
        ...ids,
        handler: handler.name,
        attempts: claim.attempts,
        error: claim.error,
      });
      return outcome('poisoned', units, event.truncated);
    }
    const recordId = record?.id ?? null;
    if (claim.kind === 'already-done') {
      units.push({ handler: handler.name, recordId, result: 'duplicate' });
      continue;
    }
    const log = logWith(deps.log, { ...ids, handler: handler.name, recordId });
    const limitMs = Math.min(settings.handlerTimeoutMs, budgetEnd - now());
    const ran = await runUnit(
      {
        event,
        envelope,
        handler,
        record,
        log,
        ledger,
        claim,
        limitMs,
        idempotencyKey: unitIdempotencyKey(key, unit),
      },
      { ...deps, now },
    );
    if (ran.result === 'lost') return lostUnit(handler.name, 'stopped');
    units.push({ handler: handler.name, recordId, result: ran.result });
    const completion: Completion = { claim, state: ran.result === 'done' ? 'done' : 'stale', eventId: envelope.eventId };
    if (index === work.length - 1) {
      lastCompletion = { completion, lease: ran.lease, handler: handler.name };
      continue;
    }
    let marked: HolderWrite;
    try {
      marked = await persist('a unit done', () => ledger.complete(completion));
    } finally {
      ran.lease.stop();
    }
    if (marked === 'lost') return lostUnit(handler.name, 'happened');
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
    const claimCheck = 'blob' in envelope.body;
    const last = lastCompletion;
    let settled: HolderWrite;
    try {
      settled = await persist(last ? 'the last unit done and the event settled' : 'the event settled', () =>
        ledger.settleEvent(key, envelope.eventId, settlement, last?.completion, { claimCheck }),
      );
    } finally {
      last?.lease.stop();
    }
    // The unit's new holder settles the event, and needs its claim-check blob.
    if (settled === 'lost' && last) return lostUnit(last.handler, 'happened');
    await releaseClaimCheck(envelope, deps);
    return outcome(status, settledUnits, truncated);
  }
}

/**
 * A ledger write retried with back-off (¼ s doubling to 5 s, on top of the SDK's own retries) until
 * it succeeds, storage refuses it outright, or `until` would pass.
 */
async function persistWrite<T>(
  what: string,
  write: () => Promise<T>,
  until: number,
  deps: Pick<ProcessDependencies, 'log' | 'sleep'> & { now: () => number },
  ids: LogProperties,
): Promise<T> {
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  let delayMs = 250;
  for (let attempt = 1; ; attempt++) {
    try {
      const written = await write();
      if (attempt > 1) deps.log.info(`Recorded ${what} after ${attempt} tries`, ids);
      return written;
    } catch (error) {
      if (wasRefused(error) || deps.now() + delayMs >= until) throw error;
      deps.log.warn(`Could not record ${what}; trying again`, { ...ids, attempt, retryInMs: delayMs, error: describeError(error) });
      await sleep(delayMs);
      delayMs = Math.min(delayMs * 2, 5_000);
    }
  }
}

interface UnitWork {
  event: DataverseEvent;
  envelope: EventEnvelope;
  handler: RegisteredHandler;
  record: Entity | null;
  log: EventLog;
  ledger: Ledger;
  claim: HeldClaim;
  /** How long the handler (with its re-read) may take. */
  limitMs: number;
  idempotencyKey: string;
}

/** A unit run: its result, with the lease that still holds it until its done-mark; or `lost` to another processor. */
type UnitRun = { result: 'done' | 'stale' | 'duplicate'; lease: UnitLease } | { result: 'lost' };

/**
 * Runs one handler on one record (or the event), unless a newer version was already applied. The
 * handler's `ctx.signal` aborts at its time limit, or when its unit's lease could not be renewed;
 * a handler that ignores it is no longer waited for: its unit fails then, and the message is
 * retried like after any failure. A unit taken over meanwhile by another processor (this one's
 * lease ran out: the worker stalled) is `lost`: nothing is written for it, and nothing is thrown.
 * Otherwise the lease is returned still running: the caller stops it once the done-mark landed.
 */
async function runUnit(
  unit: UnitWork,
  deps: Pick<ProcessDependencies, 'deliveryCount' | 'recordReader' | 'storage'> & { now: () => number },
): Promise<UnitRun> {
  const { event, envelope, handler, record, log, ledger, claim } = unit;
  const lease = new UnitLease(claim, ledger, {
    onRenewalFailed: (error) => log.warn("Could not renew the unit's lease; trying again", { error: describeError(error) }),
  });
  const deadline = new Deadline(Math.max(0, unit.limitMs));
  let ran = false;
  try {
    const version = handler.skipStale ? recordVersion(event, record) : null;
    const address = { table: record?.logicalName ?? event.primaryEntityName, id: record?.id ?? event.primaryEntityId };
    if (version && (await ledger.isStale(address, handler.name, version))) {
      log.info('Skipped: a newer version of the record was already applied', { versionKind: version.kind });
      lease.handlerReturned();
      ran = true;
      return { result: 'stale', lease };
    }
    // A reconciling handler's delivered and reconciled copies of one change run it once (reconcile/claimChange.ts).
    const reconciled = envelope.reconciled !== undefined;
    const change = await claimChange({
      handler,
      event,
      record,
      reconciled,
      owner: unit.idempotencyKey,
      eventId: envelope.eventId,
      ledger: deps.storage.ledger,
    });
    if (change !== 'run') {
      log.info('Skipped: the handler has taken this change on already (delivered and reconciled), or a newer one', { change });
      lease.handlerReturned();
      ran = true;
      return { result: change, lease };
    }
    const signal = AbortSignal.any([deadline.signal, lease.signal]);
    try {
      await Promise.race([
        deadline.bound(
          (async () => {
            const rereadRecord = await reread(event, handler, record, deps.recordReader ?? null);
            const context = handlerContext({
              event,
              eventId: envelope.eventId,
              record,
              rereadRecord,
              log,
              // The truth about attempts: the ledger counts this unit's runs whichever message carried them.
              deliveryCount: Math.max(deps.deliveryCount, claim.attempts),
              reconciled,
              signal,
              idempotencyKey: unit.idempotencyKey,
            });
            await handler.handle(event, context);
          })(),
        ),
        lease.lost,
      ]);
    } catch (thrown) {
      lease.stop();
      const error = thrown instanceof DeadlineExceededError ? new HandlerTimeoutError(unit.limitMs) : thrown;
      let recorded: HolderWrite | 'unknown' = lease.takenOver ? 'lost' : 'unknown';
      if (recorded !== 'lost') {
        try {
          recorded = await ledger.fail(claim, envelope.eventId, describeError(error));
        } catch (ledgerError) {
          // The unit stays held until its lease ends; the retry then takes it over.
          log.warn('Could not record the handler failure', { error: describeError(ledgerError) });
        }
      }
      if (recorded === 'lost') return { result: 'lost' };
      log.error('Handler failed; the message will be retried', { attempt: claim.attempts, error: describeError(error) });
      throw new HandlerFailedError(handler.name, envelope.eventId, error);
    }
    // Its effect happened: the done-mark comes next (and finds out if the unit was taken over meanwhile).
    lease.handlerReturned();
    if (version) await ledger.advanceWatermark(address, handler.name, version, envelope.eventId);
    ran = true;
    return { result: 'done', lease };
  } finally {
    if (!ran) lease.stop();
    deadline.clear();
  }
}

/** The claim-check blob is gone (not its container: that would be a misconfiguration). */
function isBlobNotFound(error: unknown): boolean {
  return storageStatus(error) === 404 && storageErrorCode(error) === 'BlobNotFound';
}

export class RereadUnavailableError extends Error {
  override readonly name = 'RereadUnavailableError';
}

/** The record read again from Dataverse, for a truncated event and a handler that asked. */
async function reread(
  event: DataverseEvent,
  handler: RegisteredHandler,
  record: Entity | null,
  reader: RecordReader | null,
): Promise<DataverseRow | null> {
  if (!event.truncated || handler.rereadColumns === null) return null;
  if (!reader) throw new RereadUnavailableError(`handler ${handler.name} re-reads truncated events, and DATAVERSE_URL is not set`);
  return reader.retrieve(record?.logicalName ?? event.primaryEntityName, record?.id ?? event.primaryEntityId, handler.rereadColumns);
}

/** Once an event is settled its claim-check blob has served; a failure to delete is left to the lifecycle rule. */
async function releaseClaimCheck(envelope: EventEnvelope, deps: ProcessDependencies): Promise<void> {
  if (!('blob' in envelope.body)) return;
  try {
    await deletePayload(deps.storage.payloads, envelope.body.blob);
  } catch (error) {
    deps.log.warn('Could not delete a claim-check blob; the lifecycle rule will', {
      eventId: envelope.eventId,
      error: describeError(error),
    });
  }
}

/**
 * Puts a copy of the message back, invisible until the other processor's lease could have run out
 * (or the unit's retry time), and lets this one be acknowledged. Unlike throwing, this spends none
 * of the message's attempts; the ledger counts the unit's runs instead.
 */
async function defer(envelope: EventEnvelope, retryAfterMs: number, deps: ProcessDependencies): Promise<void> {
  const seconds = Math.max(1, Math.ceil(retryAfterMs / 1000));
  await sendQueueMessage(deps.storage.eventsQueue, envelope, { visibilityTimeoutSeconds: seconds });
}
