/**
 * Dataverse's vocabulary for SDK message processing steps, in one place: the stage, mode and image
 * type numbers, the rules Dataverse applies to a step, and how the steps a set of handlers need are
 * derived from what each handler declares. The handler registry checks declarations with it when
 * the app loads, `register` writes what it derives, and `status` compares Dataverse with it.
 * No Azure and no network: usable alone.
 */

import { messageNameProblem, tableNameProblem } from './knownNames';

export type StageName = 'PreValidation' | 'PreOperation' | 'MainOperation' | 'PostOperation';
export type ExecutionMode = 'Synchronous' | 'Asynchronous';

/** SdkMessageProcessingStep.stage. 30 (MainOperation) appears only in a ParentContext. */
export const STAGES: Readonly<Record<StageName, number>> = { PreValidation: 10, PreOperation: 20, MainOperation: 30, PostOperation: 40 };
/** The stages a step can be registered in. */
export const REGISTRABLE_STAGES = ['PreValidation', 'PreOperation', 'PostOperation'] as const;
export type RegistrableStage = (typeof REGISTRABLE_STAGES)[number];
/** SdkMessageProcessingStep.mode. */
export const MODES: Readonly<Record<ExecutionMode, number>> = { Synchronous: 0, Asynchronous: 1 };
/** SdkMessageProcessingStepImage.imagetype. */
export const IMAGE_TYPES = { PreImage: 0, PostImage: 1, Both: 2 } as const;
export type ImageType = keyof typeof IMAGE_TYPES;

/** The name for a number of one of the tables above; null for a number it does not have. */
export function nameOf<N extends string>(table: Readonly<Record<N, number>>, value: number | null): N | null {
  for (const [name, candidate] of Object.entries(table) as Array<[N, number]>) if (candidate === value) return name;
  return null;
}

/** Table and column logical names: lowercase letters, digits and underscores. */
export const LOGICAL_NAME = /^[a-z_][a-z0-9_]*$/;
/** SDK message names: Create, Update, msdyn_CustomApi… */
export const MESSAGE_NAME = /^[A-Za-z][A-Za-z0-9_]*$/;
/** Image aliases are keys of PreEntityImages/PostEntityImages. */
export const IMAGE_ALIAS = /^[A-Za-z][A-Za-z0-9_]{0,99}$/;

/**
 * The bulk version of each single-record message. Dataverse merges their pipelines: a
 * CreateMultiple raises the Create event once per record of Targets, and a Create raises the
 * CreateMultiple event with a one-record Targets ("Message pipelines merged",
 * https://learn.microsoft.com/power-apps/developer/data-platform/bulk-operations#message-pipelines-merged).
 * One handler on both would run twice for every record.
 */
export const BULK_MESSAGE_OF: Readonly<Record<string, string>> = {
  Create: 'CreateMultiple',
  Update: 'UpdateMultiple',
  Upsert: 'UpsertMultiple',
  Delete: 'DeleteMultiple',
};
const BULK_MESSAGES = new Set(Object.values(BULK_MESSAGE_OF).map((message) => message.toLowerCase()));
export const isBulkMessage = (message: string): boolean => BULK_MESSAGES.has(message.toLowerCase());

const same = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();

/** The request property an image is taken of (SdkMessageProcessingStepImage.messagepropertyname). */
export function defaultMessagePropertyName(message: string): string {
  if (same(message, 'Create')) return 'Id';
  if (same(message, 'SetState') || same(message, 'SetStateDynamicEntity')) return 'EntityMoniker';
  return 'Target';
}

export interface ImageDeclaration {
  alias: string;
  type: ImageType;
  /** The columns the image holds; null for every column. */
  columns: readonly string[] | null;
}

/** What one handler declares about the events it needs, normalized. `*` (entity or message) declares no step. */
export interface HandlerDeclaration {
  handler: string;
  entity: string;
  messages: readonly string[];
  /** As declared; null when the handler left it out (then it receives every stage). */
  stage: RegistrableStage | null;
  mode: ExecutionMode | null;
  /** Update and UpdateMultiple only; null for every column. */
  filteringAttributes: readonly string[] | null;
  images: readonly ImageDeclaration[];
  /**
   * An inline handler (`decide(…)`): it runs inside Dataverse's request and its answer can fail the
   * operation, so its step must be one Dataverse waits for (see `INLINE_STAGES`).
   */
  inline?: boolean;
}

/** The step a declaration registers: what it declared, with the defaults filled in. */
export function effectiveStage(declaration: Pick<HandlerDeclaration, 'stage'>): RegistrableStage {
  return declaration.stage ?? 'PostOperation';
}

