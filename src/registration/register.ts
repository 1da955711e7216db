import {
  type DerivedStep,
  defaultMessagePropertyName,
  IMAGE_TYPES,
  type ImageDeclaration,
  MODES,
  STAGES,
  stepName,
} from '../dataverse/steps';
import type { DataverseClient } from '../dataverseApi';
import { bindReference, rowPath } from '../dataverseApi/odata';
import { AUTH_TYPES, JSON_MESSAGE_FORMAT, type Registration, WEBHOOK_CONTRACT } from './definition';
import {
  BINDINGS,
  createMessageLookup,
  ENTITY_SETS,
  type EndpointRow,
  findEndpointsByName,
  type ImageRow,
  LookupError,
  listEndpointSteps,
  listStepImages,
  type StepRow,
} from './rows';

/**
 * Brings Dataverse in line with the code: the ServiceEndpoint of the registration file, found by
 * name, and the steps the handlers declare (src/dataverse/steps.ts derives them), each found by
 * what it is (table, message, stage and mode) and its images by alias. Everything is read and
 * checked first and the difference planned; the caller shows it, then applies it. Only what
 * differs is written, so a second run writes nothing, and a table or message Dataverse does not
 * have fails before any write.
 */

export interface RegisterOptions {
  registration: Registration;
  /** The steps the handlers need (`handlers.steps`). */
  steps: readonly DerivedStep[];
  /** The function's URL, without `?code=`. */
  url: string;
  /**
   * The authvalue, asked for only when it must be written: on create, when the auth type
   * changes, when Dataverse says none is set, or with `rotateKey`. Dataverse never returns
   * authvalue, so an unchanged key cannot be told from a new one.
   */
  authValue: () => Promise<string>;
  rotateKey: boolean;
  /** Delete this endpoint's steps that no handler declares. */
  prune: boolean;
}

/** What happens to a row: `keep` is a step no handler declares, left alone without --prune. */
export type Action = 'create' | 'update' | 'unchanged' | 'delete' | 'keep';

export interface Outcome {
  name: string;
  action: Action;
  /** What differs, e.g. `filteringattributes "a" → "a,b"`; never an authvalue. */
  changes: string[];
}

export interface StepOutcome extends Outcome {
  /** The handlers the step feeds; empty for a step no handler declares. */
  handlers: string[];
}

export interface WriteRequest {
  method: 'POST' | 'PATCH' | 'DELETE';
  url: string;
  /** The body with authvalue masked. */
  body?: Record<string, unknown>;
}

export interface RegistrationPlan {
  endpoint: Outcome & { id: string | null };
  steps: StepOutcome[];
  /** The writes `apply` sends, in order, with secrets masked; rows it creates appear as placeholders. */
  writes: WriteRequest[];
  /** Sends the writes. */
  apply(): Promise<void>;
}

export class RegistrationConflictError extends Error {
  override readonly name = 'RegistrationConflictError';
}

/** A row known by id, or one this run creates (its id arrives when the create is answered). */
interface RowRef {
  id: string | undefined;
  placeholder: string;
}

interface PlannedWrite {
  method: WriteRequest['method'];
  entitySet: string;
  row: RowRef;
  /** Built when the write is sent, so it can bind rows created earlier in the run. */
  body?: () => Record<string, unknown>;
}

export const MASKED = '***';

export function maskSecrets(body: Record<string, unknown>): Record<string, unknown> {
  return 'authvalue' in body ? { ...body, authvalue: MASKED } : body;
}

function bind(entitySet: string, row: RowRef): string {
  return row.id ? bindReference(entitySet, row.id) : `/${entitySet}(${row.placeholder})`;
}

/** A column list as Dataverse stores it, compared without case, order or spaces. */
function columns(value: string | null | readonly string[] | undefined): string {
  const list = typeof value === 'string' ? value.split(',') : (value ?? []);
  return [...new Set(list.map((column) => column.trim().toLowerCase()).filter((column) => column.length > 0))].sort().join(',');
}

/** Collects the columns that differ into a PATCH body and a readable list. */
class Difference {
  readonly body: Record<string, unknown> = {};
  readonly changes: string[] = [];

  compare(
    column: string,
    current: unknown,
    desired: unknown,
    shown: (value: unknown) => string = (value) => JSON.stringify(value ?? null),
  ): this {
    if (current !== desired) {
      this.body[column] = desired;
      this.changes.push(`${column} ${shown(current)} → ${shown(desired)}`);
    }
    return this;
  }

  compareColumns(column: string, current: string | null, desired: string | null): this {
    if (columns(current) !== columns(desired)) {
      this.body[column] = desired;
      this.changes.push(`${column} "${columns(current)}" → "${columns(desired)}"`);
    }
    return this;
  }

