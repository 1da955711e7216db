import type { AttributeChange } from '../dataverse/accessors';
import type { DataverseEvent, DataverseValue, Entity, ExecutionMode, StageName } from '../dataverse';
import type { DataverseRow } from '../dataverseApi/recordReader';
import type { EventLog } from '../observability/log';

/** What a handler is for. `entity` and `message` take `*` for any; matching ignores case. */
export interface EventFilter {
  entity: string;
  message: string;
  stage?: StageName;
  mode?: ExecutionMode;
}

export interface HandlerOptions extends EventFilter {
  /**
   * The handler's name in the effects-once ledger and in logs. It must stay the same across
   * deployments (a renamed handler runs again for events already handled). Defaults to the
   * function's own name.
   */
  name?: string;
  /**
   * Call the handler once per record of `Targets` (CreateMultiple, UpdateMultiple), each with its
   * own effects-once entry, and once with the Target otherwise. `ctx.record` is the record.
   */
  perRecord?: boolean;
  /** Skip an event older than one this handler already applied to the same record (see README). */
  skipStale?: boolean;
  /**
   * When Dataverse truncated the event (its Target and images removed), read the record again
   * from the Dataverse Web API before calling the handler: `true` for every column, or the
   * columns to read. The row is `ctx.rereadRecord`. Needs DATAVERSE_URL; a failed read is
   * retried like a handler failure.
   */
  rereadTruncated?: boolean | readonly string[];
}

export interface HandlerContext {
  eventId: string;
  /** 1 on the first delivery; the queue's dequeue count after that. */
  deliveryCount: number;
  /**
   * Aborted when the handler's time limit passes (PROCESSOR_HANDLER_TIMEOUT_SECONDS, and never
   * later than the invocation can run): pass it to fetch and the Azure SDKs. A handler that ignores
   * it is no longer waited for, its unit fails and is retried, and its work may still finish later.
   */
  signal: AbortSignal;
  /**
   * The same for every retry, redelivery, replay and Dataverse re-POST of this unit of work (this
   * handler, and this record for `perRecord`), and different for every other: hand it to systems
   * that deduplicate (an `Idempotency-Key` header, a unique column, the id of a row you create).
   * GUID-shaped.
   */
  idempotencyKey: string;
  /** Writes lines that carry the event's identifiers. Never log attribute values. */
  log: EventLog;
  /** The record this call is about: the Target, or one entity of Targets for `perRecord` handlers. */
  record: Entity | null;
  /**
   * The record as the Web API returns it now, for a truncated event and a handler registered with
   * `rereadTruncated`; null otherwise.
   */
  rereadRecord: DataverseRow | null;
  /** What an Update changed, from the pre-image to the Target. */
  changes(preImageAlias?: string): AttributeChange[];
  /** The latest value the event knows for an attribute: Target, then post-image, then pre-image. */
  attribute(name: string): DataverseValue | undefined;
  preImage(alias?: string): Entity | null;
  postImage(alias?: string): Entity | null;
}

export type EventHandler = (event: DataverseEvent, ctx: HandlerContext) => Promise<void> | void;

export interface RegisteredHandler {
  name: string;
  filter: EventFilter;
  perRecord: boolean;
  skipStale: boolean;
  /** Columns to re-read for a truncated event; [] for every column; null for no re-read. */
  rereadColumns: readonly string[] | null;
  handle: EventHandler;
}

/** Ledger row keys may not hold / \ # ? or control characters; names stay readable too. */
const HANDLER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

export class HandlerRegistryError extends Error {
  override readonly name = 'HandlerRegistryError';
}

export class HandlerRegistry {
  private readonly registered: RegisteredHandler[] = [];

  on(options: HandlerOptions, handle: EventHandler): this {
    const name = options.name ?? handle.name;
    if (!HANDLER_NAME.test(name)) {
      throw new HandlerRegistryError(
        name ? `handler name "${name}" may use only letters, digits, ".", "_" and "-"` : `a handler for ${options.entity} ${options.message} needs a name (options.name)`,
      );
    }
    if (this.registered.some((handler) => handler.name === name)) throw new HandlerRegistryError(`two handlers are named "${name}"`);
    const { entity, message, stage, mode } = options;
    this.registered.push({
      name,
      filter: { entity, message, ...(stage ? { stage } : {}), ...(mode ? { mode } : {}) },
      perRecord: options.perRecord ?? false,
      skipStale: options.skipStale ?? false,
      rereadColumns: options.rereadTruncated === true ? [] : options.rereadTruncated ? [...options.rereadTruncated] : null,
      handle,
    });
    return this;
  }

  /** The handlers for an event, in registration order. */
  match(event: DataverseEvent): RegisteredHandler[] {
    return this.registered.filter(({ filter }) => matches(filter, event));
  }

  get all(): readonly RegisteredHandler[] {
    return this.registered;
  }
}

function matches(filter: EventFilter, event: DataverseEvent): boolean {
  const same = (wanted: string, actual: string) => wanted === '*' || wanted.toLowerCase() === actual.toLowerCase();
  return (
    same(filter.entity, event.primaryEntityName) &&
    same(filter.message, event.messageName) &&
    (filter.stage === undefined || filter.stage === event.stageName) &&
    (filter.mode === undefined || filter.mode === event.mode)
  );
}
