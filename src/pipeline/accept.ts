import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import type { TableClient } from '@azure/data-tables';
import type { ContainerClient } from '@azure/storage-blob';
import type { QueueClient } from '@azure/storage-queue';
import { DATAVERSE_HEADER_NAMES, type DataverseEvent, parseDataverseWebhook, type WebhookParseError } from '../dataverse';
import { formatIssue } from '../dataverse/issues';
import { describeError, type EventLog } from '../observability/log';
import { NO_TELEMETRY, type Telemetry } from '../observability/telemetry';
import { decisionsBudgetMs, type ExpectedCredential, type IngestSettings, SettingsError } from '../settings';
import { type BlobReference, deletePayload, putPayload } from '../storage/claimCheck';
import { wasRefused } from '../storage/errors';
import { encodeQueueMessage, fitsInQueueMessage, sendEncodedQueueMessage } from '../storage/queueMessages';
import { keepRejected } from '../storage/rejectedStore';
import { Deadline } from './deadline';
import { type DecisionsResult, runDecisions } from './decide';
import {
  ENVELOPE_VERSION,
  type EnvelopeBody,
  type EventEnvelope,
  type EventSummary,
  logIdentifiers,
  summarize,
  telemetryIdentifiers,
} from './envelope';
import type { HandlerRegistry } from './handlerRegistry';

/**
 * Accepting a webhook: check, parse, store durably, answer.
 *
 * Dataverse counts any non-2xx as a failure (for a synchronous step, the user's operation rolls
 * back), retries once only on 502/503/504, and gives up after 60 s. So:
 *  - 202 only once the event is in the queue (and its body in Blob storage when large);
 *  - 503 whenever the write could not be confirmed in time (or the app's settings are invalid), so
 *    that Dataverse tries again. "Not confirmed" is not "not stored": a write that reached storage
 *    just as the deadline fired is processed all the same, and Dataverse's retry of it is the same
 *    delivery (one delivery key), so its handlers still run once;
 *  - 400 for a body that can never succeed, and only once that body is kept for inspection;
 *  - 401/403/405/413 for requests that are not ours to take.
 *
 * A synchronous event with inline handlers (`decide(…)`, see decide.ts) is decided first, and
 * their decisions make the answer: all allow, the event goes on as above, in the same one write;
 * one rejects, 422 and nothing is queued or waited for; one throws twice (it is run once more at
 * once), 500, which Dataverse does not retry; one runs past its time limit, 500 as well (a second
 * try would wait as long again, beside a handler that may still be running).
 */

export interface IncomingWebhook {
  method: string;
  url: string;
  headers: Headers;
  /**
   * The raw body: its chunks as they arrive (a request's stream), read only as far as the size
   * limit, or its bytes when they are already in memory (a test, the bench).
   */
  body(): AsyncIterable<Uint8Array> | Promise<Buffer>;
}

export interface WebhookResponse {
  status: number;
  headers?: Record<string, string>;
  jsonBody?: Record<string, unknown>;
}

export interface AcceptDependencies {
  /** The app's settings, or why they are invalid (every request then gets 503, and nothing is read). */
  settings: IngestSettings | SettingsError;
  storage: { eventsQueue: QueueClient; payloads: ContainerClient; rejected: ContainerClient };
  log: EventLog;
  telemetry?: Telemetry;
  now?: () => Date;
  newEventId?: () => string;
  /**
   * The inline handlers (`decide(…)`) and the effects-once ledger their decisions are kept in.
   * Without them no event is decided inline: every usable one is queued.
   */
  decisions?: { handlers: HandlerRegistry; ledger: TableClient };
}

export type AcceptOutcome =
  | 'accepted'
  | 'rejected-body'
  | 'unauthorized'
  | 'forbidden-organization'
  | 'method-not-allowed'
  | 'too-large'
  | 'storage-unavailable'
  | 'settings-invalid'
  | 'decision-rejected'
  | 'decision-failed'
  | 'decision-timeout';

export interface AcceptResult {
  response: WebhookResponse;
  outcome: AcceptOutcome;
  /** Why a body was refused (the parse error kind), when the outcome alone does not say. */
  reason?: string;
  eventId: string;
  event?: DataverseEvent;
  /** How long the inline handlers took, when any ran. */
  decisionMs?: number;
}