  get empty(): boolean {
    return this.changes.length === 0;
  }
}

/** Step descriptions are limited to 256 characters. */
function stepDescription(step: DerivedStep): string {
  const text = `Feeds the dataverse-webhooks handlers: ${step.handlers.join(', ')}`;
  return text.length > 256 ? `${text.slice(0, 255)}…` : text;
}

function stepColumns(step: DerivedStep) {
  return {
    stage: STAGES[step.stage],
    mode: MODES[step.mode],
    // The app keeps its own record of every event (ledger, failures, telemetry): a succeeded
    // System Job adds nothing but rows; failed ones stay for `status`.
    asyncautodelete: step.mode === 'Asynchronous',
    filteringattributes: step.filteringAttributes ? columns(step.filteringAttributes) : null,
  };
}

function imageColumns(step: DerivedStep, image: ImageDeclaration) {
  return {
    name: image.alias,
    entityalias: image.alias,
    imagetype: IMAGE_TYPES[image.type],
    attributes: image.columns ? columns(image.columns) : null,
    messagepropertyname: defaultMessagePropertyName(step.message),
  };
}

interface ResolvedStep {
  step: DerivedStep;
  name: string;
  message: RowRef;
  filter: RowRef;
}

/** What the steps of an endpoint need, as writes and outcomes. Shared by `register` and `status`. */
interface StepPlan {
  outcomes: StepOutcome[];
  writes: PlannedWrite[];
}

const identity = (filterId: string | null, stage: number, mode: number) => `${filterId ?? ''}|${stage}|${mode}`;

async function planSteps(
  client: DataverseClient,
  endpointName: string,
  endpoint: RowRef,
  desired: readonly DerivedStep[],
  options: { prune: boolean; onMissingMessage: 'throw' | 'report' },
): Promise<StepPlan> {
  const lookup = createMessageLookup(client);
  const outcomes: StepOutcome[] = [];
  const resolved: ResolvedStep[] = [];
  for (const step of desired) {
    try {
      const ids = await lookup.filterId(step.message, step.entity);
      resolved.push({
        step,
        name: stepName(endpointName, step),
        message: { id: ids.messageId, placeholder: '' },
        filter: { id: ids.filterId, placeholder: '' },
      });
    } catch (error) {
      if (!(error instanceof LookupError) || options.onMissingMessage === 'throw') throw error;
      outcomes.push({
        name: stepName(endpointName, step),
        action: 'create',
        changes: [`cannot be registered: ${error.message}`],
        handlers: [...step.handlers],
      });
    }
  }

  const existingSteps = endpoint.id ? await listEndpointSteps(client, endpoint.id) : [];
  const byIdentity = new Map<string, StepRow[]>();
  for (const row of existingSteps) {
    const key = identity(row._sdkmessagefilterid_value, row.stage, row.mode);
    byIdentity.set(key, [...(byIdentity.get(key) ?? []), row]);
  }

  const writes: PlannedWrite[] = [];
  const matched = new Set<string>();
  for (const step of resolved) {
    const desiredColumns = stepColumns(step.step);
    // A second step with the same table, message, stage and mode would deliver every event twice: the
    // one with the expected name (else the first) is the handlers' step, and --prune deletes the others.
    const candidates = byIdentity.get(identity(step.filter.id ?? null, desiredColumns.stage, desiredColumns.mode)) ?? [];
    const current = candidates.find((row) => row.name.toLowerCase() === step.name.toLowerCase()) ?? candidates[0];
    if (current) {
      matched.add(current.sdkmessageprocessingstepid);
      outcomes.push(planStepUpdate(writes, step, current, await listStepImages(client, current.sdkmessageprocessingstepid)));
    } else {
      outcomes.push(planStepCreate(writes, step, endpoint));
    }
  }
  for (const row of existingSteps) {
    if (matched.has(row.sdkmessageprocessingstepid)) continue;
    if (options.prune)
      writes.push({ method: 'DELETE', entitySet: ENTITY_SETS.steps, row: { id: row.sdkmessageprocessingstepid, placeholder: '' } });
    outcomes.push({ name: row.name, action: options.prune ? 'delete' : 'keep', changes: ['no handler declares it'], handlers: [] });
  }
  return { outcomes, writes };
}

