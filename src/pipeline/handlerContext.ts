import type { DataverseEvent, Entity } from '../dataverse';
import { attribute, changedAttributes, postImage, preImage } from '../dataverse/accessors';
import type { DataverseRow } from '../dataverseApi/recordReader';
import type { EventLog } from '../observability/log';
import type { HandlerContext } from './handlerRegistry';

/**
 * A handler's context without its signal and idempotency key (the caller adds those). Both paths
 * build it here: the queue path (process.ts) for reacting handlers, the HTTP path (decide.ts) for
 * inline ones, so that neither depends on the other.
 */
export function handlerContext(
  event: DataverseEvent,
  eventId: string,
  record: Entity | null,
  rereadRecord: DataverseRow | null,
  log: EventLog,
  deliveryCount: number,
  /** The event was found by reconciliation, not delivered (src/pipeline/reconcile/). */
  reconciled = false,
): Omit<HandlerContext, 'signal' | 'idempotencyKey'> {
  return {
    eventId,
    deliveryCount,
    reconciled,
    log,
    record,
    rereadRecord,
    changes: (alias) => changedAttributes(event, alias),
    attribute: (name) => attribute(event, name),
    preImage: (alias) => preImage(event, alias),
    postImage: (alias) => postImage(event, alias),
  };
}
