import { createHash } from 'node:crypto';
import { derivedGuid } from '../dataverse/reconciledContext';
import type { EventSummary } from './envelope';

/**
 * The key of one delivery of one step for one operation: the same for every copy of it (Dataverse's
 * retry of a failed POST sends the same context again, and a storage queue may deliver a message
 * twice), different for anything that should run again.
 *
 *  - OwningExtension.Id: the step (sdkmessageprocessingstep) that fired; two steps on the same
 *    operation are two deliveries.
 *  - OperationId and RequestId: the operation. In synchronous captures both are the request's id;
 *    in asynchronous ones OperationId is the system job's id, which Dataverse keeps when it retries
 *    the job, and RequestId is the originating request.
 *  - CorrelationId is shared by the whole chain of operations a user action causes (a handler's own
 *    update of the record comes back with the same CorrelationId at Depth + 1), so it is combined
 *    with Depth, MessageName, Stage and the primary record rather than trusted alone.
 *  - OrganizationId keeps two environments apart.
 *
 * Everything it needs is in the envelope's summary, so a duplicate is recognized without reading
 * the body (whose claim-check blob may already be gone).
 */
export function deliveryKey(summary: EventSummary): string {
  const parts = [
    summary.organizationId,
    summary.owningExtensionId ?? '',
    summary.operationId ?? '',
    summary.requestId ?? '',
    summary.correlationId,
    summary.primaryEntityId,
    summary.messageName,
    String(summary.stage),
    String(summary.depth),
  ].map((part) => part.toLowerCase());
  return createHash('sha256').update(parts.join('|')).digest('hex');
}

/**
 * A handler's idempotency key for one unit of work (the handler, or the handler and one record):
 * the same on every retry, redelivery, replay and Dataverse re-POST of that delivery, different
 * for every other unit. It has the shape of a GUID (RFC 9562 version 8: derived, not random), so
 * it fits where other systems take one, such as the id of a Dataverse row a handler creates: a
 * second create of that row then fails as a duplicate instead of creating it twice.
 */
export function unitIdempotencyKey(deliveryKeyOfEvent: string, unit: string): string {
  return derivedGuid(`${deliveryKeyOfEvent}|${unit.toLowerCase()}`);
}
