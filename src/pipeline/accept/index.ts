import { randomUUID } from 'node:crypto';
import { DATAVERSE_HEADER_NAMES, type DataverseEvent, parseDataverseWebhook, type WebhookParseError } from '../../dataverse';
import { formatIssue } from '../../dataverse/issues';
import { describeError } from '../../observability/log';
import { NO_TELEMETRY } from '../../observability/telemetry';
import { decisionsBudgetMs, type IngestSettings, SettingsError } from '../../settings';
import { keepRejected } from '../../storage/rejectedStore';
import { Deadline } from '../deadline';
import type { DecisionsResult } from '../decide';
import {
  ENVELOPE_VERSION,
  type EnvelopeBody,
  type EventEnvelope,
  type EventSummary,
  logIdentifiers,
  summarize,
  telemetryIdentifiers,
} from '../envelope';
import {
  accepted,
  answerWith,
  forbiddenOrganization,
  methodNotAllowed,
  rejectedBody,
  settingsInvalid,
  tooLarge,
  unavailable,
} from './answers';
import { checkCredentials } from './credentials';
import { decideInline, decisionAnswer, recordAfterAnswer } from './decisions';
import { type ClaimCheckUpload, enqueue, MAX_INLINE_BODY_BYTES, startClaimCheck } from './enqueue';
import type { AcceptDependencies, AcceptResult, IncomingWebhook, Reception } from './types';

export { MAX_INLINE_BODY_BYTES } from './enqueue';
export type { AcceptDependencies, AcceptOutcome, AcceptResult, IncomingWebhook, WebhookResponse } from './types';

/**
 * Accepting a webhook: check, parse, store durably, answer. One POST, phase by phase: the
 * request's own checks (the method, the app's settings, the credentials: credentials.ts), its body
 * (the size limit), then the event it carries: parsed, its organization checked, decided by the
 * inline handlers that match it (decisions.ts), stored (enqueue.ts), answered. What each case is
 * answered, and why, is answers.ts: the status-code contract (docs/events.md).
 */

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