/** Asynchronous in PostOperation unless declared; Dataverse runs only synchronous steps before it. */
export function effectiveMode(declaration: Pick<HandlerDeclaration, 'stage' | 'mode'>): ExecutionMode {
  return declaration.mode ?? (effectiveStage(declaration) === 'PostOperation' ? 'Asynchronous' : 'Synchronous');
}

export const isWildcard = (declaration: Pick<HandlerDeclaration, 'entity' | 'messages'>): boolean =>
  declaration.entity === '*' || declaration.messages.includes('*');

/**
 * What Dataverse (or the webhook's payload) makes impossible in one declaration; each problem is a
 * sentence that names what to change. Empty when the declaration is fine. The table and message
 * names are checked first, and alone: every other rule depends on them, so a misspelt message
 * is named as such, not blamed on its filtering attributes. `knownTables` are the tables of the
 * generated module (src/dataverse/tables.ts), known besides Dataverse's own (knownNames.ts).
 */
export function declarationProblems(declaration: HandlerDeclaration, knownTables: readonly string[] = []): string[] {
  const names = nameProblems(declaration, knownTables);
  if (names.length > 0) return names;
  return [
    ...messageAndStageProblems(declaration),
    ...(declaration.inline ? inlineProblems(declaration) : []),
    ...filteringProblems(declaration),
    ...imageProblems(declaration),
  ];
}

/** The table's and the messages' names: logical names, and Dataverse's own, the generated module's or prefixed. */
function nameProblems({ entity, messages }: HandlerDeclaration, knownTables: readonly string[]): string[] {
  const problems: string[] = [];
  if (entity !== '*' && !LOGICAL_NAME.test(entity))
    problems.push(`entity "${entity}" is not a table logical name (lowercase letters, digits, underscores)`);
  else problems.push(...[tableNameProblem(entity, knownTables)].filter((problem) => problem !== null));
  if (messages.length === 0) problems.push('it declares no message');
  for (const message of messages) {
    if (message !== '*' && !MESSAGE_NAME.test(message)) problems.push(`"${message}" is not an SDK message name such as Create or Update`);
    else problems.push(...[messageNameProblem(message)].filter((problem) => problem !== null));
  }
  return problems;
}

/** A message listed twice or with its bulk twin, a stage or mode Dataverse does not have, or not together. */
function messageAndStageProblems({ messages, stage, mode }: HandlerDeclaration): string[] {
  const problems: string[] = [];
  if (new Set(messages.map((message) => message.toLowerCase())).size !== messages.length) problems.push('it lists a message twice');
  for (const [single, bulk] of Object.entries(BULK_MESSAGE_OF)) {
    if (messages.some((message) => same(message, single)) && messages.some((message) => same(message, bulk))) {
      problems.push(
        `it declares both ${single} and ${bulk}: Dataverse raises ${single} for every record of a ${bulk} and ${bulk} for every ${single}, so it would run twice per record; declare ${single} alone`,
      );
    }
  }
  if (stage !== null && !(REGISTRABLE_STAGES as readonly string[]).includes(stage))
    problems.push(`stage "${stage}" is not one of ${REGISTRABLE_STAGES.join(', ')}`);
  if (mode !== null && mode !== 'Synchronous' && mode !== 'Asynchronous')
    problems.push(`mode "${String(mode)}" is not Synchronous or Asynchronous`);
  // https://learn.microsoft.com/power-apps/developer/data-platform/event-framework#asynchronous-plug-in-steps
  if (mode === 'Asynchronous' && stage !== null && stage !== 'PostOperation')
    problems.push('Dataverse runs asynchronous steps only in PostOperation');
  return problems;
}

/** Filtering attributes: a step's, so not for "*", and Update's only. */
function filteringProblems(declaration: HandlerDeclaration): string[] {
  const { messages, filteringAttributes, images } = declaration;
  const problems: string[] = [];
  if (isWildcard(declaration) && (filteringAttributes !== null || images.length > 0)) {
    problems.push('a handler for "*" registers no step, so it cannot declare filteringAttributes or images: name the table and message');
  }
  if (filteringAttributes === null) return problems;
  if (filteringAttributes.length === 0) problems.push('filteringAttributes is empty: leave it out to receive every Update');
  if (!messages.every((message) => same(message, 'Update') || same(message, 'UpdateMultiple')))
    problems.push('filteringAttributes apply to Update and UpdateMultiple only');
  for (const column of filteringAttributes)
    if (!LOGICAL_NAME.test(column)) problems.push(`filtering attribute "${column}" is not a column logical name`);
  return problems;
}

