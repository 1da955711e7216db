import type { DataverseEvent, Entity } from '../dataverse';
import { targetEntity, targetRecords } from '../dataverse/accessors';
import type { RecordReader } from '../dataverseApi/recordReader';
import { INVOCATION_BUDGET_MS, MAX_DEQUEUE_COUNT } from '../hostConfig';
import { describeError, type EventLog, type LogProperties, logWith } from '../observability/log';
import { NO_TELEMETRY, type Telemetry, type TelemetryProperties } from '../observability/telemetry';
import { type ProcessSettings, SettingsError } from '../settings';
import { deletePayload } from '../storage/claimCheck';
import type { StorageClients } from '../storage/clients';
import { storageErrorCode, storageStatus, wasRefused } from '../storage/errors';
import { sendQueueMessage } from '../storage/queueMessages';
import { deliveryKey, unitIdempotencyKey } from './deliveryKey';
import { type EventEnvelope, logIdentifiers, telemetryIdentifiers } from './envelope';
import type { HandlerRegistry, RegisteredHandler } from './handlerRegistry';
import { type Completion, type EventSettlement, type HolderWrite, Ledger, SERVICE_CLOCK_MARGIN_MS } from './ledger/ledger';
import type { UnitLease } from './ledger/unitLease';
import { loadEvent } from './loadEvent';
import { reconciledHandlers } from './reconcile/claimChange';
import { runUnit } from './runUnit';

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

/** One handler on one record (or the event): what the ledger claims and marks done, as one. */
interface WorkItem {
  handler: RegisteredHandler;
  record: Entity | null;
  /** The unit's key in the ledger: the handler, and the record for a per-record handler. */
  unit: string;
}

/** The last unit's completion, written with the event's settlement in one transaction. */
interface LastCompletion {
  completion: Completion;
  lease: UnitLease;
  handler: string;
}

export async function processEnvelope(envelope: EventEnvelope, deps: ProcessDependencies): Promise<ProcessOutcome> {
  return new EventProcessing(envelope, deps).run();
}

/** One event's processing, phase by phase: check, load, route, run each unit, settle. */
class EventProcessing {
  private readonly now: () => number;
  private readonly budgetEnd: number;
  private readonly ledger: Ledger;
  private readonly key: string;
  private readonly ids: LogProperties;
  private readonly telemetry: Telemetry;
  private readonly telemetryIds: TelemetryProperties;
  private readonly queueWaitMs: number;
  private readonly units: ProcessOutcome['units'] = [];
  private lastCompletion: LastCompletion | undefined;

  constructor(
    private readonly envelope: EventEnvelope,
    private readonly deps: ProcessDependencies,
  ) {
    this.now = deps.now ?? Date.now;
    this.budgetEnd = this.now() + (deps.invocationBudgetMs ?? INVOCATION_BUDGET_MS);
    this.ledger = new Ledger(deps.storage.ledger, this.now);
    this.key = deliveryKey(envelope.summary);
    this.ids = { ...logIdentifiers(envelope), deliveryCount: deps.deliveryCount, replays: envelope.replays };
    this.telemetry = deps.telemetry ?? NO_TELEMETRY;
    this.telemetryIds = telemetryIdentifiers(envelope.eventId, envelope.summary);
    this.queueWaitMs = Math.max(0, this.now() - Date.parse(envelope.receivedAt));
    const { primaryEntityName: table, messageName: message } = envelope.summary;
    this.telemetry.metric('queueWaitMs', this.queueWaitMs, { table, message });
  }

  async run(): Promise<ProcessOutcome> {
    const { deps, envelope, ids } = this;
    if (deps.settings instanceof SettingsError) return this.failEvent(deps.settings);
    const settings = deps.settings;
    if (envelope.summary.depth > settings.maxDepth) {
      deps.log.warn('Event deeper than PROCESSOR_MAX_DEPTH: recorded, not handled', {
        ...ids,
        depth: envelope.summary.depth,
        maxDepth: settings.maxDepth,
      });
      return this.settle(settings, 'depth-exceeded', null);
    }
    const event = await this.load();
    if (!event) return this.outcome('duplicate');
    // A reconciled event runs only the reconciling handlers it was found for (reconcile/fanOut.ts).
    const matched = envelope.reconciled
      ? reconciledHandlers(deps.handlers, envelope.reconciled.handlers, event)
      : deps.handlers.match(event);
    if (matched.length === 0) {
      deps.log.info('No handler for this event', ids);
      return this.settle(settings, 'unhandled', event.truncated);
    }
    const stopped = await this.runWork(settings, event, workOf(matched, event));
    if (stopped) return stopped;
    if (this.units.every((unit) => unit.result === 'duplicate')) {
      deps.log.info('Every handler had already run; this copy is a duplicate', ids);
      return this.settle(settings, 'processed', event.truncated, 'duplicate');
    }
    deps.log.info('Event processed', { ...ids, units: this.units.length, truncated: event.truncated });
    return this.settle(settings, 'processed', event.truncated);
  }