/** Headers worth keeping with an event: what Dataverse sends about it, never credentials. */
const KEPT_HEADER = /^(x-ms-dynamics-|x-ms-correlation-request-id$|x-request-id$)/;

export async function acceptWebhook(request: IncomingWebhook, deps: AcceptDependencies): Promise<AcceptResult> {
  return answered(request, deps, (eventId) => receiveWebhook(request, eventId, deps));
}

/**
 * Any method but POST: 405 with `Allow: POST`, from the route's other function, which is anonymous
 * (the host's 401 would tell a misconfigured sender nothing) and so touches no storage at all.
 */
export async function refuseMethod(
  request: Pick<IncomingWebhook, 'method' | 'headers'>,
  deps: Pick<AcceptDependencies, 'log' | 'telemetry' | 'newEventId'>,
): Promise<AcceptResult> {
  return answered(request, deps, async (eventId) => methodNotAllowed(request.method, eventId));
}

/** Runs one decision and tells telemetry what was received and answered, and how fast. */
async function answered(
  request: Pick<IncomingWebhook, 'headers'>,
  deps: Pick<AcceptDependencies, 'telemetry' | 'newEventId'>,
  decision: (eventId: string) => Promise<AcceptResult>,
): Promise<AcceptResult> {
  const started = process.hrtime.bigint();
  const eventId = (deps.newEventId ?? randomUUID)();
  const telemetry = deps.telemetry ?? NO_TELEMETRY;
  const received = { eventId, correlationRequestId: request.headers.get(DATAVERSE_HEADER_NAMES.correlationRequestId) };
  telemetry.event('received', received);
  const result = await decision(eventId);
  const ackLatencyMs = Number(process.hrtime.bigint() - started) / 1e6;
  if (telemetry === NO_TELEMETRY) return result;
  const ids = result.event ? telemetryIdentifiers(eventId, summarize(result.event)) : received;
  const status = result.response.status;
  // The whole time Dataverse waited, the inline handlers' included; their share beside it.
  const measurements = { ackLatencyMs, ...(result.decisionMs !== undefined ? { decisionMs: result.decisionMs } : {}) };
  if (result.outcome === 'accepted') {
    telemetry.event('accepted', { ...ids, status }, measurements);
    if (result.event?.truncated) telemetry.event('truncated', ids);
  } else {
    telemetry.event('rejected', { ...ids, status, reason: result.reason ?? result.outcome }, measurements);
  }
  telemetry.metric('ackLatencyMs', ackLatencyMs, { status, table: result.event?.primaryEntityName, message: result.event?.messageName });
  return result;
}

function answerWith(eventId: string) {
  return (outcome: AcceptOutcome, status: number, jsonBody: Record<string, unknown>, headers?: Record<string, string>): AcceptResult => ({
    outcome,
    eventId,
    response: { status, jsonBody: { eventId, ...jsonBody }, ...(headers ? { headers } : {}) },
  });
}

function methodNotAllowed(method: string, eventId: string): AcceptResult {
  const result = answerWith(eventId)(
    'method-not-allowed',
    405,
    { error: 'method-not-allowed', message: 'Dataverse webhooks are POSTed' },
    { Allow: 'POST' },
  );
  // A HEAD answer has no body.
  if (method.toUpperCase() === 'HEAD') delete result.response.jsonBody;
  return result;
}

/** What every phase of one request shares. */
interface Reception {
  request: IncomingWebhook;
  eventId: string;
  deps: AcceptDependencies;
  settings: IngestSettings;
  log: EventLog;
  answer: ReturnType<typeof answerWith>;
}

