import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import {
  fileWebhookRequest,
  type GeneratedEventOptions,
  generatedWebhookRequest,
  truncated,
  type WebhookRequestToSend,
} from '../cli/webhookRequest';
import { type DataverseEvent, type Entity, parseDataverseWebhookOrThrow } from '../dataverse';
import { targetEntity, targetRecords } from '../dataverse/accessors';
import type { DataverseRow } from '../dataverseApi/recordReader';
import { type EventLog, type LogProperties, logWith } from '../observability/log';
import { deliveryKey, unitIdempotencyKey } from '../pipeline/deliveryKey';
import { summarize } from '../pipeline/envelope';
import { handlerContext } from '../pipeline/handlerContext';
import type { HandlerRegistry, RegisteredHandler } from '../pipeline/handlerRegistry';
import { reconciledHandlers } from '../pipeline/reconcile/claimChange';
import type { HandlerDefinition } from './declarations';
import { type Decision, isDecision } from './index';
import { registryOf } from './load';

/**
 * The test kit for your handlers: a few lines run one handler on a real or generated payload, the
 * way the app runs it (its declaration routes the event, a per-record handler is called once per
 * record, its `ctx` is the one the processor builds), with nothing to build: the log is recorded,
 * and a fake ledger remembers what ran, so a second delivery of the same event is a duplicate.
 *
 *   import { describe, expect, it } from 'vitest';
 *   import { generatedEvent, runHandler, sampleEvent } from '../handlerApi/testing';
 *   import { contactChanges } from './contactChanges';
 *
 *   it('summarizes what changed', async () => {
 *     const event = generatedEvent({ entity: 'contact', message: 'Update', attributes: ['lastname=Glynn-Smith'], preImages: ['pre:lastname=Glynn'] });
 *     const run = await runHandler(contactChanges, event);
 *     expect(run.log).toContainEqual(expect.objectContaining({ message: 'Contact changed' }));
 *   });
 *
 * Storage, the queue and retries are the engine's, tested by the engine's own tests: here a
 * handler that throws is reported in `calls[i].error`, not retried.
 */

export interface LogLine {
  level: 'info' | 'warn' | 'error';
  message: string;
  properties: LogProperties;
}

export interface HandlerCall {
  /** The record this call was for (per-record handlers), else the Target's id, or null. */
  recordId: string | null;
  /** `ctx.idempotencyKey`: the same for every delivery of this unit of work. */
  idempotencyKey: string;
  /** What the handler threw; null when it returned. */
  error: unknown;
}

export interface HandlerRun {
  /** Whether the declaration matches the event: a handler that does not match is not called. */
  matched: boolean;
  /** One per call (one per record for `perRecord`); none when it did not match or every unit had already run. */
  calls: HandlerCall[];
  /** Units the fake ledger had already seen done: a repeated delivery runs nothing twice. */
  duplicates: number;
  /** For `decide(…)`: what it decided (an inline handler that throws makes it null, see calls[0].error). */
  decision: Decision | null;
  /** Every line the handler logged, with its properties (the event's ids included). */
  log: LogLine[];
}

export interface RunOptions {
  /** `ctx.rereadRecord` for a truncated event and a handler with `rereadTruncated` (what the Web API would return). */
  rereadRecord?: DataverseRow;
  /** `ctx.deliveryCount` (default 1). */
  deliveryCount?: number;
  /** `ctx.signal`: abort it to test how the handler honours its time limit. */
  signal?: AbortSignal;
  /**
   * Run it as a change found by reconciliation (docs/reconcile.md): `ctx.reconciled` is true, and
   * only a handler that declares `reconcile` (and the event's table and message) is called.
   */
  reconciled?: boolean;
}

/** What the kit remembers between runs: the units done, by delivery, as the effects-once ledger keys them. */
export interface FakeLedger {
  readonly done: ReadonlySet<string>;
  clear(): void;
}

export interface TestKit {
  ledger: FakeLedger;
  run(handler: HandlerDefinition, event: DataverseEvent, options?: RunOptions): Promise<HandlerRun>;
}

/** A kit whose fake ledger lasts across runs: deliver the same event twice and the second run is a duplicate. */
export function testKit(): TestKit {
  const done = new Set<string>();
  return {
    ledger: { done, clear: () => done.clear() },
    run: (handler, event, options = {}) => run(handler, event, options, done),
  };
}

/** Runs one handler on one event, with a fresh fake ledger. */
export function runHandler(handler: HandlerDefinition, event: DataverseEvent, options: RunOptions = {}): Promise<HandlerRun> {
  return run(handler, event, options, new Set());
}

/** A payload file (a capture, one of samples/), parsed as the app parses it; `truncated` as Dataverse sends one above 256 KB. */
export function sampleEvent(file: string, options: { truncated?: boolean } = {}): DataverseEvent {
  const request = fileWebhookRequest(readFileSync(path.resolve(file)));
  return parsed(options.truncated ? truncated(request) : request);
}

/**
 * A generated event, as `dataverse-webhooks send` builds it: `attributes` are `name=value` or
 * `name:type=value` (types string, int, decimal, bool, money, choice, date, lookup, null), images
 * `alias:name=value`; stage 10, 20 or 40 (or its name); `truncated` removes what Dataverse removes above 256 KB.
 */