/** One POST, phase by phase: the request's own checks, its body, then the event it carries. */
async function receiveWebhook(request: IncomingWebhook, eventId: string, deps: AcceptDependencies): Promise<AcceptResult> {
  if (request.method.toUpperCase() !== 'POST') return methodNotAllowed(request.method, eventId);
  const answer = answerWith(eventId);
  if (deps.settings instanceof SettingsError) {
    // Reported in full once, when the app started.
    deps.log.error('Webhook not taken: the app settings are invalid (see the start-up log); answering 503', { eventId });
    return settingsInvalid(answer);
  }
  const reception: Reception = { request, eventId, deps, settings: deps.settings, log: deps.log, answer };
  const refused = checkCredentials(reception);
  if (refused) return refused;
  const body = await readBody(reception);
  if (!Buffer.isBuffer(body)) return body;
  return takeEvent(reception, body);
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
  if (declaredLength > settings.maxBodyBytes) return refuseTooLarge(reception);
  const source = request.body();
  const body = isAsyncIterable(source) ? await readAtMost(source, settings.maxBodyBytes) : await source;
  return body === null || body.length > settings.maxBodyBytes ? refuseTooLarge(reception) : body;
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

/** What one event's intake holds between its phases. */
interface Intake {
  receivedAt: Date;
  /** The request's headers worth keeping with the event. */
  headers: Record<string, string>;
  /** The storage writes' deadline; a new one starts after the inline handlers' time. */
  deadline: Deadline;
  /** An early claim-check upload's: it may have inline handlers to wait for before its message is sent. */
  uploadDeadline: Deadline;
  claimCheck: ClaimCheckUpload | null;
}

/** Parse, check the organization, let the inline handlers decide, store and answer. */
async function takeEvent(reception: Reception, body: Buffer): Promise<AcceptResult> {
  const intake = startIntake(reception, body);
  try {
    // One turn of the event loop puts an early upload's request on the wire, so that Azure Storage
    // receives it while this process parses (measured in the bench).
    if (intake.claimCheck) await new Promise<void>((resolve) => setImmediate(resolve));
    const parsed = parseDataverseWebhook({ body, headers: reception.request.headers });
    if (!parsed.ok) {
      intake.claimCheck?.abandon();
      return await keepRejectedBody(reception, parsed.error, body, intake);
    }
    const { event } = parsed;
    if (!organizationAllowed(event, reception.settings.allowedOrganizations)) return refuseOrganization(reception, intake, event);
    const summary = summarize(event);
    const decided = await decideInline(reception, event, summary);
    if (decided) {
      // The storage writes get a deadline of their own, after the inline handlers' time.
      intake.deadline.clear();
      intake.deadline = new Deadline(reception.settings.storageDeadlineMs);
      if (decided.kind !== 'allowed') {
        intake.claimCheck?.abandon();
        recordAfterAnswer(reception, decided, logIdentifiers({ eventId: reception.eventId, summary }));
        return { ...decisionAnswer(reception, decided), event, decisionMs: decided.decisionMs };
      }
    }
    return await store(reception, intake, body, event, summary, decided);
  } finally {
    intake.deadline.clear();
    intake.uploadDeadline.clear();
  }
}

/**
 * The intake's deadlines, and the claim-check upload of a body too large for a queue message: it
 * starts before parsing and is abandoned if the body is refused.
 */
function startIntake({ request, deps, settings, eventId }: Reception, body: Buffer): Intake {
  const deadline = new Deadline(settings.storageDeadlineMs);
  const inlineAllowanceMs = deps.decisions && deps.decisions.handlers.inline.length > 0 ? decisionsBudgetMs(settings) : 0;
  const uploadDeadline = inlineAllowanceMs > 0 ? new Deadline(settings.storageDeadlineMs + inlineAllowanceMs) : deadline;
  return {
    receivedAt: (deps.now ?? (() => new Date()))(),
    headers: keptHeaders(request.headers, settings),
    deadline,
    uploadDeadline,
    claimCheck: body.length > MAX_INLINE_BODY_BYTES ? startClaimCheck(deps.storage.payloads, eventId, body, uploadDeadline) : null,
  };
}

/** The one durable write of an event, whether or not inline handlers decided it, and its answer. */
async function store(
  { deps, eventId, log, answer }: Reception,
  intake: Intake,
  body: Buffer,
  event: DataverseEvent,
  summary: EventSummary,
  decided: Extract<DecisionsResult, { kind: 'allowed' }> | null,
): Promise<AcceptResult> {
  const ids = logIdentifiers({ eventId, summary });
  const envelope = (envelopeBody: EnvelopeBody): EventEnvelope => ({
    v: ENVELOPE_VERSION,
    eventId,
    receivedAt: intake.receivedAt.toISOString(),
    headers: intake.headers,
    truncated: event.truncated,
    summary,
    body: envelopeBody,
    replays: 0,
  });
  const decisionMs = decided ? { decisionMs: decided.decisionMs } : {};
  try {
    const stored = await intake.deadline.bound(enqueue(deps.storage, eventId, body, envelope, intake.claimCheck, intake.deadline));
    log.info('Webhook accepted', { ...ids, claimCheck: stored.claimCheck, bytes: body.length, truncated: event.truncated });
    return { ...accepted(answer, decided?.units), event, ...decisionMs };
  } catch (storageError) {
    log.error('Could not confirm an accepted webhook was stored; answering 503 so Dataverse retries', {
      ...ids,
      reason: describeError(storageError),
    });
    return { ...unavailable(answer), event, ...decisionMs };
  }
}

/** 400 for a body that can never succeed, once it is kept for inspection; until then 503, so that it is not lost. */
async function keepRejectedBody(reception: Reception, error: WebhookParseError, body: Buffer, intake: Intake): Promise<AcceptResult> {
  const { deps, settings, eventId, log, answer } = reception;
  const { deadline } = intake;
  try {
    const kept = await deadline.bound(
      keepRejected(
        deps.storage.rejected,
        {
          eventId,
          reason: error.kind,
          errors: error.issues.map(formatIssue),
          body,
          headers: intake.headers,
          maxBytes: settings.rejectedMaxBytes,
          receivedAt: intake.receivedAt,
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
    return rejectedBody(answer, error);
  } catch (storageError) {
    // Until the body is kept, a 400 would lose it for good: ask Dataverse to send it again.
    log.error('Could not keep a rejected body; answering 503 so Dataverse retries', { eventId, reason: describeError(storageError) });
    return unavailable(answer);
  }
}

function refuseTooLarge({ settings, eventId, log, answer }: Reception): AcceptResult {
  log.warn('Webhook refused: body too large', { eventId, limit: settings.maxBodyBytes });
  return tooLarge(answer, settings.maxBodyBytes);
}

function refuseOrganization({ eventId, log, answer }: Reception, intake: Intake, event: DataverseEvent): AcceptResult {
  intake.claimCheck?.abandon();
  log.warn('Webhook refused: organization not allowed', {
    eventId,
    organizationId: event.organizationId,
    organization: event.headers.organization,
  });
  return forbiddenOrganization(answer);
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