/** One POST, phase by phase: the request's own checks, its body, then the event it carries. */
async function receiveWebhook(request: IncomingWebhook, eventId: string, deps: AcceptDependencies): Promise<AcceptResult> {
  if (request.method.toUpperCase() !== 'POST') return methodNotAllowed(request.method, eventId);
  const answer = answerWith(eventId);
  if (deps.settings instanceof SettingsError) {
    // Reported in full once, when the app started; Dataverse is asked to try again, not told to give up.
    deps.log.error('Webhook not taken: the app settings are invalid (see the start-up log); answering 503', { eventId });
    return answer(
      'settings-invalid',
      503,
      { error: 'settings-invalid', message: 'The receiver is misconfigured; try again later' },
      { 'Retry-After': '1' },
    );
  }
  const reception: Reception = { request, eventId, deps, settings: deps.settings, log: deps.log, answer };
  const refused = checkCredentials(reception);
  if (refused) return refused;
  const body = await readBody(reception);
  if (!Buffer.isBuffer(body)) return body;
  return takeEvent(reception, body);
}

/** The HttpHeader and HttpQueryString credentials: 401 unless each matches one of its values. */
function checkCredentials({ request, settings, eventId, log, answer }: Reception): AcceptResult | null {
  const missing =
    firstMismatch(settings.requiredHeaders, (name) => request.headers.get(name)) ??
    (settings.requiredQuery.length > 0 ? firstMismatch(settings.requiredQuery, queryReader(request.url)) : null);
  if (!missing) return null;
  log.warn('Webhook refused: credentials did not match', { eventId, credential: missing });
  return answer('unauthorized', 401, { error: 'unauthorized', message: 'The request does not carry the expected credentials' });
}

/**
 * The body's bytes, or 413 when it is larger than WEBHOOK_MAX_BODY_BYTES: by its Content-Length
 * before anything is read, else by what is read, which stops at the first chunk past the limit
 * (a chunked body declares no length). What the server then does with the bytes not read is its
 * own: docs/events.md, "Bodies the app does not read".
 */
async function readBody(reception: Reception): Promise<Buffer | AcceptResult> {
  const { request, settings } = reception;
  const declaredLength = Number(request.headers.get('content-length') ?? '0');
  if (declaredLength > settings.maxBodyBytes) return tooLarge(reception);
  const source = request.body();
  const body = isAsyncIterable(source) ? await readAtMost(source, settings.maxBodyBytes) : await source;
  return body === null || body.length > settings.maxBodyBytes ? tooLarge(reception) : body;
}

function isAsyncIterable(source: AsyncIterable<Uint8Array> | Promise<Buffer>): source is AsyncIterable<Uint8Array> {
  return Symbol.asyncIterator in source;
}

/** The chunks' bytes, or null once more than `limit` arrived: leaving the loop early cancels the stream. */
async function readAtMost(chunks: AsyncIterable<Uint8Array>, limit: number): Promise<Buffer | null> {
  const read: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of chunks) {
    size += chunk.byteLength;
    if (size > limit) return null;
    read.push(chunk);
  }
  return Buffer.concat(read, size);
}

