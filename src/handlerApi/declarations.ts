import path from 'node:path';
import type { DataverseMessageName, DataverseTableName, PrefixedName } from '../dataverse/knownNames';
import type { TableName } from '../dataverse/tables';
import type { Decider, DecisionOptions, Handler, HandlerOptions, ImageOption } from './index';

/**
 * What `on(…)` and `decide(…)` return: a handler's declaration as a value, which its file exports
 * and src/handlers/index.ts lists. Declaring registers nothing: the app builds its registry from
 * the list (src/handlerApi/load.ts), so a handler runs, and `register` registers its step, only
 * when its file is listed. Each declaration remembers the file that made it, for the one line that
 * names the handler and its file when the registry refuses it.
 */

const DEFINITION = Symbol.for('dataverse-webhooks.handler-definition');

interface Declared {
  readonly [DEFINITION]: true;
  /** The declaring file, from the project's folder (src/handlers/contactChanges.ts); null when unknown. */
  readonly file: string | null;
  /** Declaration order across the process: a file's handlers run in the order it declares them. */
  readonly order: number;
}

export interface ReactingHandler extends Declared {
  readonly kind: 'on';
  readonly options: HandlerOptions;
  readonly handle: Handler;
}

export interface InlineHandler extends Declared {
  readonly kind: 'decide';
  readonly options: DecisionOptions;
  readonly handle: Decider;
}

export type HandlerDefinition = ReactingHandler | InlineHandler;

export function isHandlerDefinition(value: unknown): value is HandlerDefinition {
  return typeof value === 'object' && value !== null && (value as Partial<Declared>)[DEFINITION] === true;
}

let declarations = 0;

export function declared(kind: 'on', options: HandlerOptions, handle: unknown): ReactingHandler;
export function declared(kind: 'decide', options: DecisionOptions, handle: unknown): InlineHandler;
export function declared(kind: 'on' | 'decide', options: HandlerOptions | DecisionOptions, handle: unknown): HandlerDefinition {
  if (typeof handle !== 'function') throw new TypeError(`${kind}(options, handler): the handler must be a function`);
  return Object.freeze({
    [DEFINITION]: true as const,
    kind,
    options,
    handle,
    file: declaringFile(),
    order: ++declarations,
  }) as HandlerDefinition;
}

/** The project's folder: this file runs from src/handlerApi (tests) or dist/src/handlerApi (built). */
const PROJECT_ROOT = ((above) => (path.basename(above) === 'dist' ? path.dirname(above) : above))(path.resolve(__dirname, '..', '..'));

/**
 * The file that called on(…) or decide(…), as the source a user edits: the first frame of the
 * stack outside this folder, from the project's folder, a built file named by its TypeScript source.
 */
function declaringFile(): string | null {
  const frames = (new Error().stack ?? '').split('\n').slice(1);
  for (const frame of frames) {
    const location = /\(?(?:file:\/\/)?((?:[A-Za-z]:)?[\\/][^():]+):\d+:\d+\)?\s*$/.exec(frame.trim())?.[1];
    if (!location || path.dirname(location) === __dirname) continue;
    const relative = path.relative(PROJECT_ROOT, location).split(path.sep).join('/');
    return relative.startsWith('dist/') ? relative.slice('dist/'.length).replace(/\.js$/, '.ts') : relative;
  }
  return null;
}

/**
 * Every option of `on(…)`, and whether `decide(…)` takes it too: the run-time side of
 * HandlerOptions and DecisionOptions, for declarations the compiler did not check (JavaScript,
 * casts). Derived from the types: an option added to, or removed from, either interface and not
 * here (or here with the wrong kind) does not compile.
 */
const OPTIONS = {
  name: 'both',
  entity: 'both',
  message: 'both',
  stage: 'both',
  mode: 'both',
  filteringAttributes: 'both',
  images: 'both',
  perRecord: 'on',
  skipStale: 'on',
  rereadTruncated: 'on',
  reconcile: 'on',
} as const satisfies { readonly [Key in keyof HandlerOptions]-?: Key extends keyof DecisionOptions ? 'both' : 'on' };

/** The options a declaration may have (`on(…)`'s). */
export const OPTION_NAMES: ReadonlySet<string> = new Set(Object.keys(OPTIONS));
/** What `on(…)` takes and `decide(…)` does not: an inline handler decides once per event, now. */
export const REACTING_ONLY_OPTIONS: ReadonlySet<string> = new Set(
  Object.entries(OPTIONS)
    .filter(([, kind]) => kind === 'on')
    .map(([name]) => name),
);
/** An image's options (ImageOption), checked by the compiler the same way. */
export const IMAGE_OPTION_NAMES: ReadonlySet<string> = new Set(
  Object.keys({ type: true, columns: true } as const satisfies { readonly [Key in keyof ImageOption]-?: true }),
);

/** Options the declaration does not know are a compile error, not a silently ignored typo. */
export type KnownOptions<O> = { [Key in Exclude<keyof O, keyof HandlerOptions>]: never };
export type KnownDecisionOptions<O> = { [Key in Exclude<keyof O, keyof DecisionOptions>]: never };

