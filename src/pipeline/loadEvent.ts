import type { ContainerClient } from '@azure/storage-blob';
import { type DataverseEvent, parseDataverseWebhookOrThrow } from '../dataverse';
import { getPayload } from '../storage/claimCheck';
import type { EventEnvelope } from './envelope';

/** The raw body an envelope carries, from the message itself or from its claim-check blob. */
export async function envelopeBody(envelope: EventEnvelope, payloads: ContainerClient, signal?: AbortSignal): Promise<Buffer> {
  if ('inline' in envelope.body) return Buffer.from(envelope.body.inline, 'utf8');
  const reference = envelope.body.blob;
  if (reference.container !== payloads.containerName) {
    throw new Error(`event ${envelope.eventId} refers to container ${reference.container}, not ${payloads.containerName}`);
  }
  return getPayload(payloads, reference, signal);
}

/** Rebuilds the event the HTTP function accepted: the same bytes and headers through the same parser. */
export async function loadEvent(envelope: EventEnvelope, payloads: ContainerClient, signal?: AbortSignal): Promise<DataverseEvent> {
  return parseDataverseWebhookOrThrow({ body: await envelopeBody(envelope, payloads, signal), headers: envelope.headers });
}