  /** The event the webhook accepted, or null for a copy of one already settled (its claim-check blob is gone). */
  private async load(): Promise<DataverseEvent | null> {
    try {
      return await loadEvent(this.envelope, this.deps.storage.payloads);
    } catch (error) {
      // A copy of a settled claim-check event finds its blob deleted: that is a duplicate, not a fault.
      if (isBlobNotFound(error) && (await this.ledger.eventSettlement(this.key))) {
        this.deps.log.info('Event already settled; this copy is a duplicate', this.ids);
        return null;
      }
      return this.failEvent(error);
    }
  }

  /**
   * Each unit in turn: claimed, run, marked done (the last one with the settlement). Returns the
   * outcome when the event stops short of settling (deferred, poisoned, a unit lost).
   */
  private async runWork(settings: ProcessSettings, event: DataverseEvent, work: WorkItem[]): Promise<ProcessOutcome | null> {
    for (const [index, item] of work.entries()) {
      const claim = await this.claim(settings, item);
      if (claim.kind === 'busy') return this.deferBusy(settings, item, claim, event);
      if (claim.kind === 'exhausted') return this.poison(item, claim, event);
      const recordId = item.record?.id ?? null;
      if (claim.kind === 'already-done') {
        this.units.push({ handler: item.handler.name, recordId, result: 'duplicate' });
        continue;
      }
      const ran = await runUnit({
        event,
        envelope: this.envelope,
        handler: item.handler,
        record: item.record,
        log: logWith(this.deps.log, { ...this.ids, handler: item.handler.name, recordId }),
        ledger: this.ledger,
        claim,
        limitMs: Math.min(settings.handlerTimeoutMs, this.budgetEnd - this.now()),
        idempotencyKey: unitIdempotencyKey(this.key, item.unit),
        deliveryCount: this.deps.deliveryCount,
        recordReader: this.deps.recordReader ?? null,
        appliedChanges: this.deps.storage.ledger,
      });
      if (ran.result === 'lost') return this.lostUnit(settings, item.handler.name, 'stopped');
      this.units.push({ handler: item.handler.name, recordId, result: ran.result });
      const completion: Completion = { claim, state: ran.result === 'done' ? 'done' : 'stale', eventId: this.envelope.eventId };
      if (index === work.length - 1) this.lastCompletion = { completion, lease: ran.lease, handler: item.handler.name };
      else if ((await this.markDone(completion, ran.lease)) === 'lost') return this.lostUnit(settings, item.handler.name, 'happened');
    }
    return null;
  }

  private claim(settings: ProcessSettings, item: WorkItem) {
    return this.ledger.claimUnit(this.key, item.unit, this.envelope.eventId, settings.leaseMs, {
      maxAttempts: this.deps.maxDequeueCount ?? MAX_DEQUEUE_COUNT,
      replays: this.envelope.replays,
      deadJitterMs: settings.deferJitterMs,
      ...(this.deps.random ? { random: this.deps.random } : {}),
    });
  }

  /** A unit's done-mark, with its lease renewed until it lands. */
  private async markDone(completion: Completion, lease: UnitLease): Promise<HolderWrite> {
    try {
      return await this.persist('a unit done', () => this.ledger.complete(completion));
    } finally {
      lease.stop();
    }
  }

  /** Another processor holds the unit, or its last run died: a copy of the message looks again later. */
  private async deferBusy(
    settings: ProcessSettings,
    item: WorkItem,
    claim: { retryAfterMs: number; jittered?: boolean },
    event: DataverseEvent,
  ): Promise<ProcessOutcome> {
    const retryAfterMs = claim.retryAfterMs + (claim.jittered ? 0 : this.jitter(settings));
    await defer(this.envelope, retryAfterMs, this.deps);
    this.deps.log.info('Event is being processed elsewhere, or its last run died; a copy will look again later', {
      ...this.ids,
      handler: item.handler.name,
      retryAfterMs,
    });
    return this.outcome('deferred', this.units, event.truncated);
  }

  /**
   * A unit failed or died on every attempt. As the host does after the last failed attempt
   * (QueueProcessor.HandlePoisonMessageAsync): the message goes to the poison queue, which
   * recordPoisonedEvent reads; this one is acknowledged.
   */
  private async poison(item: WorkItem, claim: { attempts: number; error: string | null }, event: DataverseEvent): Promise<ProcessOutcome> {
    await sendQueueMessage(this.deps.storage.poisonQueue, this.envelope);
    this.deps.log.error('A handler failed or died on every attempt; the event was moved to the poison queue', {
      ...this.ids,
      handler: item.handler.name,
      attempts: claim.attempts,
      error: claim.error,
    });
    return this.outcome('poisoned', this.units, event.truncated);
  }

