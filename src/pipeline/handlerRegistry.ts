import { changedAttributes, type AttributeChange } from '../dataverse/accessors';
import { isEntity, isEntityCollection, type DataverseEvent, type DataverseValue, type Entity, type ExecutionMode } from '../dataverse';
import {
  declarationProblems,
  deriveSteps,
  StepDeclarationError,
  type DerivedStep,
  type HandlerDeclaration,
  type ImageType,
  type RegistrableStage,
} from '../dataverse/steps';
import type { DataverseRow } from '../dataverseApi/recordReader';
import type { EventLog } from '../observability/log';
import type { AttributeReader, ChangeOf, DeclaredColumns, ImageOf, RecordOf } from './typedContext';

/**
 * The handler registry: each handler declares, once, the Dataverse step it needs (table, message,
 * stage, mode, filtering attributes, images) and what the processor should do for it. The
 * processor routes events with `match`, `register` registers `steps`, and the handler's context is
 * typed from the same declaration: an image alias it did not declare does not compile.
 */

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
  /** The table's logical name; `*` for any table (such a handler registers no step: it sees the others'). */
  entity: string;
  /**
   * The SDK message, or several (`['Create', 'Update']`). Declare Create or Update, not also
   * CreateMultiple or UpdateMultiple: Dataverse raises the single-record event for every record of
   * a bulk operation (see the README). `*` for any message (registers no step).
   */
  message: string | readonly string[];
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
}

/**
 * The context the processor builds for every call (src/pipeline/process.ts). Handlers see it
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

/**
 * A handler's context, typed from its declaration `O`: `record` is an Entity for `perRecord`
 * handlers, the image accessors take only the declared aliases of their kind, and, with
 * `rereadTruncated`, `rereadRecord` is a row whenever `truncated` is true.
 */
export type Context<O extends HandlerOptions = HandlerOptions> = Omit<HandlerContext, 'record' | 'rereadRecord' | 'changes' | 'preImage' | 'postImage' | 'attribute'> & {
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
} & Reread<O>;

export type Handler<O extends HandlerOptions = HandlerOptions> = (event: DataverseEvent, ctx: Context<O>) => Promise<void> | void;

/** What the processor calls, with the context it builds. */
export type EventHandler = (event: DataverseEvent, ctx: HandlerContext) => Promise<void> | void;

/**
 * An inline handler's declaration (`decide(…)`): a step Dataverse waits for. The stage is required
 * (PreValidation cancels before the database transaction; PreOperation and PostOperation roll it
 * back) and the mode is Synchronous; an inline handler runs once per event, so the per-record,
 * stale and re-read options of `on(…)` do not apply.
 */
export interface DecisionOptions extends Omit<HandlerOptions, 'stage' | 'mode' | 'perRecord' | 'skipStale' | 'rereadTruncated'> {
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
  return decision.outcome === 'allow' || (decision.outcome === 'reject' && typeof decision.reason === 'string' && typeof decision.code === 'string');
}

/** An inline handler: the same typed event and context as `on(…)`'s, and it returns its decision. */
export type Decider<O extends DecisionOptions = DecisionOptions> = (event: DataverseEvent, ctx: Context<O>) => Promise<Decision> | Decision;

/**
 * What the webhook function calls for an inline handler, with the context it builds. Typed as it
 * is declared; a handler written in JavaScript (or cast) may still return anything, so the caller
 * checks it with `isDecision`.
 */
export type EventDecider = (event: DataverseEvent, ctx: HandlerContext) => Promise<Decision> | Decision | undefined;

/** Options the declaration does not know are a compile error, not a silently ignored typo. */
type KnownOptions<O> = { [Key in Exclude<keyof O, keyof HandlerOptions>]: never };
type KnownDecisionOptions<O> = { [Key in Exclude<keyof O, keyof DecisionOptions>]: never };

export interface RegisteredHandler {
  name: string;
  declaration: HandlerDeclaration;
  perRecord: boolean;
  skipStale: boolean;
  /** Columns to re-read for a truncated event; [] for every column; null for no re-read. */
  rereadColumns: readonly string[] | null;
  handle: EventHandler;
}

export interface RegisteredDecider {
  name: string;
  declaration: HandlerDeclaration;
  decide: EventDecider;
}

/** Ledger row keys may not hold / \ # ? or control characters; names stay readable too. */
const HANDLER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;
const OPTION_NAMES = new Set(['name', 'entity', 'message', 'stage', 'mode', 'filteringAttributes', 'images', 'perRecord', 'skipStale', 'rereadTruncated']);
/** What `on(…)` takes and `decide(…)` does not: an inline handler decides once per event, now. */
const REACTING_ONLY_OPTIONS = new Set(['perRecord', 'skipStale', 'rereadTruncated']);
const IMAGE_OPTION_NAMES = new Set(['type', 'columns']);

