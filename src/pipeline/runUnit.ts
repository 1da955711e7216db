import type { TableClient } from '@azure/data-tables';
import type { DataverseEvent, Entity } from '../dataverse';
import { type RecordVersion, recordVersion } from '../dataverse/accessors';
import type { DataverseRow, RecordReader } from '../dataverseApi/recordReader';
import { describeError, type EventLog } from '../observability/log';
import { Deadline, DeadlineExceededError } from './deadline';
import type { EventEnvelope } from './envelope';
import { handlerContext } from './handlerContext';
import type { RegisteredHandler } from './handlerRegistry';
import type { HeldClaim, HolderWrite, Ledger } from './ledger/ledger';
import { UnitLease } from './ledger/unitLease';
import { claimChange } from './reconcile/claimChange';

/**
 * One unit of work of the queue path: one handler on one record (or the event), under the claim
 * process.ts took for it in the ledger. In order: skip it if a newer version of the record was
 * already applied or the change was taken on already; call the handler with its context, under its
 * time limit and its lease; record a failure, or advance the record's watermark after a success.
 */

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

export class RereadUnavailableError extends Error {
  override readonly name = 'RereadUnavailableError';
}

export interface UnitWork {
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
  /** The queue's dequeue count for this message (1 on first delivery). */
  deliveryCount: number;
  /** Re-reads records of truncated events for handlers that ask; null when DATAVERSE_URL is not set. */
  recordReader: RecordReader | null;
  /** The ledger's table, where a reconciling handler's changes are claimed (reconcile/claimChange.ts). */
  appliedChanges: TableClient;
}

/** A unit run: its result, with the lease that still holds it until its done-mark; or `lost` to another processor. */
export type UnitRun = { result: 'done' | 'stale' | 'duplicate'; lease: UnitLease } | { result: 'lost' };

/**
 * Runs one handler on one record (or the event), unless a newer version was already applied. The
 * handler's `ctx.signal` aborts at its time limit, or when its unit's lease could not be renewed;
 * a handler that ignores it is no longer waited for: its unit fails then, and the message is
 * retried like after any failure. A unit taken over meanwhile by another processor (this one's
 * lease ran out: the worker stalled) is `lost`: nothing is written for it, and nothing is thrown.
 * Otherwise the lease is returned still running: the caller stops it once the done-mark landed.
 */
export async function runUnit(unit: UnitWork): Promise<UnitRun> {
  const { event, envelope, handler, record, log, ledger, claim } = unit;
  const lease = new UnitLease(claim, ledger, {
    onRenewalFailed: (error) => log.warn("Could not renew the unit's lease; trying again", { error: describeError(error) }),
  });
  const deadline = new Deadline(Math.max(0, unit.limitMs));
  let ran = false;
  try {
    const version = handler.skipStale ? recordVersion(event, record) : null;
    const address = { table: record?.logicalName ?? event.primaryEntityName, id: record?.id ?? event.primaryEntityId };
    const skipped = await skipReason(unit, version, address);
    if (skipped) {
      lease.handlerReturned();
      ran = true;
      return { result: skipped, lease };
    }
    try {
      await callHandler(unit, lease, deadline);
    } catch (thrown) {
      return await failedUnit(unit, lease, thrown instanceof DeadlineExceededError ? new HandlerTimeoutError(unit.limitMs) : thrown);
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

/** Why the handler does not run for this unit, or null when it does. */
async function skipReason(
  unit: UnitWork,
  version: RecordVersion | null,
  address: { table: string; id: string },
): Promise<'stale' | 'duplicate' | null> {
  const { handler, log } = unit;
  if (version && (await unit.ledger.isStale(address, handler.name, version))) {
    log.info('Skipped: a newer version of the record was already applied', { versionKind: version.kind });
    return 'stale';
  }
  // A reconciling handler's delivered and reconciled copies of one change run it once (reconcile/claimChange.ts).
  const change = await claimChange({
    handler,
    event: unit.event,
    record: unit.record,
    reconciled: unit.envelope.reconciled !== undefined,
    owner: unit.idempotencyKey,
    eventId: unit.envelope.eventId,
    ledger: unit.appliedChanges,
  });
  if (change === 'run') return null;
  log.info('Skipped: the handler has taken this change on already (delivered and reconciled), or a newer one', { change });
  return change;
}

/** The handler, with its context, until it returns, its time limit passes, or its unit is taken over. */
async function callHandler(unit: UnitWork, lease: UnitLease, deadline: Deadline): Promise<void> {
  const { event, handler, record } = unit;
  const signal = AbortSignal.any([deadline.signal, lease.signal]);
  const call = async () => {
    const rereadRecord = await reread(event, handler, record, unit.recordReader);
    const context = handlerContext({
      event,
      eventId: unit.envelope.eventId,
      record,
      rereadRecord,
      log: unit.log,
      // The truth about attempts: the ledger counts this unit's runs whichever message carried them.
      deliveryCount: Math.max(unit.deliveryCount, unit.claim.attempts),
      reconciled: unit.envelope.reconciled !== undefined,
      signal,
      idempotencyKey: unit.idempotencyKey,
    });
    await handler.handle(event, context);
  };
  await Promise.race([deadline.bound(call()), lease.lost]);
}

/**
 * A handler that threw or ran past its limit: its unit is recorded failed and the message retried
 * (HandlerFailedError), unless the unit was taken over meanwhile (`lost`: nothing is written).
 */
async function failedUnit(unit: UnitWork, lease: UnitLease, error: unknown): Promise<UnitRun> {
  const { log, claim } = unit;
  lease.stop();
  let recorded: HolderWrite | 'unknown' = lease.takenOver ? 'lost' : 'unknown';
  if (recorded !== 'lost') {
    try {
      recorded = await unit.ledger.fail(claim, unit.envelope.eventId, describeError(error));
    } catch (ledgerError) {
      // The unit stays held until its lease ends; the retry then takes it over.
      log.warn('Could not record the handler failure', { error: describeError(ledgerError) });
    }
  }
  if (recorded === 'lost') return { result: 'lost' };
  log.error('Handler failed; the message will be retried', { attempt: claim.attempts, error: describeError(error) });
  throw new HandlerFailedError(unit.handler.name, unit.envelope.eventId, error);
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
