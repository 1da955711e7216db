import type { TableClient } from '@azure/data-tables';
import type { DataverseEvent } from '../dataverse';
import { targetEntity } from '../dataverse/accessors';
import { type Decision, isDecision } from '../handlerApi';
import { describeError, type EventLog, logWith } from '../observability/log';
import { NO_TELEMETRY, type Telemetry, type TelemetryProperties } from '../observability/telemetry';
import { Deadline, DeadlineExceededError } from './deadline';
import { deliveryKey, unitIdempotencyKey } from './deliveryKey';
import { type EventSummary, telemetryIdentifiers } from './envelope';
import { handlerContext } from './handlerContext';
import type { HandlerRegistry, RegisteredDecider } from './handlerRegistry';
import { Ledger, type RecordedDecision } from './ledger/ledger';

/**
 * Inline handlers (`decide(…)`): they run inside the webhook's HTTP request, one after the other in
 * registration order, and their decisions make the answer Dataverse gets for a synchronous step.
 *
 * Nothing is read or written before a handler runs, so that a save that every inline handler
 * allows costs the one durable write any event costs (its enqueue). Why no ledger claim first:
 * Dataverse sends a synchronous request once more only after a 502, 503 or 504, with the same
 * bytes and headers, so nothing in a request tells a retry from a first delivery; telling them
 * apart would take a storage read before every handler of every save, to serve a retry that
 * follows only our own 503s. So instead:
 *  - a handler that throws is run once more at once, in the same request, as attempt 2 with the
 *    same `ctx.idempotencyKey` (what Dataverse's retry would do, less a round trip and a parse); if
 *    it throws again the answer is a 500, which Dataverse does not retry, so it never runs a third
 *    time;
 *  - an allow whose enqueue is not confirmed gets the 503 every storage fault gets: Dataverse's
 *    retry runs the inline handlers again, with the same idempotency keys (pass them on), and the
 *    event is processed once (one delivery key, see deliveryKey.ts);
 *  - Dataverse never sends a copy while the first is still being answered, so no copy waits for
 *    another.
 * What a save that failed was decided (each handler's decision, or why it failed) is written on
 * the handlers' ledger rows after the answer, for whoever inspects it: no copy reads them.
 */

export interface DecisionDependencies {
  handlers: HandlerRegistry;
  ledger: TableClient;
  log: EventLog;
  telemetry?: Telemetry;
  now?: () => number;
}

export interface DecisionLimits {
  /** How long one inline handler may take (WEBHOOK_DECISION_TIMEOUT_MS). */
  decisionTimeoutMs: number;
  /** What all the inline handlers of the request may take together (a second attempt included). */
  totalMs: number;
}

/** One inline handler's decision as the request ends. */
export interface DecidedUnit {
  handler: string;
  outcome: 'allow' | 'reject';
}

export type DecisionsResult =
  /** Every inline handler allowed (none matched, or each said allow): nothing to record. */
  | { kind: 'allowed'; units: DecidedUnit[]; decisionMs: number }
  /** One rejected: the reason is for the person whose save fails. The handlers after it did not run. */
  | { kind: 'rejected'; units: DecidedUnit[]; handler: string; reason: string; code: string; decisionMs: number; record: LedgerRecord }
  /** A handler threw twice (or returned no decision): the save fails, and Dataverse does not retry. */
  | { kind: 'error'; handler: string; decisionMs: number; record: LedgerRecord }
  /** A handler was still running at its time limit (its signal was aborted). */
  | { kind: 'timeout'; handler: string; limitMs: number; decisionMs: number; record: LedgerRecord };

/**
 * What a save that failed was decided, for the ledger: written after the answer (nothing waits for
 * it, and no copy reads it), within the signal the caller gives. Fails with the first failure.
 */
export interface LedgerRecord {
  write(signal: AbortSignal): Promise<void>;
}

/** A handler's run, as the ledger keeps it: its decision, or why it failed, and on which attempt. */
type UnitRecord = { handler: string; attempts: number } & ({ decision: RecordedDecision } | { error: string });

export async function runDecisions(
  event: DataverseEvent,
  ids: { eventId: string; summary: EventSummary },
  limits: DecisionLimits,
  deps: DecisionDependencies,
): Promise<DecisionsResult> {
  const now = deps.now ?? Date.now;
  const started = now();
  const telemetry = deps.telemetry ?? NO_TELEMETRY;
  const identifiers = telemetryIdentifiers(ids.eventId, ids.summary);
  const request: DecisionRequest = {
    event,
    eventId: ids.eventId,
    key: deliveryKey(ids.summary),
    end: started + limits.totalMs,
    decisionTimeoutMs: limits.decisionTimeoutMs,
    deps,
    now,
    units: [],
    runs: [],
    told: (handler, status, decisionMs, reason) =>
      telemetry.event('decided', { ...identifiers, handler, status, reason } satisfies TelemetryProperties, { decisionMs }),
  };
  for (const decider of deps.handlers.decisionsFor(event)) {
    const failed = await decideWith(request, decider);
    if (failed) {
      const record = ledgerRecord(new Ledger(deps.ledger, now), request.key, request.eventId, request.runs);
      return { ...failed, decisionMs: now() - started, record };
    }
  }
  return { kind: 'allowed', units: request.units, decisionMs: now() - started };
}