export class HandlerRegistryError extends Error {
  override readonly name = 'HandlerRegistryError';
}

export class HandlerRegistry {
  private readonly registered: RegisteredHandler[] = [];
  private readonly deciders: RegisteredDecider[] = [];
  /** Every declaration, reacting and inline, in registration order: the steps' handler lists keep it. */
  private readonly declarations: HandlerDeclaration[] = [];
  private derived: DerivedStep[] = [];

  /**
   * Registers a handler for the events its options declare. Throws, as the app loads, on a
   * declaration Dataverse would refuse or that cannot share a step with the handlers before it.
   */
  on<const O extends HandlerOptions>(options: O & KnownOptions<O> & DeclaredColumns<O>, handle: Handler<O>): this {
    const name = options.name ?? handle.name;
    const label = name || `a handler for ${String(options.entity)} ${String(options.message)}`;
    if (!HANDLER_NAME.test(name)) {
      throw new HandlerRegistryError(name ? `handler name "${name}" may use only letters, digits, ".", "_" and "-"` : `${label} needs a name (options.name)`);
    }
    this.checkName(name);
    const declaration = declare(name, options);
    const problems = declarationProblems(declaration);
    if (problems.length > 0) throw new HandlerRegistryError(`handler ${name}: ${problems.join('; ')}`);

    const registered: RegisteredHandler = {
      name,
      declaration,
      perRecord: options.perRecord === true,
      skipStale: options.skipStale === true,
      rereadColumns: options.rereadTruncated === true ? [] : Array.isArray(options.rereadTruncated) ? [...(options.rereadTruncated as readonly string[])] : null,
      handle: typedHandler(name, declaration, options.perRecord === true, handle as Handler),
    };
    this.derived = this.stepsWith(registered.declaration);
    this.registered.push(registered);
    this.declarations.push(registered.declaration);
    return this;
  }

  /**
   * Registers an inline handler: it runs inside the webhook's HTTP request, before Dataverse gets
   * its answer, and its decision is the answer (allow: the event goes on to the reacting handlers
   * and Dataverse gets 202; reject: the operation fails). Its step is registered as synchronous.
   * Throws, as the app loads, on a step Dataverse does not wait for.
   */
  decide<const O extends DecisionOptions>(options: O & KnownDecisionOptions<O> & DeclaredColumns<O>, handle: Decider<O>): this {
    const name = options.name ?? handle.name;
    const label = name || `an inline handler for ${String(options.entity)} ${String(options.message)}`;
    if (!HANDLER_NAME.test(name)) {
      throw new HandlerRegistryError(name ? `handler name "${name}" may use only letters, digits, ".", "_" and "-"` : `${label} needs a name (options.name)`);
    }
    this.checkName(name);
    const reactingOnly = Object.keys(options).filter((key) => REACTING_ONLY_OPTIONS.has(key));
    if (reactingOnly.length > 0) {
      throw new HandlerRegistryError(`handler ${name}: ${reactingOnly.map((key) => `"${key}"`).join(', ')} apply to reacting handlers (on(…)); an inline handler decides once per event`);
    }
    // Left out, the mode is Synchronous: the only one Dataverse waits for.
    const declaration: HandlerDeclaration = { ...declare(name, { mode: 'Synchronous', ...options } as HandlerOptions), inline: true };
    const problems = declarationProblems(declaration);
    if (problems.length > 0) throw new HandlerRegistryError(`handler ${name}: ${problems.join('; ')}`);
    const registered: RegisteredDecider = { name, declaration, decide: typedHandler(name, declaration, false, handle as unknown as (event: DataverseEvent, ctx: Context) => Promise<Decision> | Decision) };
    this.derived = this.stepsWith(declaration);
    this.deciders.push(registered);
    this.declarations.push(declaration);
    return this;
  }

  private checkName(name: string): void {
    if ([...this.registered, ...this.deciders].some((handler) => handler.name === name)) throw new HandlerRegistryError(`two handlers are named "${name}"`);
  }

  /** The steps with one more declaration, or why it cannot share a step with the others. */
  private stepsWith(declaration: HandlerDeclaration): DerivedStep[] {
    try {
      return deriveSteps([...this.declarations, declaration]);
    } catch (error) {
      if (error instanceof StepDeclarationError) throw new HandlerRegistryError(error.message);
      throw error;
    }
  }

  /** The reacting handlers for an event, in registration order. */
  match(event: DataverseEvent): RegisteredHandler[] {
    return this.registered.filter(({ declaration }) => matches(declaration, event));
  }

