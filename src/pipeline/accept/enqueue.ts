import type { ContainerClient } from '@azure/storage-blob';
import { type BlobReference, deletePayload, putPayload } from '../../storage/claimCheck';
import { wasRefused } from '../../storage/errors';
import { encodeQueueMessage, fitsInQueueMessage, sendEncodedQueueMessage } from '../../storage/queueMessages';
import type { Deadline } from '../deadline';
import type { EnvelopeBody, EventEnvelope } from '../envelope';
import type { AcceptDependencies } from './types';

/**
 * The one durable write of an accepted event: its envelope on the queue, carrying the body inline,
 * or a reference to it in Blob storage (a claim check) when it is too large for a queue message.
 */

/**
 * Bodies above this go to Blob storage without trying the queue: base64 makes 4 bytes of every 3,
 * and JSON escaping inside the envelope adds more, so they could never fit in 64 KiB.
 */
export const MAX_INLINE_BODY_BYTES = 40 * 1024;

export interface ClaimCheckUpload {
  reference: Promise<BlobReference>;
  /** Nothing refers to the blob (the body was refused, or the message was never written): remove it, best effort. */
  abandon(): void;
}

export function startClaimCheck(payloads: ContainerClient, eventId: string, body: Buffer, deadline: Deadline): ClaimCheckUpload {
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
export async function enqueue(
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