function planStepCreate(writes: PlannedWrite[], resolved: ResolvedStep, endpoint: RowRef): StepOutcome {
  const { step } = resolved;
  const stepRef: RowRef = { id: undefined, placeholder: `<id of the new step "${resolved.name}">` };
  writes.push({
    method: 'POST',
    entitySet: ENTITY_SETS.steps,
    row: stepRef,
    body: () => ({
      name: resolved.name,
      description: stepDescription(step),
      ...stepColumns(step),
      rank: 1,
      // Runs on the server only (not in the offline client).
      supporteddeployment: 0,
      [BINDINGS.stepEventHandler]: bind(ENTITY_SETS.serviceEndpoints, endpoint),
      [BINDINGS.stepMessage]: bind(ENTITY_SETS.messages, resolved.message),
      [BINDINGS.stepMessageFilter]: bind(ENTITY_SETS.messageFilters, resolved.filter),
    }),
  });
  for (const image of step.images) {
    writes.push({
      method: 'POST',
      entitySet: ENTITY_SETS.images,
      row: { id: undefined, placeholder: `<id of the new image "${image.alias}">` },
      body: () => ({ ...imageColumns(step, image), [BINDINGS.imageStep]: bind(ENTITY_SETS.steps, stepRef) }),
    });
  }
  return {
    name: resolved.name,
    action: 'create',
    changes: step.images.map((image) => `image "${image.alias}"`),
    handlers: [...step.handlers],
  };
}

function planStepUpdate(writes: PlannedWrite[], resolved: ResolvedStep, current: StepRow, currentImages: ImageRow[]): StepOutcome {
  const { step } = resolved;
  const desired = stepColumns(step);
  const stepRef: RowRef = { id: current.sdkmessageprocessingstepid, placeholder: '' };
  // Matched by table, message, stage and mode; the rank is left as it is (someone may have ordered it).
  const difference = new Difference()
    .compare('name', current.name, resolved.name)
    .compare('description', current.description ?? '', stepDescription(step))
    .compare('asyncautodelete', current.asyncautodelete ?? false, desired.asyncautodelete)
    .compareColumns('filteringattributes', current.filteringattributes, desired.filteringattributes);
  if (current.statecode !== 0) {
    difference.body.statecode = 0;
    difference.body.statuscode = 1;
    difference.changes.push('enabled (it was disabled)');
  }
  if (!difference.empty) writes.push({ method: 'PATCH', entitySet: ENTITY_SETS.steps, row: stepRef, body: () => difference.body });

  const imagesByAlias = new Map(currentImages.map((image) => [image.entityalias, image]));
  for (const image of step.images) {
    const desiredImage = imageColumns(step, image);
    const currentImage = imagesByAlias.get(image.alias);
    imagesByAlias.delete(image.alias);
    if (!currentImage) {
      writes.push({
        method: 'POST',
        entitySet: ENTITY_SETS.images,
        row: { id: undefined, placeholder: `<id of the new image "${image.alias}">` },
        body: () => ({ ...desiredImage, [BINDINGS.imageStep]: bind(ENTITY_SETS.steps, stepRef) }),
      });
      difference.changes.push(`image "${image.alias}" added`);
      continue;
    }
    const imageDifference = new Difference()
      .compare('name', currentImage.name, desiredImage.name)
      .compare('imagetype', currentImage.imagetype, desiredImage.imagetype)
      .compare('messagepropertyname', currentImage.messagepropertyname, desiredImage.messagepropertyname)
      .compareColumns('attributes', currentImage.attributes, desiredImage.attributes);
    if (!imageDifference.empty) {
      writes.push({
        method: 'PATCH',
        entitySet: ENTITY_SETS.images,
        row: { id: currentImage.sdkmessageprocessingstepimageid, placeholder: '' },
        body: () => imageDifference.body,
      });
      difference.changes.push(`image "${image.alias}": ${imageDifference.changes.join(', ')}`);
    }
  }
  // The handlers declare every image of their step: one no handler reads is removed.
  for (const stale of imagesByAlias.values()) {
    writes.push({ method: 'DELETE', entitySet: ENTITY_SETS.images, row: { id: stale.sdkmessageprocessingstepimageid, placeholder: '' } });
    difference.changes.push(`image "${stale.entityalias}" removed`);
  }
  return {
    name: resolved.name,
    action: difference.changes.length === 0 ? 'unchanged' : 'update',
    changes: difference.changes,
    handlers: [...step.handlers],
  };
}

async function findEndpoint(client: DataverseClient, endpointName: string): Promise<EndpointRow | undefined> {
  const found = await findEndpointsByName(client, endpointName);
  if (found.length > 1)
    throw new RegistrationConflictError(`${found.length} service endpoints are named "${endpointName}": rename or delete all but one`);
  const existing = found[0];
  if (existing && existing.contract !== WEBHOOK_CONTRACT) {
    throw new RegistrationConflictError(
      `The service endpoint "${endpointName}" is not a webhook (contract ${existing.contract}); it is left alone: choose another name`,
    );
  }
  return existing;
}