export function generatedEvent(options: GeneratedEventOptions & { truncated?: boolean }): DataverseEvent {
  const { truncated: isTruncated, ...generated } = options;
  const request = generatedWebhookRequest(generated);
  return parsed(isTruncated ? truncated(request) : request);
}

function parsed(request: WebhookRequestToSend): DataverseEvent {
  return parseDataverseWebhookOrThrow({ body: request.body, headers: new Headers(request.headers) });
}

/** One run of the kit: what every call shares. */
interface KitRun {
  registry: HandlerRegistry;
  event: DataverseEvent;
  eventId: string;
  key: string;
  eventLog: EventLog;
  signal: AbortSignal;
  options: RunOptions;
  result: HandlerRun;
}

async function run(definition: HandlerDefinition, event: DataverseEvent, options: RunOptions, done: Set<string>): Promise<HandlerRun> {
  const log: LogLine[] = [];
  const eventId = randomUUID();
  const ids: LogProperties = { eventId, table: event.primaryEntityName, message: event.messageName };
  const kit: KitRun = {
    registry: registryOf([definition]),
    event,
    eventId,
    key: deliveryKey(summarize(event)),
    eventLog: recordingLog(log, ids),
    signal: options.signal ?? new AbortController().signal,
    options,
    result: { matched: false, calls: [], duplicates: 0, decision: null, log },
  };
  return definition.kind === 'decide' ? runInline(kit) : runReacting(kit, done);
}

/** A log that records each line with the properties it carries, `extra` first. */
function recordingLog(log: LogLine[], extra: LogProperties): EventLog {
  const recorder =
    (level: LogLine['level']) =>
    (message: string, properties: LogProperties = {}) =>
      void log.push({ level, message, properties: { ...extra, ...properties } });
  return { info: recorder('info'), warn: recorder('warn'), error: recorder('error') };
}

/** An inline handler: called once, its decision kept. */
async function runInline({ registry, event, eventId, key, eventLog, signal, options, result }: KitRun): Promise<HandlerRun> {
  const [decider] = registry.decisionsFor(event);
  if (!decider) return result;
  result.matched = true;
  const idempotencyKey = unitIdempotencyKey(key, decider.name);
  const context = handlerContext({
    event,
    eventId,
    record: targetEntity(event),
    log: eventLog,
    deliveryCount: options.deliveryCount ?? 1,
    signal,
    idempotencyKey,
  });
  const recordId = targetEntity(event)?.id ?? null;
  try {
    const decision = await decider.decide(event, context);
    if (!isDecision(decision)) throw new TypeError(`inline handler ${decider.name} returned no decision: return allow() or reject(reason)`);
    result.decision = decision;
    result.calls.push({ recordId, idempotencyKey, error: null });
  } catch (error) {
    result.calls.push({ recordId, idempotencyKey, error });
  }
  return result;
}

/** A reacting handler: called once per unit (per record for `perRecord`), each unit at most once across the kit's runs. */
async function runReacting(kit: KitRun, done: Set<string>): Promise<HandlerRun> {
  const { registry, event, options, result } = kit;
  const [handler] = options.reconciled ? reconciledHandlers(registry, [registry.all[0]?.name ?? ''], event) : registry.match(event);
  if (!handler) return result;
  result.matched = true;
  const perRecord = handler.perRecord ? targetRecords(event) : [];
  const records: Array<Entity | null> = perRecord.length > 0 ? perRecord : [targetEntity(event)];
  for (const record of records) {
    // The unit the processor claims in the ledger: the handler, and the record for perRecord.
    const unit = handler.perRecord && record ? `${handler.name}~${record.id.toLowerCase()}` : handler.name;
    const ledgerKey = `${kit.key}/${unit}`;
    if (done.has(ledgerKey)) {
      result.duplicates += 1;
      continue;
    }
    const idempotencyKey = unitIdempotencyKey(kit.key, unit);
    const context = handlerContext({
      event,
      eventId: kit.eventId,
      record,
      rereadRecord: rereadRecordFor(handler, event, options),
      log: logWith(kit.eventLog, { handler: handler.name, recordId: record?.id ?? null }),
      deliveryCount: options.deliveryCount ?? 1,
      reconciled: options.reconciled === true,
      signal: kit.signal,
      idempotencyKey,
    });
    try {
      await handler.handle(event, context);
      done.add(ledgerKey);
      result.calls.push({ recordId: record?.id ?? null, idempotencyKey, error: null });
    } catch (error) {
      result.calls.push({ recordId: record?.id ?? null, idempotencyKey, error });
    }
  }
  return result;
}

/** `ctx.rereadRecord`: the row the test gives, for a truncated event and a handler that re-reads. */
function rereadRecordFor(handler: RegisteredHandler, event: DataverseEvent, options: RunOptions): DataverseRow | null {
  if (!event.truncated || handler.rereadColumns === null) return null;
  if (!options.rereadRecord)
    throw new TypeError(`handler ${handler.name} re-reads truncated events: pass the row the Web API would return as options.rereadRecord`);
  return options.rereadRecord;
}
