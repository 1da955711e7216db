import type { DataverseEvent, DataverseValue, Entity, ExecutionMode } from '../dataverse';
import type { AttributeChange } from '../dataverse/accessors';
import type { DataverseMessageName, DataverseTableName } from '../dataverse/knownNames';
import type { ImageType, RegistrableStage } from '../dataverse/steps';
import type { TableName } from '../dataverse/tables';
import type { DataverseRow } from '../dataverseApi/recordReader';
import type { EventLog } from '../observability/log';
import type { AttributeReader, ChangeOf, DeclaredColumns, ImageOf, RecordOf } from '../pipeline/typedContext';
import {
  type DeclarationRules,
  declared,
  type InlineHandler,
  type KnownDecisionOptions,
  type KnownOptions,
  type ReactingHandler,
} from './declarations';

/**
 * The handler API: everything a handler file imports, in one file.
 *
 *   import { on, decide, allow, reject } from '../handlerApi';
 *
 *   export const contactChanges = on({ entity: 'contact', message: 'Update', … }, async (event, ctx) => { … });
 *
 * A handler file exports what `on(…)` and `decide(…)` return, and src/handlers/index.ts lists the
 * file: nothing registers by being imported, and a test fails on a file of src/handlers that
 * declares handlers and is not listed (test/handlerApi/wiring.test.ts). The declaration is also
 * the handler's Dataverse step (what `register` registers), and its `ctx` is typed from it.
 * Testing a handler: src/handlerApi/testing.ts.
 *
 * The machinery behind it (the registry that routes events and derives steps, the loader of the
 * app's handlers) is in src/pipeline/handlerRegistry.ts and src/handlerApi/load.ts; a user never
 * imports it.
 */

export type {
  DataverseEvent,
  DataverseValue,
  Entity,
  EntityReference,
  Money,
  OptionSetValue,
  OptionSetValueCollection,
} from '../dataverse';
export { isEntity, isEntityCollection, isEntityReference } from '../dataverse';
export type { AttributeChange } from '../dataverse/accessors';
export type { ImageType, RegistrableStage } from '../dataverse/steps';
export type { DataverseRow } from '../dataverseApi/recordReader';
export type { EventLog } from '../observability/log';
export type { HandlerDefinition, InlineHandler, ReactingHandler } from './declarations';

/** A name that autocompletes from a list and still takes any other (a custom API, a custom table). */
export type Named<Known extends string> = Known | (string & {});

/**
 * Dataverse's own SDK messages (src/dataverse/knownNames.ts): they autocomplete, and a name that
 * is neither one of them nor publisher-prefixed (a custom API's unique name, `contoso_Approve`)
 * does not compile. Declare Create or Update rather than their bulk twins (see below).
 */
export type MessageName = DataverseMessageName;

/**
 * Dataverse's own tables and the generated module's: they autocomplete, and a name that is none
 * of them nor publisher-prefixed (a custom table, `new_project`) does not compile.
 */
export type EntityName = DataverseTableName | TableName;

/** An image the step takes of the record, under an alias (the key of `images`). */
export interface ImageOption {
  type: ImageType;
  /** The columns it holds. Leave out for every column (a larger payload). */
  columns?: readonly string[];
}

export interface HandlerOptions {
  /**
   * The handler's name in the effects-once ledger and in logs. It must stay the same across
   * deployments (a renamed handler runs again for events already handled). Defaults to the
   * function's own name.
   */
  name?: string;
  /**
   * The table's logical name; `*` for any table (such a handler registers no step: it sees the
   * others'). Dataverse's own tables, the generated ones, or a custom table's prefixed name.
   */
  entity: Named<EntityName | '*'>;
  /**
   * The SDK message, or several (`['Create', 'Update']`). Declare Create or Update, not also
   * CreateMultiple or UpdateMultiple: Dataverse raises the single-record event for every record of
   * a bulk operation (see the README). `*` for any message (registers no step).
   */
  message: Named<MessageName | '*'> | readonly Named<MessageName | '*'>[];
  /** Default PostOperation. Left out, the handler also receives events of other stages on its table and message. */
  stage?: RegistrableStage;
  /** Default Asynchronous in PostOperation, Synchronous before it. */
  mode?: ExecutionMode;
  /** Update and UpdateMultiple: run only when one of these columns is in the Target. Left out: every Update. */
  filteringAttributes?: readonly string[];
  /** The images the handler reads, by alias: `{ pre: { type: 'PreImage', columns: ['name'] } }`. */
  images?: { readonly [alias: string]: ImageOption };
  /**
   * Call the handler once per record of `Targets` (CreateMultiple, UpdateMultiple), each with its
   * own effects-once entry, and once with the Target otherwise. `ctx.record` is then never null.
   */
  perRecord?: boolean;
  /** Skip an event older than one this handler already applied to the same record (see README). */
  skipStale?: boolean;
  /**
   * When Dataverse truncated the event (its Target and images removed), read the record again
   * from the Dataverse Web API before calling the handler: `true` for every column, or the
   * columns to read. The row is `ctx.rereadRecord` when `ctx.truncated`. Needs DATAVERSE_URL; a
   * failed read is retried like a handler failure.
   */
  rereadTruncated?: boolean | readonly string[];
  /**
   * Also run for the changes Dataverse gave up delivering (the app was unreachable, its step's
   * System Jobs failed), found through Dataverse change tracking (docs/reconcile.md): `true`, the
   * reconciled Target holding every column, or `{ columns: [...] }`. A reconciled call has
   * `ctx.reconciled` true, the record's current state and no images: Create, Update and Delete of a
   * named table only, no images and no filtering attributes, PostOperation.
   */
  reconcile?: true | { readonly columns: readonly string[] };
}