/** Reads Dataverse and plans every write; nothing is written until `apply`. */
export async function planRegistration(client: DataverseClient, options: RegisterOptions): Promise<RegistrationPlan> {
  const endpointName = options.registration.endpoint.name;
  const existing = await findEndpoint(client, endpointName);
  const endpointRef: RowRef = { id: existing?.serviceendpointid, placeholder: `<id of the new serviceendpoint "${endpointName}">` };
  const stepPlan = await planSteps(client, endpointName, endpointRef, options.steps, { prune: options.prune, onMissingMessage: 'throw' });
  const endpoint = await planEndpoint(options, existing, endpointRef);
  const writes = [...endpoint.writes, ...stepPlan.writes];
  const plan: RegistrationPlan = {
    // A new endpoint's columns are all "changes"; the request shows them.
    endpoint: { name: endpointName, id: endpointRef.id ?? null, action: endpoint.action, changes: existing ? endpoint.changes : [] },
    steps: stepPlan.outcomes,
    writes: writes.map((write) => previewOf(client, write)),
    async apply() {
      for (const write of writes) {
        const body = write.body?.();
        if (write.method === 'POST') write.row.id = await client.create(write.entitySet, body ?? {});
        else if (write.method === 'PATCH') await client.update(write.entitySet, requireId(write.row), body ?? {});
        else await client.delete(write.entitySet, requireId(write.row));
      }
      plan.endpoint.id = endpointRef.id ?? null;
    },
  };
  return plan;
}

/**
 * The endpoint's write, if it needs one: created, or updated where it differs from the file. Its
 * secret is read (authValue) only when it must be written: a new endpoint, a new auth type, one
 * Dataverse says has none, or --rotate-key.
 */
async function planEndpoint(
  options: RegisterOptions,
  existing: Awaited<ReturnType<typeof findEndpoint>>,
  endpointRef: RowRef,
): Promise<{ action: Action; changes: string[]; writes: PlannedWrite[] }> {
  const { endpoint: wanted } = options.registration;
  const desiredAuthType = AUTH_TYPES[wanted.auth.type];
  const needsAuthValue = !existing || existing.authtype !== desiredAuthType || existing.isauthvalueset !== true || options.rotateKey;
  const authValue = needsAuthValue ? await options.authValue() : undefined;
  const difference = new Difference()
    .compare('url', existing?.url, options.url)
    .compare('authtype', existing?.authtype, desiredAuthType)
    .compare('messageformat', existing?.messageformat, JSON_MESSAGE_FORMAT);
  if (wanted.description !== undefined) difference.compare('description', existing?.description ?? '', wanted.description);
  if (authValue !== undefined) {
    difference.body.authvalue = authValue;
    difference.changes.push(existing ? 'authvalue (rewritten)' : 'authvalue');
  }
  const entitySet = ENTITY_SETS.serviceEndpoints;
  if (!existing) {
    const body = () => ({ name: wanted.name, contract: WEBHOOK_CONTRACT, ...difference.body });
    return { action: 'create', changes: difference.changes, writes: [{ method: 'POST', entitySet, row: endpointRef, body }] };
  }
  if (difference.empty) return { action: 'unchanged', changes: difference.changes, writes: [] };
  return {
    action: 'update',
    changes: difference.changes,
    writes: [{ method: 'PATCH', entitySet, row: endpointRef, body: () => difference.body }],
  };
}

/** A planned write as the plan shows it: its request, the secret masked. */
function previewOf(client: DataverseClient, write: PlannedWrite): WriteRequest {
  const body = write.body?.();
  const target =
    write.method === 'POST'
      ? write.entitySet
      : write.row.id
        ? rowPath(write.entitySet, write.row.id)
        : `${write.entitySet}(${write.row.placeholder})`;
  return { method: write.method, url: `${client.serviceRoot}${target}`, ...(body ? { body: maskSecrets(body) } : {}) };
}

/**
 * How the steps of an existing endpoint differ from what the handlers declare, for `status`: a
 * step to create is a handler with no registered step, `keep` a step no handler declares, `update`
 * a step whose columns or images differ. Reads only.
 */
export async function compareSteps(client: DataverseClient, endpoint: EndpointRow, steps: readonly DerivedStep[]): Promise<StepOutcome[]> {
  const { outcomes } = await planSteps(client, endpoint.name, { id: endpoint.serviceendpointid, placeholder: '' }, steps, {
    prune: false,
    onMissingMessage: 'report',
  });
  return outcomes;
}

function requireId(row: RowRef): string {
  if (!row.id) throw new Error(`Internal error: ${row.placeholder} was not created before it was written`);
  return row.id;
}