/** Each image: its alias, type and columns, and whether its messages and stage have it. */
function imageProblems(declaration: HandlerDeclaration): string[] {
  const problems: string[] = [];
  const aliases = new Set<string>();
  for (const image of declaration.images) {
    const where = `image "${image.alias}"`;
    if (!IMAGE_ALIAS.test(image.alias)) problems.push(`${where}: an alias is a letter then letters, digits or underscores`);
    if (aliases.has(image.alias.toLowerCase())) problems.push(`two images use the alias "${image.alias}"`);
    aliases.add(image.alias.toLowerCase());
    if (!(image.type in IMAGE_TYPES)) problems.push(`${where}: type "${image.type}" is not PreImage, PostImage or Both`);
    if (image.columns !== null) {
      if (image.columns.length === 0) problems.push(`${where}: columns is empty: leave it out for every column`);
      for (const column of image.columns)
        if (!LOGICAL_NAME.test(column)) problems.push(`${where}: "${column}" is not a column logical name`);
    }
    const pre = image.type !== 'PostImage';
    const post = image.type !== 'PreImage';
    for (const message of declaration.messages) {
      if (isBulkMessage(message)) {
        // Plug-ins read a bulk step's images, one set per record, from IPluginExecutionContext4's
        // PreEntityImagesCollection (https://learn.microsoft.com/power-apps/developer/data-platform/write-plugin-multiple-operation#entity-images);
        // the RemoteExecutionContext a webhook receives implements IPluginExecutionContext and
        // IExecutionContext (…/event-framework#event-context), whose images are PreEntityImages and PostEntityImages.
        problems.push(
          `${where}: ${message} steps keep their images per record in a collection the webhook payload does not document; declare ${singleOf(message)} instead (Dataverse raises it for every record)`,
        );
      } else if (pre && same(message, 'Create')) problems.push(`${where}: a Create has no pre-image (the row does not exist yet)`);
      else if (post && same(message, 'Delete')) problems.push(`${where}: a Delete has no post-image (the row no longer exists)`);
    }
    if (post && effectiveStage(declaration) !== 'PostOperation') problems.push(`${where}: a post-image needs the PostOperation stage`);
  }
  return problems;
}

/**
 * Where an inline handler may decide: synchronous steps, which Dataverse waits for and whose
 * failure fails the operation. PreValidation runs before the database transaction ("an
 * opportunity to include logic to cancel the operation before the database transaction"), so it is
 * where Microsoft says to cancel; PreOperation and a synchronous PostOperation run "within the
 * database transaction", so a failure there rolls the operation back (PostOperation included:
 * the row is written but not committed). An asynchronous step runs "outside of the database
 * transaction using the asynchronous service", after the operation completed: nothing it answers
 * can stop it. https://learn.microsoft.com/power-apps/developer/data-platform/event-framework#event-execution-pipeline
 */
function inlineProblems({ entity, messages, stage, mode }: HandlerDeclaration): string[] {
  const problems: string[] = [];
  if (entity === '*' || messages.includes('*'))
    problems.push('an inline handler decides for its own step: name the table and the message instead of "*"');
  if (stage === null)
    problems.push(
      `an inline handler must declare its stage: ${REGISTRABLE_STAGES.join(', ')} (PreValidation cancels before the database transaction)`,
    );
  if (mode !== 'Synchronous') {
    problems.push(
      'an inline handler decides whether the operation goes on, and Dataverse runs an asynchronous step after the operation completed, where no answer can stop it: declare a synchronous step, or react with on(…) instead',
    );
  }
  return problems;
}

function singleOf(bulk: string): string {
  return Object.entries(BULK_MESSAGE_OF).find(([, candidate]) => same(candidate, bulk))?.[0] ?? bulk;
}

/** One step Dataverse must have for the handlers, with the union of what they declared. */
export interface DerivedStep {
  entity: string;
  message: string;
  stage: RegistrableStage;
  mode: ExecutionMode;
  /** Null when some handler on the step wants every Update (or the message is not an Update). */
  filteringAttributes: readonly string[] | null;
  images: readonly ImageDeclaration[];
  /** The handlers it feeds, in registration order. */
  handlers: readonly string[];
}

/** A step's identity in Dataverse: one step per table, message, stage and mode. */
export function stepKey(step: { entity: string; message: string; stage: string; mode: string }): string {
  return `${step.entity.toLowerCase()}\n${step.message.toLowerCase()}\n${step.stage}\n${step.mode}`;
}