  /** The inline handlers for an event, in registration order: only ever for a synchronous one. */
  decisionsFor(event: DataverseEvent): RegisteredDecider[] {
    return this.deciders.filter(({ declaration }) => matches(declaration, event));
  }

  /** The reacting handlers (`on(…)`). */
  get all(): readonly RegisteredHandler[] {
    return this.registered;
  }

  /** The inline handlers (`decide(…)`). */
  get inline(): readonly RegisteredDecider[] {
    return this.deciders;
  }

  /** The steps Dataverse must have for these handlers: what `register` registers. */
  get steps(): readonly DerivedStep[] {
    return this.derived;
  }
}

function declare(name: string, options: HandlerOptions): HandlerDeclaration {
  const unknown = Object.keys(options).filter((key) => !OPTION_NAMES.has(key));
  if (unknown.length > 0) throw new HandlerRegistryError(`handler ${name}: unknown option ${unknown.map((key) => `"${key}"`).join(', ')}`);
  if (typeof options.entity !== 'string') throw new HandlerRegistryError(`handler ${name}: entity is the table's logical name`);
  const messages = typeof options.message === 'string' ? [options.message] : Array.isArray(options.message) ? [...(options.message as readonly unknown[])] : [];
  if (!messages.every((message): message is string => typeof message === 'string')) throw new HandlerRegistryError(`handler ${name}: message is a message name or a list of them`);
  const images = Object.entries(options.images ?? {}).map(([alias, image]) => {
    const unknownImageOptions = Object.keys(image).filter((key) => !IMAGE_OPTION_NAMES.has(key));
    if (unknownImageOptions.length > 0) throw new HandlerRegistryError(`handler ${name}: image "${alias}" has unknown option ${unknownImageOptions.map((key) => `"${key}"`).join(', ')}`);
    return { alias, type: image.type, columns: image.columns === undefined ? null : [...image.columns] };
  });
  return {
    handler: name,
    entity: options.entity === '*' ? '*' : options.entity,
    messages,
    stage: options.stage ?? null,
    mode: options.mode ?? null,
    filteringAttributes: options.filteringAttributes === undefined ? null : [...options.filteringAttributes],
    images,
  };
}

/**
 * Wraps the typed handler in what the processor calls: it adds `truncated`, keeps a per-record
 * handler's promise that `record` is set, and calls a per-record handler with filtering attributes
 * only for the records that carry one of them (an UpdateMultiple step runs when any record does).
 */
function typedHandler<R>(name: string, declaration: HandlerDeclaration, perRecord: boolean, handle: (event: DataverseEvent, ctx: Context) => R): (event: DataverseEvent, ctx: HandlerContext) => R | undefined {
  const filtering = declaration.filteringAttributes;
  return (event, ctx) => {
    if (perRecord && !ctx.record) {
      throw new HandlerRegistryError(`handler ${name} runs per record, and this ${event.messageName} names no record (a truncated bulk event keeps no record ids)`);
    }
    if (perRecord && filtering && ctx.record && !event.truncated && !filtering.some((column) => Object.hasOwn(ctx.record!.attributes, column))) return undefined;
    // Without an alias, changes compare with no image: the typed context takes none unless one was declared.
    const changes = (alias?: string) => (alias === undefined ? changedAttributes(event, null) : ctx.changes(alias));
    // Built on the processor's context (its prototype), so every field it has reaches the handler as it is.
    const typed: HandlerContext & { truncated: boolean } = Object.assign(Object.create(ctx) as HandlerContext, { changes, truncated: event.truncated });
    return handle(event, typed as unknown as Context);
  };
}

function matches(declaration: HandlerDeclaration, event: DataverseEvent): boolean {
  const same = (wanted: string, actual: string) => wanted === '*' || wanted.toLowerCase() === actual.toLowerCase();
  return (
    same(declaration.entity, event.primaryEntityName) &&
    declaration.messages.some((message) => same(message, event.messageName)) &&
    (declaration.stage === null || declaration.stage === event.stageName) &&
    (declaration.mode === null || declaration.mode === event.mode) &&
    carriesFilteredColumn(declaration.filteringAttributes, event)
  );
}

/**
 * Handlers that share a step share its filtering attributes, so each one checks its own, as
 * Dataverse does for a step: an Update whose Target (any record of Targets) carries none of them
 * is not for it. A truncated event has no Target to look at and is delivered.
 */
function carriesFilteredColumn(filtering: readonly string[] | null, event: DataverseEvent): boolean {
  if (filtering === null || event.truncated) return true;
  const targets = event.inputParameters['Targets'];
  const records = isEntityCollection(targets) ? targets.entities : isEntity(event.target) ? [event.target] : [];
  if (records.length === 0) return true;
  return records.some((record) => filtering.some((column) => Object.hasOwn(record.attributes, column)));
}
