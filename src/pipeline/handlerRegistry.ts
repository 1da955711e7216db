import { type DataverseEvent, isEntity, isEntityCollection } from '../dataverse';
import { type ReconcileDeclaration, reconcileDeclaration, reconcileProblems } from '../dataverse/reconcileRules';
import { type DerivedStep, declarationProblems, deriveSteps, type HandlerDeclaration, StepDeclarationError } from '../dataverse/steps';
import type { Context, Decision, DecisionOptions, HandlerContext, HandlerOptions } from '../handlerApi';
import {
  type HandlerDefinition,
  IMAGE_OPTION_NAMES,
  type InlineHandler,
  OPTION_NAMES,
  REACTING_ONLY_OPTIONS,
  type ReactingHandler,
} from '../handlerApi/declarations';

export type {
  Context,
  Decider,
  Decision,
  DecisionOptions,
  Handler,
  HandlerContext,
  HandlerOptions,
  ImageOption,
  PostImageAlias,
  PreImageAlias,
} from '../handlerApi';

/**
 * The handler registry: each handler declares, once, the Dataverse step it needs (table, message,
 * stage, mode, filtering attributes, images) and what the processor should do for it. The
 * processor routes events with `match`, `register` registers `steps`, and the handler's context is
 * typed from the same declaration: an image alias it did not declare does not compile.
 *
 * It is built from declarations only (what `on(…)` and `decide(…)` of src/handlerApi return), by
 * src/handlerApi/load.ts `registryOf`: the app, the CLI, the test kit and the engine's tests all
 * declare handlers the one way a user does.
 */

/** What the processor calls, with the context it builds. */
export type EventHandler = (event: DataverseEvent, ctx: HandlerContext) => Promise<void> | void;

/**
 * What the webhook function calls for an inline handler, with the context it builds. Typed as it
 * is declared; a handler written in JavaScript (or cast) may still return anything, so the caller
 * checks it with `isDecision`.
 */
export type EventDecider = (event: DataverseEvent, ctx: HandlerContext) => Promise<Decision> | Decision | undefined;

export interface RegisteredHandler {
  name: string;
  declaration: HandlerDeclaration;
  perRecord: boolean;
  skipStale: boolean;
  /** Columns to re-read for a truncated event; [] for every column; null for no re-read. */
  rereadColumns: readonly string[] | null;
  /** Also run for changes found by reconciliation (src/pipeline/reconcile/); null when it does not reconcile. */
  reconcile: ReconcileDeclaration | null;
  handle: EventHandler;
}

export interface RegisteredDecider {
  name: string;
  declaration: HandlerDeclaration;
  decide: EventDecider;
}

/** Ledger row keys may not hold / \ # ? or control characters; names stay readable too. */
const HANDLER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

export class HandlerRegistryError extends Error {
  override readonly name = 'HandlerRegistryError';
}

/** A declaration the registry refuses: the reason, and the declaration (which knows its file). */
export class DeclarationRefusedError extends HandlerRegistryError {
  constructor(
    message: string,
    readonly definition: HandlerDefinition,
  ) {
    super(message);
  }
}

export class HandlerRegistry {
  private readonly registered: RegisteredHandler[] = [];
  private readonly deciders: RegisteredDecider[] = [];
  /** Every declaration, reacting and inline, in registration order: the steps' handler lists keep it. */
  private readonly declarations: HandlerDeclaration[] = [];
  private derived: DerivedStep[] = [];

  /**
   * The registry of these declarations, in their order. Throws, as the app loads, a
   * DeclarationRefusedError for the first declaration Dataverse would refuse or that cannot share a
   * step with the handlers before it. `knownTables`: tables known besides Dataverse's own (the
   * generated module's, src/handlerApi/load.ts).
   */
  static of(definitions: Iterable<HandlerDefinition>, options: { knownTables?: readonly string[] } = {}): HandlerRegistry {
    const registry = new HandlerRegistry(options.knownTables ?? []);
    for (const definition of definitions) {
      try {
        if (definition.kind === 'on') registry.on(definition);
        else registry.decide(definition);
      } catch (error) {
        if (error instanceof HandlerRegistryError) throw new DeclarationRefusedError(error.message, definition);
        throw error;
      }
    }
    return registry;
  }

  private constructor(private readonly knownTables: readonly string[]) {}

  /** A reacting handler, for the events its options declare. */
  private on({ options, handle }: ReactingHandler): void {
    const name = handlerName(options, handle, 'a handler');
    this.checkName(name);
    const declaration = declare(name, options);
    const problems = [...declarationProblems(declaration, this.knownTables), ...reconcileProblems(options.reconcile, declaration)];
    if (problems.length > 0) throw new HandlerRegistryError(`handler ${name}: ${problems.join('; ')}`);
    const perRecord = options.perRecord === true;
    this.derived = this.stepsWith(declaration);
    this.registered.push({
      name,
      declaration,
      perRecord,
      skipStale: options.skipStale === true,
      rereadColumns:
        options.rereadTruncated === true
          ? []
          : Array.isArray(options.rereadTruncated)
            ? [...(options.rereadTruncated as readonly string[])]
            : null,
      reconcile: reconcileDeclaration(options.reconcile),
      handle: routedHandler(name, declaration, perRecord, handle as unknown as (event: DataverseEvent, ctx: Context) => void),
    });
    this.declarations.push(declaration);
  }