/**
 * The context built for every call (src/pipeline/handlerContext.ts). Handlers see it
 * through `Context<Options>`, which narrows it by their declaration; a field added here (the
 * handler's AbortSignal, its idempotency key) reaches every handler's context as it is.
 */
export interface HandlerContext {
  eventId: string;
  /**
   * Which attempt this is: 1 on the first run; after that the ledger's count of this handler's runs
   * for the event (each failed, timed-out or dead one, whichever queue message carried it), or the
   * queue's dequeue count when that is higher.
   */
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
  /**
   * True when the event was not delivered by Dataverse but found by reconciliation (a handler
   * declared with `reconcile`): the Target is the record as it is now, with no images and no exact
   * change set (docs/reconcile.md).
   */
  reconciled: boolean;
  /** Dataverse removed the Target and images (the payload was above 256 KB); see `Context`, which ties it to `rereadRecord`. */
  truncated: boolean;
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

/** The aliases of the declared images of one kind. */
type AliasOf<O, Kind extends ImageType> = O extends { images: infer Images }
  ? { [Alias in keyof Images]: Images[Alias] extends { type: Kind } ? Alias : never }[keyof Images] & string
  : never;
export type PreImageAlias<O> = AliasOf<O, 'PreImage' | 'Both'>;
export type PostImageAlias<O> = AliasOf<O, 'PostImage' | 'Both'>;

/**
 * `ctx.truncated`: Dataverse removed the Target and images (the payload was above 256 KB). It also
 * tells whether `ctx.rereadRecord` was read: only truncated events are read again.
 */
type Reread<O> = O extends { rereadTruncated: true | readonly string[] }
  ? { truncated: true; rereadRecord: DataverseRow } | { truncated: false; rereadRecord: null }
  : O extends { rereadTruncated: false }
    ? { truncated: boolean; rereadRecord: null }
    : O extends { rereadTruncated: boolean }
      ? { truncated: boolean; rereadRecord: DataverseRow | null }
      : { truncated: boolean; rereadRecord: null };

/** `ctx.reconciled`: only a handler declared with `reconcile` is ever called for a reconciled change. */
type Reconciled<O> = O extends { reconcile: true | { readonly columns: readonly string[] } }
  ? { reconciled: boolean }
  : { reconciled: false };

/**
 * A handler's context, typed from its declaration `O`: `record` is an Entity for `perRecord`
 * handlers, the image accessors take only the declared aliases of their kind, and, with
 * `rereadTruncated`, `rereadRecord` is a row whenever `truncated` is true.
 */
export type Context<O extends HandlerOptions = HandlerOptions> = Omit<
  HandlerContext,
  'record' | 'rereadRecord' | 'changes' | 'preImage' | 'postImage' | 'attribute' | 'reconciled' | 'truncated'
> & {
  /** Typed by the table's columns when the generated table types know it (src/pipeline/typedContext.ts). */
  record: O extends { perRecord: true } ? RecordOf<O> : RecordOf<O> | null;
  /**
   * What an Update changed, from the declared pre-image named; a handler that declares no pre-image
   * calls it without one, and every column of the Target is a change.
   */
  changes(...preImage: [PreImageAlias<O>] extends [never] ? [] : [alias: PreImageAlias<O>]): ChangeOf<O>[];
  /** A declared pre-image, with the columns it declares; null when the event has none (a truncated event has no images). */
  preImage<Alias extends PreImageAlias<O>>(alias: Alias): ImageOf<O, Alias> | null;
  /** A declared post-image, with the columns it declares; null when the event has none. */
  postImage<Alias extends PostImageAlias<O>>(alias: Alias): ImageOf<O, Alias> | null;
  /** The latest value the event knows for an attribute: Target, then post-image, then pre-image. */
  attribute: AttributeReader<O>;
} & Reread<O> &
  Reconciled<O>;

/** A reacting handler: what `on(…)` calls, with the event and its typed context. */
export type Handler<O extends HandlerOptions = HandlerOptions> = (event: DataverseEvent, ctx: Context<O>) => Promise<void> | void;

/**
 * An inline handler's declaration (`decide(…)`): a step Dataverse waits for. The stage is required
 * (PreValidation cancels before the database transaction; PreOperation and PostOperation roll it
 * back) and the mode is Synchronous; an inline handler runs once per event, so the per-record,
 * stale, re-read and reconcile options of `on(…)` do not apply (its save already happened, or did not).
 */
export interface DecisionOptions
  extends Omit<HandlerOptions, 'stage' | 'mode' | 'perRecord' | 'skipStale' | 'rereadTruncated' | 'reconcile'> {
  stage: RegistrableStage;
  /** Always Synchronous: Dataverse does not wait for an asynchronous step. */
  mode?: 'Synchronous';
}

/** What an inline handler decides. Make one with `allow()` or `reject(reason)`. */
export type Decision = { readonly outcome: 'allow' } | { readonly outcome: 'reject'; readonly reason: string; readonly code: string };

const ALLOWED: Decision = Object.freeze({ outcome: 'allow' });
/** The longest rejection reason kept: what a person reads, not a report. */
export const MAX_REASON_LENGTH = 1_000;
const REASON_CODE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** The operation goes on: the event is queued for the reacting handlers and Dataverse gets 202. */
export function allow(): Decision {
  return ALLOWED;
}

/**
 * The operation fails. `reason` is meant for the person whose save fails; it is kept with the
 * rejection and returned in the answer's body (Dataverse itself shows a fixed message of its own:
 * see the README). `code`, a short identifier such as `credit-limit-exceeded`, is what logs and
 * telemetry carry, since the reason may hold the record's values.
 */
export function reject(reason: string, options: { code?: string } = {}): Decision {
  const text = typeof reason === 'string' ? reason.trim() : '';
  if (!text) throw new TypeError('reject(reason) needs a reason for the person whose save fails');
  const code = options.code ?? 'rejected';
  if (!REASON_CODE.test(code)) throw new TypeError(`reject's code "${code}" may use only letters, digits, ".", "_" and "-" (at most 64)`);
  return Object.freeze({ outcome: 'reject', reason: text.slice(0, MAX_REASON_LENGTH), code });
}

export function isDecision(value: unknown): value is Decision {
  if (typeof value !== 'object' || value === null) return false;
  const decision = value as { outcome?: unknown; reason?: unknown; code?: unknown };
  return (
    decision.outcome === 'allow' ||
    (decision.outcome === 'reject' && typeof decision.reason === 'string' && typeof decision.code === 'string')
  );
}

/** An inline handler: the same typed event and context as `on(…)`'s, and it returns its decision. */
export type Decider<O extends DecisionOptions = DecisionOptions> = (event: DataverseEvent, ctx: Context<O>) => Promise<Decision> | Decision;

/**
 * Declares a reacting handler: it runs later, from the queue, once the event is stored durably,
 * for the events of the step its options declare. Export what it returns from a file of
 * src/handlers listed in src/handlers/index.ts. What Dataverse would refuse (an asynchronous step
 * before PostOperation, a pre-image on Create, a post-image on Delete or before PostOperation,
 * images on a bulk message, Create with CreateMultiple) does not compile, and the app refuses it
 * as it loads, with one line naming the handler and its file.
 */
export function on<const O extends HandlerOptions>(
  options: O & KnownOptions<O> & DeclaredColumns<O> & DeclarationRules<O>,
  handle: Handler<O>,
): ReactingHandler {
  return declared('on', options, handle);
}

/**
 * Declares an inline handler: it runs inside the webhook's request, before Dataverse gets its
 * answer, and returns `allow()` or `reject(reason)`. Synchronous steps only (the stage is
 * required; the mode is Synchronous), so an asynchronous one does not compile.
 */
export function decide<const O extends DecisionOptions>(
  options: O & KnownDecisionOptions<O> & DeclaredColumns<O> & DeclarationRules<O>,
  handle: Decider<O>,
): InlineHandler {
  return declared('decide', options, handle);
}
