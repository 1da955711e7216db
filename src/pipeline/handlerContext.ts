import type { DataverseEvent, Entity } from '../dataverse';
import { attribute, changedAttributes, postImage, preImage } from '../dataverse/accessors';
import type { DataverseRow } from '../dataverseApi/recordReader';
import type { HandlerContext } from '../handlerApi';
import type { EventLog } from '../observability/log';

/** What a handler's context is made of: the call's own facts, the rest is read from the event. */
export interface HandlerContextOptions {
  event: DataverseEvent;
  eventId: string;
  /** The record this call is about: the Target, or one record of Targets for a per-record handler. */
  record: Entity | null;
  /** The record read again from the Web API (a truncated event, `rereadTruncated`); default none. */
  rereadRecord?: DataverseRow | null;
  /** Lines that carry the event's identifiers (and the handler's, the record's). */
  log: EventLog;
  /** Which attempt this is (see HandlerContext.deliveryCount). */
  deliveryCount: number;
  /** The event was found by reconciliation, not delivered (src/pipeline/reconcile/); default false. */
  reconciled?: boolean;
  signal: AbortSignal;
  idempotencyKey: string;
}

/**
 * A handler's context, whole: the one place it is built, for every path that calls a handler (the
 * queue path, process.ts, for reacting handlers; the HTTP path, decide.ts, for inline ones; the test
 * kit, src/handlerApi/testing.ts), so a field added to HandlerContext is added here, once.
 */
export function handlerContext(options: HandlerContextOptions): HandlerContext {
  const { event } = options;
  return {
    eventId: options.eventId,
    deliveryCount: options.deliveryCount,
    signal: options.signal,
    idempotencyKey: options.idempotencyKey,
    reconciled: options.reconciled ?? false,
    truncated: event.truncated,
    log: options.log,
    record: options.record,
    rereadRecord: options.rereadRecord ?? null,
    // Without an alias, changes compare with no image: the typed context takes none unless one was declared.
    changes: (alias) => changedAttributes(event, alias ?? null),
    attribute: (name) => attribute(event, name),
    preImage: (alias) => preImage(event, alias),
    postImage: (alias) => postImage(event, alias),
  };
}