/** What a step is called in Dataverse (the Plug-in Registration Tool shows it): readable, unique per endpoint. */
export function stepName(endpointName: string, step: Pick<DerivedStep, 'entity' | 'message' | 'stage' | 'mode'>): string {
  return `${endpointName}: ${step.message} of ${step.entity} (${step.stage}, ${step.mode})`;
}

export class StepDeclarationError extends Error {
  override readonly name = 'StepDeclarationError';
}

function union(a: readonly string[], b: readonly string[]): string[] {
  return [...new Set([...a, ...b])].sort();
}

/**
 * The steps a set of handlers need. Handlers on the same table, message, stage and mode share one
 * step: its filtering attributes are the union of theirs (none when any of them wants every
 * Update) and each image alias holds the union of the columns asked for (every column when any
 * handler asks for all). Throws when two handlers cannot share: one alias of two image types, or a
 * handler that left its stage or mode out and so would also receive another step's events.
 */
export function deriveSteps(declarations: readonly HandlerDeclaration[]): DerivedStep[] {
  const steps = new Map<string, StepInProgress>();
  const concrete = declarations.filter((declaration) => !isWildcard(declaration));
  for (const declaration of concrete) for (const message of declaration.messages) shareStep(steps, declaration, message);
  for (const declaration of concrete) checkNoOtherStepFeeds(declaration, steps);
  return [...steps.values()].map(({ step, images, everyColumn }) => ({
    ...step,
    filteringAttributes: everyColumn ? null : step.filteringAttributes,
    images: [...images.values()],
  }));
}

/** A step as its handlers are added to it: its images by alias, and whether one wants every Update. */
interface StepInProgress {
  step: DerivedStep;
  images: Map<string, ImageDeclaration>;
  everyColumn: boolean;
}

/** Adds a handler to the step of its table, this message, its stage and mode: the union of columns, one type per image alias. */
function shareStep(steps: Map<string, StepInProgress>, declaration: HandlerDeclaration, message: string): void {
  const stage = effectiveStage(declaration);
  const mode = effectiveMode(declaration);
  const key = stepKey({ entity: declaration.entity, message, stage, mode });
  let entry = steps.get(key);
  if (!entry) {
    entry = {
      step: { entity: declaration.entity, message, stage, mode, filteringAttributes: [], images: [], handlers: [] },
      images: new Map(),
      everyColumn: false,
    };
    steps.set(key, entry);
  }
  const updates = same(message, 'Update') || same(message, 'UpdateMultiple');
  if (!updates || declaration.filteringAttributes === null) entry.everyColumn = true;
  else entry.step = { ...entry.step, filteringAttributes: union(entry.step.filteringAttributes ?? [], declaration.filteringAttributes) };
  for (const image of declaration.images) {
    const existing = entry.images.get(image.alias);
    if (!existing) {
      entry.images.set(image.alias, { ...image, columns: image.columns === null ? null : union([], image.columns) });
      continue;
    }
    if (existing.type !== image.type) {
      throw new StepDeclarationError(
        `handlers ${entry.step.handlers.join(', ')} and ${declaration.handler} declare the image "${image.alias}" of ${message} of ${declaration.entity} as ${existing.type} and ${image.type}: one step has one image per alias, so use one type or another alias`,
      );
    }
    entry.images.set(image.alias, {
      ...existing,
      columns: existing.columns === null || image.columns === null ? null : union(existing.columns, image.columns),
    });
  }
  entry.step = { ...entry.step, handlers: [...entry.step.handlers, declaration.handler] };
}

/**
 * A handler that left its stage or mode out receives every stage or mode of its table and message
 * (the registry matches what was declared), so another step there would feed it twice.
 */
function checkNoOtherStepFeeds(declaration: HandlerDeclaration, steps: Map<string, StepInProgress>): void {
  if (declaration.stage !== null && declaration.mode !== null) return;
  for (const { step } of steps.values()) {
    if (!same(step.entity, declaration.entity) || !declaration.messages.some((message) => same(message, step.message))) continue;
    const receives =
      (declaration.stage === null || declaration.stage === step.stage) && (declaration.mode === null || declaration.mode === step.mode);
    const own = step.stage === effectiveStage(declaration) && step.mode === effectiveMode(declaration);
    if (receives && !own) {
      throw new StepDeclarationError(
        `handler ${declaration.handler} leaves its ${declaration.stage === null ? 'stage' : 'mode'} out, so it would also receive the ${step.stage} ${step.mode} ${step.message} of ${step.entity} declared by ${step.handlers.join(', ')}: declare its stage and mode`,
      );
    }
  }
}