/** What the inline handlers of one request share as they run, one after the other. */
interface DecisionRequest {
  event: DataverseEvent;
  eventId: string;
  key: string;
  /** When all the request's inline handlers must have decided. */
  end: number;
  decisionTimeoutMs: number;
  deps: DecisionDependencies;
  now: () => number;
  /** The decisions so far, for the answer. */
  units: DecidedUnit[];
  /** Each handler's run so far, for the ledger. */
  runs: UnitRecord[];
  told: (handler: string, status: string, decisionMs: number, reason?: string) => void;
}

/** How a request's decisions end short of `allowed`, before its time and its ledger record are added. */
type Failed = DistributiveOmit<Exclude<DecisionsResult, { kind: 'allowed' }>, 'decisionMs' | 'record'>;
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/**
 * One inline handler's decision, run once more at once after a throw: null when it allows, else
 * how the request fails (its rejection, its error, its time limit).
 */
async function decideWith(request: DecisionRequest, decider: RegisteredDecider): Promise<Failed | null> {
  const { event, eventId, now, runs, told } = request;
  const handler = decider.name;
  const log = logWith(request.deps.log, {
    eventId,
    handler,
    table: event.primaryEntityName,
    message: event.messageName,
    recordId: event.primaryEntityId,
  });
  const idempotencyKey = unitIdempotencyKey(request.key, handler);
  for (let attempt = 1; ; attempt++) {
    const handlerStarted = now();
    const limitMs = Math.max(0, Math.min(request.decisionTimeoutMs, request.end - now()));
    const outcome = await runDecider({ event, eventId, decider, attempt, limitMs, idempotencyKey, log });
    const decisionMs = now() - handlerStarted;
    if (outcome.kind === 'decided') return decided(request, handler, attempt, outcome.decision, decisionMs, log);
    if (outcome.kind === 'timeout') {
      runs.push({
        handler,
        attempts: attempt,
        error: `did not decide within its time limit of ${limitMs} ms (its ctx.signal was aborted)`,
      });
      log.error('Inline handler ran past its time limit; the operation fails', { limitMs });
      told(handler, 'timeout', decisionMs);
      return { kind: 'timeout', handler, limitMs };
    }
    const why = describeError(outcome.error);
    told(handler, 'error', decisionMs);
    // A missing decision is a bug, not a blip: running it again would return nothing again.
    if (attempt === 1 && !(outcome.error instanceof NoDecisionError) && request.end - now() > 0) {
      log.warn('Inline handler failed; running it once more at once, as attempt 2 (what Dataverse’s retry would do)', { error: why });
      continue;
    }
    runs.push({ handler, attempts: attempt, error: why });
    log.error('Inline handler failed; the operation fails (answered 500, which Dataverse does not retry)', { attempt, error: why });
    return { kind: 'error', handler };
  }
}

/** A decision made: kept for the answer and the ledger; a rejection ends the request. */
function decided(
  request: DecisionRequest,
  handler: string,
  attempt: number,
  decision: Decision,
  decisionMs: number,
  log: EventLog,
): Failed | null {
  request.runs.push({
    handler,
    attempts: attempt,
    decision: decision.outcome === 'reject' ? { outcome: 'reject', reason: decision.reason, code: decision.code } : { outcome: 'allow' },
  });
  request.units.push({ handler, outcome: decision.outcome });
  if (decision.outcome === 'allow') {
    request.told(handler, 'allow', decisionMs);
    return null;
  }
  // The code only: the reason may hold the record's values.
  log.warn('Inline handler rejected the operation', { code: decision.code, decisionMs: Math.round(decisionMs) });
  request.told(handler, 'reject', decisionMs, decision.code);
  return { kind: 'rejected', units: request.units, handler, reason: decision.reason, code: decision.code };
}

function ledgerRecord(ledger: Ledger, key: string, eventId: string, runs: UnitRecord[]): LedgerRecord {
  return {
    write: (signal) =>
      settleAll(
        runs.map((run) =>
          bounded(signal, () =>
            'decision' in run
              ? ledger.recordDecision(key, run.handler, eventId, run.attempts, run.decision)
              : ledger.recordFailure(key, run.handler, eventId, run.attempts, run.error),
          ),
        ),
      ),
  };
}

type RunOutcome = { kind: 'decided'; decision: Decision } | { kind: 'timeout' } | { kind: 'error'; error: unknown };

/** One run of one inline handler. */
interface DeciderRun {
  event: DataverseEvent;
  eventId: string;
  decider: RegisteredDecider;
  /** 1, or 2 for the run at once after a throw: its `ctx.deliveryCount`. */
  attempt: number;
  limitMs: number;
  idempotencyKey: string;
  log: EventLog;
}

/**
 * Runs one inline handler within its limit. Its `ctx.signal` aborts at the limit; a handler that
 * ignores it is no longer waited for (its late effect may still happen: pass the signal on).
 */
async function runDecider(run: DeciderRun): Promise<RunOutcome> {
  const { event, decider } = run;
  const deadline = new Deadline(run.limitMs);
  try {
    const context = handlerContext({
      event,
      eventId: run.eventId,
      record: targetEntity(event),
      log: run.log,
      deliveryCount: run.attempt,
      signal: deadline.signal,
      idempotencyKey: run.idempotencyKey,
    });
    const returned = await deadline.bound(Promise.resolve().then(() => decider.decide(event, context)));
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