/** Parse, check the organization, let the inline handlers decide, store and answer. */
async function takeEvent(reception: Reception, body: Buffer): Promise<AcceptResult> {
  const { request, eventId, deps, settings, log, answer } = reception;
  const receivedAt = (deps.now ?? (() => new Date()))();
  const headers = keptHeaders(request.headers, settings);
  let deadline = new Deadline(settings.storageDeadlineMs);
  // An early claim-check upload may have inline handlers to wait for before its message is sent.
  const inlineAllowanceMs = deps.decisions && deps.decisions.handlers.inline.length > 0 ? decisionsBudgetMs(settings) : 0;
  const uploadDeadline = inlineAllowanceMs > 0 ? new Deadline(settings.storageDeadlineMs + inlineAllowanceMs) : deadline;
  try {
    // A body too large for a queue message goes to Blob storage. The upload starts before parsing
    // and is abandoned if the body is refused; one turn of the event loop puts its request on the
    // wire, so that Azure Storage receives it while this process parses (measured in the bench).
    const claimCheck = body.length > MAX_INLINE_BODY_BYTES ? startClaimCheck(deps.storage.payloads, eventId, body, uploadDeadline) : null;
    if (claimCheck) await new Promise<void>((resolve) => setImmediate(resolve));
    const parsed = parseDataverseWebhook({ body, headers: request.headers });
    if (!parsed.ok) {
      claimCheck?.abandon();
      return await keepRejectedBody(reception, parsed.error, body, headers, receivedAt, deadline);
    }

    const { event } = parsed;
    if (!organizationAllowed(event, settings.allowedOrganizations)) {
      claimCheck?.abandon();
      log.warn('Webhook refused: organization not allowed', {
        eventId,
        organizationId: event.organizationId,
        organization: event.headers.organization,
      });
      return answer('forbidden-organization', 403, { error: 'forbidden', message: 'This organization may not send events here' });
    }

    const summary = summarize(event);
    const ids = logIdentifiers({ eventId, summary });
    const decided = await decideInline(reception, event, summary);
    if (decided) {
      // The storage writes get a deadline of their own, after the inline handlers' time.
      deadline.clear();
      deadline = new Deadline(settings.storageDeadlineMs);
      if (decided.kind !== 'allowed') {
        claimCheck?.abandon();
        recordAfterAnswer(reception, decided, ids);
        return { ...decisionAnswer(reception, decided), event, decisionMs: decided.decisionMs };
      }
    }
    const envelope = (envelopeBody: EnvelopeBody): EventEnvelope => ({
      v: ENVELOPE_VERSION,
      eventId,
      receivedAt: receivedAt.toISOString(),
      headers,
      truncated: event.truncated,
      summary,
      body: envelopeBody,
      replays: 0,
    });
    const decisionMs = decided ? { decisionMs: decided.decisionMs } : {};
    try {
      // The one durable write of an event, whether or not inline handlers decided it.
      const stored = await deadline.bound(enqueue(deps.storage, eventId, body, envelope, claimCheck, deadline));
      log.info('Webhook accepted', { ...ids, claimCheck: stored.claimCheck, bytes: body.length, truncated: event.truncated });
      const decisions = decided && decided.units.length > 0 ? { decisions: decided.units } : {};
      return { ...answer('accepted', 202, { status: 'accepted', ...decisions }), event, ...decisionMs };
    } catch (storageError) {
      log.error('Could not confirm an accepted webhook was stored; answering 503 so Dataverse retries', {
        ...ids,
        reason: describeError(storageError),
      });
      return { ...unavailable(reception), event, ...decisionMs };
    }
  } finally {
    deadline.clear();
    uploadDeadline.clear();
  }
}

/** The inline handlers' decisions for a synchronous event some of them match, or null when none does. */
async function decideInline(
  { deps, settings, eventId, log }: Reception,
  event: DataverseEvent,
  summary: EventSummary,
): Promise<DecisionsResult | null> {
  const decisions = deps.decisions;
  if (!decisions || decisions.handlers.decisionsFor(event).length === 0) return null;
  const limits = { decisionTimeoutMs: settings.decisionTimeoutMs, totalMs: decisionsBudgetMs(settings) };
  return runDecisions(event, { eventId, summary }, limits, {
    handlers: decisions.handlers,
    ledger: decisions.ledger,
    log,
    ...(deps.telemetry ? { telemetry: deps.telemetry } : {}),
  });
}

/**
 * Writes what a failed save was decided on the ledger, once the answer is on its way: nothing
 * waits for it and no copy of the delivery reads it (decide.ts), so a write that fails is logged
 * and changes nothing. Bounded by the storage deadline.
 */
function recordAfterAnswer(
  { settings, log }: Reception,
  decided: Exclude<DecisionsResult, { kind: 'allowed' }>,
  ids: Record<string, string | number | null>,
): void {
  const deadline = new Deadline(settings.storageDeadlineMs);
  void deadline
    .bound(decided.record.write(deadline.signal))
    .catch((error: unknown) => log.warn('Could not record the inline decisions in the ledger', { ...ids, reason: describeError(error) }))
    .finally(() => deadline.clear());
}