  /**
   * An inline handler: it runs inside the webhook's HTTP request, before Dataverse gets its answer,
   * and its decision is the answer (allow: the event goes on to the reacting handlers and Dataverse
   * gets 202; reject: the operation fails). Its step is registered as synchronous.
   */
  private decide({ options, handle }: InlineHandler): void {
    const name = handlerName(options, handle, 'an inline handler');
    this.checkName(name);
    const reactingOnly = Object.keys(options).filter((key) => REACTING_ONLY_OPTIONS.has(key));
    if (reactingOnly.length > 0) {
      throw new HandlerRegistryError(
        `handler ${name}: ${reactingOnly.map((key) => `"${key}"`).join(', ')} apply to reacting handlers (on(…)); an inline handler decides once per event`,
      );
    }
    // Left out, the mode is Synchronous: the only one Dataverse waits for.
    const declaration: HandlerDeclaration = { ...declare(name, { mode: 'Synchronous', ...options } as HandlerOptions), inline: true };
    const problems = declarationProblems(declaration, this.knownTables);
    if (problems.length > 0) throw new HandlerRegistryError(`handler ${name}: ${problems.join('; ')}`);
    this.derived = this.stepsWith(declaration);
    this.deciders.push({
      name,
      declaration,
      decide: routedHandler(
        name,
        declaration,
        false,
        handle as unknown as (event: DataverseEvent, ctx: Context) => Promise<Decision> | Decision,
      ),
    });
    this.declarations.push(declaration);
  }

  private checkName(name: string): void {
    if ([...this.registered, ...this.deciders].some((handler) => handler.name === name))
      throw new HandlerRegistryError(`two handlers are named "${name}"`);
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

/** The handler's name (options.name, else the function's own), checked: it keys ledger rows. */
function handlerName(options: HandlerOptions | DecisionOptions, handle: { name: string }, kind: string): string {
  const name = options.name ?? handle.name;
  if (HANDLER_NAME.test(name)) return name;
  throw new HandlerRegistryError(
    name
      ? `handler name "${name}" may use only letters, digits, ".", "_" and "-"`
      : `${kind} for ${String(options.entity)} ${String(options.message)} needs a name (options.name)`,
  );
}

function declare(name: string, options: HandlerOptions): HandlerDeclaration {
  const unknown = Object.keys(options).filter((key) => !OPTION_NAMES.has(key));
  if (unknown.length > 0) throw new HandlerRegistryError(`handler ${name}: unknown option ${unknown.map((key) => `"${key}"`).join(', ')}`);
  if (typeof options.entity !== 'string') throw new HandlerRegistryError(`handler ${name}: entity is the table's logical name`);
  const messages =
    typeof options.message === 'string'
      ? [options.message]
      : Array.isArray(options.message)
        ? [...(options.message as readonly unknown[])]
        : [];
  if (!messages.every((message): message is string => typeof message === 'string'))
    throw new HandlerRegistryError(`handler ${name}: message is a message name or a list of them`);
  const images = Object.entries(options.images ?? {}).map(([alias, image]) => {
    const unknownImageOptions = Object.keys(image).filter((key) => !IMAGE_OPTION_NAMES.has(key));
    if (unknownImageOptions.length > 0)
      throw new HandlerRegistryError(
        `handler ${name}: image "${alias}" has unknown option ${unknownImageOptions.map((key) => `"${key}"`).join(', ')}`,
      );
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
 * What the processor calls for a handler: it keeps a per-record handler's promise that `record` is
 * set, and calls a per-record handler with filtering attributes only for the records that carry one
 * of them (an UpdateMultiple step runs when any record does). The context is the one
 * src/pipeline/handlerContext.ts builds, passed on as it is.
 */
function routedHandler<R>(
  name: string,
  declaration: HandlerDeclaration,
  perRecord: boolean,
  handle: (event: DataverseEvent, ctx: Context) => R,
): (event: DataverseEvent, ctx: HandlerContext) => R | undefined {
  const filtering = declaration.filteringAttributes;
  return (event, ctx) => {
    if (perRecord && !ctx.record) {
      throw new HandlerRegistryError(
        `handler ${name} runs per record, and this ${event.messageName} names no record (a truncated bulk event keeps no record ids)`,
      );
    }
    if (
      perRecord &&
      filtering &&
      ctx.record &&
      !event.truncated &&
      !filtering.some((column) => Object.hasOwn(ctx.record!.attributes, column))
    )
      return undefined;
    return handle(event, ctx as unknown as Context);
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
