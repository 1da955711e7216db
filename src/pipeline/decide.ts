import type { TableClient } from '@azure/data-tables';
import { targetEntity } from '../dataverse/accessors';
import type { DataverseEvent } from '../dataverse';
import { describeError, logWith, type EventLog } from '../observability/log';
import { NO_TELEMETRY, type Telemetry, type TelemetryProperties } from '../observability/telemetry';
import { Ledger, type Claim, type RecordedDecision } from '../storage/ledger';
import { Deadline, DeadlineExceededError } from './deadline';
import { deliveryKey, unitIdempotencyKey } from './deliveryKey';
import { telemetryIdentifiers, type EventSummary } from './envelope';
import { isDecision, type Decision, type HandlerRegistry, type RegisteredDecider } from './handlerRegistry';
import { handlerContext } from './handlerContext';

/**
 * Inline handlers (`decide(…)`): they run inside the webhook's HTTP request, one after the other in
 * registration order, and their decisions make the answer Dataverse gets for a synchronous step.
 *
 * Effects once across Dataverse's retry. Dataverse sends a failed synchronous request once more
 * only after a 502, 503 or 504, and the retry carries the same serialized context, so it has the
 * same delivery key. Each inline handler claims its unit of work in the effects-once ledger (the
 * table the processor uses, the handler's name as the unit) before it runs, and its decision is
 * written on that row when it is done. A copy of the delivery then:
 *  - finds the decision and answers from it without running the handler again (an allow whose
 *    enqueue failed: the retry enqueues, and nothing else happens twice);
 *  - finds the unit failed (the handler threw) and runs it again, as attempt 2, with the same
 *    `ctx.idempotencyKey`;
 *  - finds it held (another copy is running it right now) and waits for that copy's decision, for
 *    as long as its own time allows.
 * A unit is held only while its handler may run (its time limit and a second), so a decision that
 * could not be written does not block the retry for long: the retry then runs the handler again,
 * which is the window `ctx.idempotencyKey` closes.
 *
 * The ledger is a storage write on the acknowledgement path: one claim before each inline handler,
 * and the decisions written together with the enqueue (bench: `npm run bench`).
 */