/**
 * The answer to an inline handler's decision.
 *
 * What the person whose save fails sees is Dataverse's, not ours: "The system cannot parse any
 * data returned with the body of the response, it will only look at the response StatusCode
 * value" (https://learn.microsoft.com/power-apps/developer/data-platform/use-webhooks#troubleshoot-webhook-registrations),
 * and the published error for it has a fixed text: 0x80050201 WebhooksNonSuccessHttpResponse,
 * "The webhook call failed because the http request received non-success httpStatus code.
 * Please check your webhook request handler." (MicrosoftDocs/powerapps-docs,
 * developer/data-platform/includes/data-service-error-codes.md). A public disassembly of the
 * on-premises Microsoft.Crm.ServiceBus WebhookClient.SendAsync agrees: 200-299 is success, the
 * body is never read, 502/503/504 are retried with the same serialized body, a time-out is not.
 * Not confirmed on Dataverse online. So the body is shaped for whoever does read it (`send`, the
 * logs, a plug-in of one's own calling the app): `message` is the one field meant for a person,
 * `code` and `handler` name the rule, `eventId` finds the ledger row and the telemetry.
 */
function decisionAnswer({ answer }: Reception, decided: Exclude<DecisionsResult, { kind: 'allowed' }>): AcceptResult {
  switch (decided.kind) {
    case 'rejected':
      // Not retried by Dataverse (only 502, 503 and 504 are): the same rule would refuse it again.
      return {
        ...answer('decision-rejected', 422, {
          error: 'rejected',
          handler: decided.handler,
          code: decided.code,
          message: decided.reason,
          decisions: decided.units,
        }),
        reason: 'decision-rejected',
      };
    case 'error':
      // A throw was already retried once, at once (decide.ts): a retry by Dataverse would run it twice more.
      return answer('decision-failed', 500, { error: 'decision-failed', handler: decided.handler, message: 'An inline handler failed' });
    case 'timeout':
      return answer('decision-timeout', 500, {
        error: 'decision-timeout',
        handler: decided.handler,
        message: `An inline handler did not decide within ${decided.limitMs} ms`,
      });
  }
}

/** 400 for a body that can never succeed, once it is kept for inspection; until then 503, so that it is not lost. */
async function keepRejectedBody(
  reception: Reception,
  error: WebhookParseError,
  body: Buffer,
  headers: Record<string, string>,
  receivedAt: Date,
  deadline: Deadline,
): Promise<AcceptResult> {
  const { deps, settings, eventId, log, answer } = reception;
  try {
    const kept = await deadline.bound(
      keepRejected(
        deps.storage.rejected,
        {
          eventId,
          reason: error.kind,
          errors: error.issues.map(formatIssue),
          body,
          headers,
          maxBytes: settings.rejectedMaxBytes,
          receivedAt,
        },
        deadline.signal,
      ),
    );
    log.warn('Webhook rejected: not a usable execution context', {
      eventId,
      reason: error.kind,
      rejectedBlob: kept.name,
      bytes: body.length,
    });
    return { ...answer('rejected-body', 400, error.toJSON()), reason: error.kind };
  } catch (storageError) {
    // Until the body is kept, a 400 would lose it for good: ask Dataverse to send it again.
    log.error('Could not keep a rejected body; answering 503 so Dataverse retries', { eventId, reason: describeError(storageError) });
    return unavailable(reception);
  }
}

/**
 * 413, with the rest of the body left unread: the answer asks for the connection to be closed
 * rather than kept, since keeping it would mean reading (and discarding) the rest first ("the
 * server MAY close the connection", RFC 9110 §15.5.14).
 */
function tooLarge({ settings, eventId, log, answer }: Reception): AcceptResult {
  log.warn('Webhook refused: body too large', { eventId, limit: settings.maxBodyBytes });
  return answer(
    'too-large',
    413,
    { error: 'too-large', message: `The body is larger than ${settings.maxBodyBytes} bytes` },
    { Connection: 'close' },
  );
}

function unavailable({ answer }: Reception): AcceptResult {
  return answer(
    'storage-unavailable',
    503,
    { error: 'storage-unavailable', message: 'The event could not be confirmed as stored; try again' },
    { 'Retry-After': '1' },
  );
}

/**
 * Bodies above this go to Blob storage without trying the queue: base64 makes 4 bytes of every 3,
 * and JSON escaping inside the envelope adds more, so they could never fit in 64 KiB.
 */
export const MAX_INLINE_BODY_BYTES = 40 * 1024;