/**
 * What Dataverse refuses, refused by the compiler too (src/dataverse/steps.ts `declarationProblems`
 * refuses the same as the app loads, with the sources). A refused declaration's options miss a
 * property whose name is the reason, so the compiler's message says it:
 * `Property '"Dataverse runs asynchronous steps only in PostOperation…"' is missing`.
 */
export type DeclarationRules<O> = NameRules<O> &
  Rule<
    And<O extends { mode: 'Asynchronous' } ? true : false, EarlyStage<O>>,
    'Dataverse runs asynchronous steps only in PostOperation: declare stage PostOperation, or mode Synchronous'
  > &
  Rule<
    And<Overlaps<ImageKinds<O>, 'PreImage' | 'Both'>, Overlaps<MessagesOf<O>, 'Create'>>,
    'a Create has no pre-image: the row does not exist yet'
  > &
  Rule<
    And<Overlaps<ImageKinds<O>, 'PostImage' | 'Both'>, Overlaps<MessagesOf<O>, 'Delete'>>,
    'a Delete has no post-image: the row no longer exists'
  > &
  Rule<And<Overlaps<ImageKinds<O>, 'PostImage' | 'Both'>, EarlyStage<O>>, 'a post-image needs the PostOperation stage'> &
  Rule<
    And<
      Overlaps<ImageKinds<O>, string>,
      Overlaps<MessagesOf<O>, 'CreateMultiple' | 'UpdateMultiple' | 'UpsertMultiple' | 'DeleteMultiple'>
    >,
    'a bulk message keeps its images where a webhook cannot read them: declare Create or Update (Dataverse raises it for every record)'
  > &
  Rule<
    Or<
      And<Overlaps<MessagesOf<O>, 'Create'>, Overlaps<MessagesOf<O>, 'CreateMultiple'>>,
      And<Overlaps<MessagesOf<O>, 'Update'>, Overlaps<MessagesOf<O>, 'UpdateMultiple'>>
    >,
    'declare Create (or Update) alone: Dataverse raises it for every record of its bulk twin, so the handler would run twice'
  > &
  ReconcileRules<O>;

/** What `reconcile` cannot give (src/dataverse/reconcileRules.ts refuses the same as the app loads). */
type ReconcileRules<O> = O extends { reconcile: true | { readonly columns: readonly string[] } }
  ? Rule<Overlaps<ImageKinds<O>, string>, 'a reconciled call has no images: a handler that reads images does not reconcile'> &
      Rule<
        O extends { filteringAttributes: readonly string[] } ? true : false,
        'change tracking does not say which columns an update set: a reconciling handler declares no filtering attributes'
      > &
      Rule<O extends { entity: '*' } ? true : false, 'reconcile needs the table: change tracking is asked of one named table, not "*"'> &
      Rule<
        Overlaps<Exclude<MessagesOf<O>, 'Create' | 'Update' | 'Delete'>, string>,
        'reconcile applies to Create, Update and Delete, which change tracking reports'
      > &
      Rule<EarlyStage<O>, 'reconcile replays committed changes: declare stage PostOperation (or leave it out)'>
  : unknown;

type Refuse<Reason extends string> = { readonly [Key in Reason]: never };
type Rule<Condition extends boolean, Reason extends string> = Condition extends true ? Refuse<Reason> : unknown;
type And<A extends boolean, B extends boolean> = A extends true ? (B extends true ? true : false) : false;
type Or<A extends boolean, B extends boolean> = A extends true ? true : B;
/** Whether a literal union holds one of these; false when the union is a plain string (nothing is known). */
type Overlaps<Union, Members> = string extends Union ? false : [Extract<Union, Members>] extends [never] ? false : true;
type Listed<T> = T extends readonly (infer Item)[] ? Item : T;
type MessagesOf<O> = O extends { message: infer Message } ? Listed<Message> : never;
type ImageKinds<O> = O extends { images: infer Images }
  ? { [Alias in keyof Images]: Images[Alias] extends { type: infer Kind } ? Kind : never }[keyof Images]
  : never;
type EarlyStage<O> = O extends { stage: 'PreValidation' | 'PreOperation' } ? true : false;

/**
 * A table or message name that is none of Dataverse's (src/dataverse/knownNames.ts), nor the
 * generated module's, nor publisher-prefixed, is a typo: the compiler's message names it
 * (`Property '"entity \"contcat\" is not a Dataverse table…"' is missing`). The app's load check
 * (`declarationProblems`) refuses the same, and names the closest known name.
 */
type NameRules<O> =
  UnknownName<EntityOf<O>, DataverseTableName | TableName | PrefixedName | '*'> extends infer Entity extends string
    ? ([Entity] extends [never]
        ? unknown
        : Refuse<`entity "${Entity}" is not a Dataverse table: check its spelling (a custom table's name carries its publisher prefix: new_project)`>) &
        (UnknownName<MessagesOf<O>, DataverseMessageName | PrefixedName | '*'> extends infer Message extends string
          ? [Message] extends [never]
            ? unknown
            : Refuse<`message "${Message}" is not a Dataverse message: check its spelling (a custom API's name carries its publisher prefix: contoso_Approve)`>
          : unknown)
    : unknown;
/** The literal names outside the known ones; never for a plain string (nothing is known of it). */
type UnknownName<Name, Known> = string extends Name ? never : Exclude<Name, Known>;
type EntityOf<O> = O extends { entity: infer Entity } ? Entity : never;