export interface DecisionDependencies {
  handlers: HandlerRegistry;
  ledger: TableClient;
  log: EventLog;
  telemetry?: Telemetry;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

export interface DecisionLimits {
  /** How long one inline handler may take (WEBHOOK_DECISION_TIMEOUT_MS). */
  decisionTimeoutMs: number;
  /** How long the ledger's claim may take (WEBHOOK_STORAGE_DEADLINE_MS). */
  storageDeadlineMs: number;
  /** What all the inline handlers of the request may take together, claims included. */
  totalMs: number;
}

/** One inline handler's decision as the request ends. */
export interface DecidedUnit {
  handler: string;
  outcome: 'allow' | 'reject';
  /** Decided by an earlier copy of this delivery and read from the ledger: the handler did not run. */
  recorded: boolean;
}

export type DecisionsResult =
  /** Every inline handler allowed (none matched, or each said allow). */
  | { kind: 'allowed'; units: DecidedUnit[]; decisionMs: number; pending: PendingWrites }
  /** One rejected: the reason is for the person whose save fails. The handlers after it did not run. */
  | { kind: 'rejected'; units: DecidedUnit[]; handler: string; reason: string; code: string; decisionMs: number; pending: PendingWrites }
  /** A handler threw or returned no decision; it may succeed when Dataverse sends the event again. */
  | { kind: 'error'; handler: string; decisionMs: number; pending: PendingWrites }
  /** A handler was still running at its time limit (its signal was aborted), or another copy still held it. */
  | { kind: 'timeout' | 'busy'; handler: string; limitMs: number; decisionMs: number; pending: PendingWrites }
  /** The ledger could not be reached before a handler ran: it did not run. */
  | { kind: 'storage-unavailable'; handler: string; decisionMs: number; error: unknown; pending: PendingWrites };

/**
 * The ledger writes that record the decisions (and failures) of this request. The caller starts
 * them with its storage deadline: for an allow, together with the enqueue, so that they cost the
 * answer one round trip at most, not one each.
 */
export interface PendingWrites {
  readonly count: number;
  write(signal: AbortSignal): Promise<void>;
}

const NOTHING_PENDING: PendingWrites = { count: 0, write: async () => undefined };
/** How long past its time limit a unit stays held: enough for the decision to be written. */
const LEASE_MARGIN_MS = 1_000;
const BUSY_POLL_MS = 200;

export async function runDecisions(event: DataverseEvent, ids: { eventId: string; summary: EventSummary }, limits: DecisionLimits, deps: DecisionDependencies): Promise<DecisionsResult> {
  const now = deps.now ?? Date.now;
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const telemetry = deps.telemetry ?? NO_TELEMETRY;
  const started = now();
  const end = started + limits.totalMs;
  const ledger = new Ledger(deps.ledger, now);
  const key = deliveryKey(ids.summary);
  const { eventId } = ids;
  const units: DecidedUnit[] = [];
  const writes: Array<(signal: AbortSignal) => Promise<void>> = [];
  const pending = (): PendingWrites => (writes.length === 0 ? NOTHING_PENDING : { count: writes.length, write: (signal) => settleAll(writes.map((write) => write(signal))) });
  const elapsed = () => now() - started;
  const identifiers = telemetryIdentifiers(eventId, ids.summary);
  const told = (handler: string, status: string, decisionMs: number, reason?: string) => {
    const properties: TelemetryProperties = { ...identifiers, handler, status, reason };
    telemetry.event('decided', properties, { decisionMs });
  };

  for (const decider of deps.handlers.decisionsFor(event)) {
    const log = logWith(deps.log, { eventId, handler: decider.name, table: event.primaryEntityName, message: event.messageName, recordId: event.primaryEntityId });
    const handlerStarted = now();
    const limitMs = Math.max(0, Math.min(limits.decisionTimeoutMs, end - now()));

    // The unit: claimed for this request, decided by an earlier copy, or held by one running now.
    let claim: Claim;
    try {
      claim = await claimOrWait(ledger, key, decider.name, eventId, limitMs, Math.min(limits.storageDeadlineMs, Math.max(1, end - now())), now, sleep);
    } catch (error) {
      log.error('Could not claim the inline handler’s unit in the ledger; it did not run', { error: describeError(error) });
      told(decider.name, 'error', now() - handlerStarted, 'ledger-unavailable');
      return { kind: 'storage-unavailable', handler: decider.name, decisionMs: elapsed(), error, pending: pending() };
    }
    if (claim.kind === 'busy') {
      log.error('Another copy of this delivery still runs the inline handler; answering without a decision', { limitMs });
      told(decider.name, 'busy', now() - handlerStarted);
      return { kind: 'busy', handler: decider.name, limitMs, decisionMs: elapsed(), pending: pending() };
    }
    if (claim.kind === 'already-done') {
      const decision = claim.decision;
      if (decision?.outcome === 'reject') {
        log.info('Rejected earlier for this delivery; answering the same', { code: decision.code });
        told(decider.name, 'reject', now() - handlerStarted, decision.code);
        units.push({ handler: decider.name, outcome: 'reject', recorded: true });
        return { kind: 'rejected', units, handler: decider.name, reason: decision.reason ?? '', code: decision.code ?? 'rejected', decisionMs: elapsed(), pending: pending() };
      }
      if (decision?.outcome !== 'allow') {
        // A finished unit with no decision is not one this code wrote: fail closed rather than guess.
        log.error('The inline handler’s unit is finished but holds no decision; answering without one');
        told(decider.name, 'error', now() - handlerStarted, 'no-recorded-decision');
        return { kind: 'error', handler: decider.name, decisionMs: elapsed(), pending: pending() };
      }
      log.info('Allowed earlier for this delivery; not run again');
      told(decider.name, 'allow', now() - handlerStarted, 'recorded');
      units.push({ handler: decider.name, outcome: 'allow', recorded: true });
      continue;
    }

    const outcome = await runDecider(event, eventId, decider, claim, limitMs, unitIdempotencyKey(key, decider.name), log);
    const decisionMs = now() - handlerStarted;
    if (outcome.kind === 'decided') {
      const { decision } = outcome;
      const recorded: RecordedDecision = decision.outcome === 'reject' ? { outcome: 'reject', reason: decision.reason, code: decision.code } : { outcome: 'allow' };
      writes.push((signal) => bounded(signal, () => ledger.decided(claim, eventId, recorded)));
      units.push({ handler: decider.name, outcome: decision.outcome, recorded: false });
      if (decision.outcome === 'reject') {
        // The code only: the reason may hold the record's values.
        log.warn('Inline handler rejected the operation', { code: decision.code, decisionMs: Math.round(decisionMs) });
        told(decider.name, 'reject', decisionMs, decision.code);
        return { kind: 'rejected', units, handler: decider.name, reason: decision.reason, code: decision.code, decisionMs: elapsed(), pending: pending() };
      }
      told(decider.name, 'allow', decisionMs);
      continue;
    }
    // The unit is given up, so that the retry (if any) takes it over at once.
    const why = outcome.kind === 'timeout' ? `did not decide within its time limit of ${limitMs} ms (its ctx.signal was aborted)` : describeError(outcome.error);
    writes.push((signal) => bounded(signal, () => ledger.fail(claim, eventId, why)));
    if (outcome.kind === 'timeout') {
      log.error('Inline handler ran past its time limit; the operation fails', { limitMs });
      told(decider.name, 'timeout', decisionMs);
      return { kind: 'timeout', handler: decider.name, limitMs, decisionMs: elapsed(), pending: pending() };
    }
    log.error('Inline handler failed; answering 503 so that Dataverse sends the event once more', { attempt: claim.attempts, error: why });
    told(decider.name, 'error', decisionMs);
    return { kind: 'error', handler: decider.name, decisionMs: elapsed(), pending: pending() };
  }
  return { kind: 'allowed', units, decisionMs: elapsed(), pending: pending() };
}

type RunOutcome = { kind: 'decided'; decision: Decision } | { kind: 'timeout' } | { kind: 'error'; error: unknown };

/**
 * Runs one inline handler within its limit. Its `ctx.signal` aborts at the limit; a handler that
 * ignores it is no longer waited for (its late effect may still happen: pass the signal on).
 */
async function runDecider(
  event: DataverseEvent,
  eventId: string,
  decider: RegisteredDecider,
  claim: Extract<Claim, { kind: 'claimed' }>,
  limitMs: number,
  idempotencyKey: string,
  log: EventLog,
): Promise<RunOutcome> {
  const deadline = new Deadline(limitMs);
  try {
    const context = handlerContext(event, eventId, targetEntity(event), null, log, claim.attempts);
    const returned = await deadline.bound(Promise.resolve().then(() => decider.decide(event, { ...context, signal: deadline.signal, idempotencyKey })));
    return { kind: 'decided', decision: asDecision(decider.name, returned) };
  } catch (error) {
    if (error instanceof DeadlineExceededError) return { kind: 'timeout' };
    return { kind: 'error', error };
  } finally {
    deadline.clear();
  }
}

export class NoDecisionError extends Error {
  override readonly name = 'NoDecisionError';
}

function asDecision(handler: string, value: unknown): Decision {
  if (!isDecision(value)) throw new NoDecisionError(`inline handler ${handler} returned no decision: return allow() or reject(reason)`);
  return value;
}

/**
 * Claims the unit, or waits while another copy of the delivery holds it (polling the ledger) until
 * that copy decided, gave it up, or `waitMs` passed: then the claim is `busy`.
 */
async function claimOrWait(
  ledger: Ledger,
  key: string,
  unit: string,
  eventId: string,
  waitMs: number,
  storageDeadlineMs: number,
  now: () => number,
  sleep: (ms: number) => Promise<void>,
): Promise<Claim> {
  const until = now() + waitMs;
  for (;;) {
    const deadline = new Deadline(storageDeadlineMs);
    let claim: Claim;
    try {
      claim = await deadline.bound(ledger.claim(key, unit, eventId, waitMs + LEASE_MARGIN_MS));
    } finally {
      deadline.clear();
    }
    if (claim.kind !== 'busy' || now() >= until) return claim;
    await sleep(Math.max(1, Math.min(BUSY_POLL_MS, claim.retryAfterMs, until - now())));
  }
}

/** A write bounded by the caller's deadline: abandoned (not cancelled) when it aborts. */
function bounded(signal: AbortSignal, write: () => Promise<void>): Promise<void> {
  signal.throwIfAborted();
  const work = write();
  work.catch(() => undefined);
  return new Promise<void>((resolve, reject) => {
    const aborted = () => reject(signal.reason);
    signal.addEventListener('abort', aborted, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', aborted));
  });
}

/** Waits for every write, then fails with the first failure: none is left running unobserved. */
async function settleAll(writes: Array<Promise<void>>): Promise<void> {
  const results = await Promise.allSettled(writes);
  const failed = results.find((result): result is PromiseRejectedResult => result.status === 'rejected');
  if (failed) throw failed.reason;
}