  /**
   * This processor no longer holds a unit: another one took it over after its lease ran out here
   * (the worker stalled, or lost storage for longer than the lease). Nothing more is written there;
   * a copy of the message comes back after a lease, to find the unit done or its new run dead.
   */
  private async lostUnit(settings: ProcessSettings, handler: string, effect: 'stopped' | 'happened'): Promise<ProcessOutcome> {
    const retryAfterMs = settings.leaseMs + SERVICE_CLOCK_MARGIN_MS + this.jitter(settings);
    const message =
      effect === 'happened'
        ? "A unit's effect happened, and another processor took the unit over before it was marked done: the effect may run again"
        : 'Another processor took the unit over while its handler ran here (its lease ran out); nothing more is written for it here';
    this.deps.log[effect === 'happened' ? 'error' : 'warn'](message, { ...this.ids, handler, retryAfterMs });
    const reason = effect === 'happened' ? 'effect-happened' : 'handler-stopped';
    this.telemetry.event('leaseLost', { ...this.telemetryIds, handler, reason });
    await defer(this.envelope, retryAfterMs, this.deps);
    return this.outcome('deferred', [], null);
  }

  /** The settlement, with the last unit's done-mark in the same transaction; then the claim-check blob goes. */
  private async settle(
    settings: ProcessSettings,
    settlement: EventSettlement,
    truncated: boolean | null,
    status: ProcessOutcome['status'] = settlement,
  ): Promise<ProcessOutcome> {
    const claimCheck = 'blob' in this.envelope.body;
    const last = this.lastCompletion;
    let settled: HolderWrite;
    try {
      settled = await this.persist(last ? 'the last unit done and the event settled' : 'the event settled', () =>
        this.ledger.settleEvent(this.key, this.envelope.eventId, settlement, last?.completion, { claimCheck }),
      );
    } finally {
      last?.lease.stop();
    }
    // The unit's new holder settles the event, and needs its claim-check blob.
    if (settled === 'lost' && last) return this.lostUnit(settings, last.handler, 'happened');
    await releaseClaimCheck(this.envelope, this.deps);
    return this.outcome(status, this.units, truncated);
  }

  /** An event that fails outside any handler says why in the ledger, for its poison record (best effort). */
  private async failEvent(error: unknown): Promise<never> {
    try {
      await this.ledger.failEvent(this.key, this.envelope.eventId, this.deps.deliveryCount, describeError(error));
    } catch (ledgerError) {
      this.deps.log.warn('Could not note why the event failed', { ...this.ids, error: describeError(ledgerError) });
    }
    this.deps.log.error('Event failed before its handlers ran; the message will be retried', { ...this.ids, error: describeError(error) });
    throw error;
  }

  /** The outcome, told to telemetry. */
  private outcome(status: ProcessOutcome['status'], units: ProcessOutcome['units'] = [], truncated: boolean | null = null): ProcessOutcome {
    const { telemetry, telemetryIds } = this;
    if (status === 'duplicate') telemetry.event('duplicate', telemetryIds);
    else if (status !== 'deferred' && status !== 'poisoned')
      telemetry.event('processed', { ...telemetryIds, status }, { queueWaitMs: this.queueWaitMs, units: units.length });
    for (const unit of units) if (unit.result === 'stale') telemetry.event('stale', { ...telemetryIds, reason: unit.handler });
    return { eventId: this.envelope.eventId, status, units, truncated };
  }

  /**
   * Once a unit's effect happened, marking it done is worth waiting for: given up, the message
   * would be retried and the effect repeated. It is conditioned on holding the unit, whose lease is
   * renewed meanwhile, so it is tried for as long as the invocation's budget allows.
   */
  private persist<T>(what: string, write: () => Promise<T>): Promise<T> {
    return persistWrite(what, write, this.budgetEnd, { ...this.deps, now: this.now }, this.ids);
  }

  private jitter(settings: ProcessSettings): number {
    return Math.floor((this.deps.random ?? Math.random)() * settings.deferJitterMs);
  }
}

/** The units of the matched handlers: one per handler, or one per record for a per-record handler. */
function workOf(matched: RegisteredHandler[], event: DataverseEvent): WorkItem[] {
  return matched.flatMap((handler) => {
    const perRecord = handler.perRecord ? targetRecords(event) : [];
    const records: Array<Entity | null> = perRecord.length > 0 ? perRecord : [targetEntity(event)];
    return records.map((record) => ({
      handler,
      record,
      unit: handler.perRecord && record ? `${handler.name}~${record.id.toLowerCase()}` : handler.name,
    }));
  });
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

/** The claim-check blob is gone (not its container: that would be a misconfiguration). */
function isBlobNotFound(error: unknown): boolean {
  return storageStatus(error) === 404 && storageErrorCode(error) === 'BlobNotFound';
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