interface ClaimCheckUpload {
  reference: Promise<BlobReference>;
  /** Nothing refers to the blob (the body was refused, or the message was never written): remove it, best effort. */
  abandon(): void;
}

function startClaimCheck(payloads: ContainerClient, eventId: string, body: Buffer, deadline: Deadline): ClaimCheckUpload {
  const reference = putPayload(payloads, `${eventId}.json`, body, deadline.signal);
  // Awaited later, or never if the body is refused: a failure here is not unhandled.
  reference.catch(() => undefined);
  return {
    reference,
    abandon: () => {
      void reference.then((uploaded) => deletePayload(payloads, uploaded)).catch(() => undefined);
    },
  };
}

/**
 * Inline when the encoded message fits a queue message (64 KiB); otherwise the body is in Blob
 * storage and the message carries a reference to it (claim check).
 *
 * Once the message has been sent, the blob is the body of an event that may well be on the queue
 * (a send whose answer was lost, or aborted by the deadline, may have been written all the same),
 * so it is deleted only when storage refused the message outright; an orphan is left to the
 * lifecycle rule. Before the send, nothing refers to it and it goes at once.
 */
async function enqueue(
  storage: AcceptDependencies['storage'],
  eventId: string,
  body: Buffer,
  envelope: (body: EnvelopeBody) => EventEnvelope,
  startedClaimCheck: ClaimCheckUpload | null,
  deadline: Deadline,
): Promise<{ claimCheck: boolean }> {
  if (!startedClaimCheck) {
    const inline = encodeQueueMessage(envelope({ inline: body.toString('utf8') }));
    if (fitsInQueueMessage(inline)) {
      await sendEncodedQueueMessage(storage.eventsQueue, inline, { abortSignal: deadline.signal });
      return { claimCheck: false };
    }
  }
  // A small body can still overflow once escaped and encoded: then it takes the claim check too.
  const claimCheck = startedClaimCheck ?? startClaimCheck(storage.payloads, eventId, body, deadline);
  let reference: BlobReference;
  try {
    reference = await claimCheck.reference;
    deadline.signal.throwIfAborted();
  } catch (error) {
    claimCheck.abandon();
    throw error;
  }
  try {
    await sendEncodedQueueMessage(storage.eventsQueue, encodeQueueMessage(envelope({ blob: reference })), { abortSignal: deadline.signal });
  } catch (error) {
    if (wasRefused(error)) claimCheck.abandon();
    throw error;
  }
  return { claimCheck: true };
}

function queryReader(url: string): (name: string) => string | null {
  const query = new URL(url).searchParams;
  return (name) => query.get(name);
}

/** Returns the name of the first expected credential that is missing or wrong, or null. */
function firstMismatch(expected: ExpectedCredential[], actual: (name: string) => string | null): string | null {
  for (const credential of expected) {
    const value = actual(credential.name);
    // Every candidate is compared, so the time taken does not reveal which one (or whether any) matched.
    let matched = false;
    for (const candidate of credential.values) matched = constantTimeEquals(value ?? '', candidate) || matched;
    if (value === null || !matched) return credential.name;
  }
  return null;
}

/** Compares digests, so neither the length nor the content of the secret leaks through timing. */
function constantTimeEquals(actual: string, expected: string): boolean {
  const digest = (text: string) => createHash('sha256').update(text, 'utf8').digest();
  return timingSafeEqual(digest(actual), digest(expected));
}

function organizationAllowed(event: DataverseEvent, allowed: string[]): boolean {
  if (allowed.length === 0) return true;
  const candidates = [event.organizationId, event.headers.organization, event.organizationName]
    .filter((value): value is string => value !== null)
    .map((value) => value.toLowerCase());
  return candidates.some((candidate) => allowed.includes(candidate));
}

function keptHeaders(headers: Headers, settings: IngestSettings): Record<string, string> {
  const credentialNames = new Set(settings.requiredHeaders.map((credential) => credential.name.toLowerCase()));
  const kept: Record<string, string> = {};
  headers.forEach((value, name) => {
    const lower = name.toLowerCase();
    if (KEPT_HEADER.test(lower) && !credentialNames.has(lower)) kept[lower] = value;
  });
  return kept;
}
