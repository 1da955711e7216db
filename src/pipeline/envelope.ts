import { z } from 'zod';
import type { DataverseEvent } from '../dataverse';
import { issueList, zodIssues } from '../dataverse/issues';
import { isGuid } from '../dataverse/rawSchemas';
import type { TelemetryProperties } from '../observability/telemetry';

/**
 * The queue message that carries one accepted webhook from the HTTP function to the processor.
 *
 * It holds the body exactly as received (inline, or in Blob storage when the message would not fit
 * a queue message) and the x-ms-* headers, so the processor rebuilds the very event the HTTP
 * function validated, with the same parser. A summary of identifiers rides along so that logs,
 * dedupe and poison records never need the body.
 */
export const ENVELOPE_VERSION = 1;

const blobReference = z.object({
  container: z.string().min(1),
  name: z.string().min(1),
  size: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
});

const eventSummary = z.object({
  messageName: z.string(),
  primaryEntityName: z.string(),
  primaryEntityId: z.string(),
  stage: z.number().int(),
  mode: z.enum(['Synchronous', 'Asynchronous']).nullable(),
  depth: z.number().int(),
  correlationId: z.string(),
  operationId: z.string().nullable(),
  requestId: z.string().nullable(),
  organizationId: z.string(),
  organizationName: z.string().nullable(),
  owningExtensionId: z.string().nullable(),
  correlationRequestId: z.string().nullable(),
});
export type EventSummary = z.infer<typeof eventSummary>;

export const envelopeSchema = z.object({
  v: z.literal(ENVELOPE_VERSION),
  eventId: z.string().refine(isGuid, 'expected a GUID'),
  receivedAt: z.iso.datetime(),
  headers: z.record(z.string(), z.string()),
  truncated: z.boolean(),
  summary: eventSummary,
  body: z.union([z.object({ inline: z.string() }), z.object({ blob: blobReference })]),
  /** How many times `replay` has put this event back on the queue. */
  replays: z.number().int().nonnegative().default(0),
  /**
   * Set on an event found by reconciliation rather than delivered by Dataverse
   * (src/pipeline/reconcile/): the reconciling handlers it is for, the only ones it runs.
   */
  reconciled: z.object({ handlers: z.array(z.string()) }).optional(),
});
export type EventEnvelope = z.infer<typeof envelopeSchema>;
export type EnvelopeBody = EventEnvelope['body'];

export class InvalidEnvelopeError extends Error {
  override readonly name = 'InvalidEnvelopeError';
}

/** The Functions host hands the queue trigger parsed JSON; tools reading the queue have text or bytes. */
export function parseEnvelope(message: unknown): EventEnvelope {
  let json = message;
  if (Buffer.isBuffer(json)) json = json.toString('utf8');
  if (typeof json === 'string') {
    try {
      json = JSON.parse(json);
    } catch {
      throw new InvalidEnvelopeError('the queue message is not JSON');
    }
  }
  const parsed = envelopeSchema.safeParse(json);
  if (!parsed.success) {
    throw new InvalidEnvelopeError(`the queue message is not an event envelope (${issueList(zodIssues(parsed.error))})`);
  }
  return parsed.data;
}

export function summarize(event: DataverseEvent): EventSummary {
  return {
    messageName: event.messageName,
    primaryEntityName: event.primaryEntityName,
    primaryEntityId: event.primaryEntityId,
    stage: event.stage,
    mode: event.mode,
    depth: event.depth,
    correlationId: event.correlationId,
    operationId: event.operationId,
    requestId: event.requestId,
    organizationId: event.organizationId,
    organizationName: event.organizationName,
    owningExtensionId: event.owningExtension?.id ?? null,
    correlationRequestId: event.headers.correlationRequestId,
  };
}

/** Identifiers for a log line or telemetry item about this event. */
export function logIdentifiers(envelope: Pick<EventEnvelope, 'eventId' | 'summary'>): Record<string, string | number | null> {
  const { summary } = envelope;
  return {
    eventId: envelope.eventId,
    correlationId: summary.correlationId,
    operationId: summary.operationId,
    correlationRequestId: summary.correlationRequestId,
    organization: summary.organizationName ?? summary.organizationId,
    table: summary.primaryEntityName,
    message: summary.messageName,
  };
}

/** The same identifiers for a telemetry item, with the record id. */
export function telemetryIdentifiers(eventId: string, summary: EventSummary): TelemetryProperties {
  return { ...logIdentifiers({ eventId, summary }), recordId: summary.primaryEntityId };
}
