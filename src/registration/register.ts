import type { DataverseClient } from '../dataverseApi';
import { bindReference, rowPath } from '../dataverseApi/odata';
import {
  AUTH_TYPES,
  defaultMessagePropertyName,
  IMAGE_TYPES,
  JSON_MESSAGE_FORMAT,
  MODES,
  STAGES,
  stepName,
  WEBHOOK_CONTRACT,
  type ImageDefinition,
  type Registration,
  type StepDefinition,
} from './definition';
import { BINDINGS, createMessageLookup, ENTITY_SETS, findEndpointsByName, listEndpointSteps, listStepImages, type EndpointRow, type ImageRow, type StepRow } from './rows';

/**
 * Brings Dataverse in line with the registration file: the ServiceEndpoint found by name, its
 * steps found by name, their images found by alias. Everything is read and checked first, then
 * only what differs is written, so a second run with the same file writes nothing, and a file
 * that names an unknown message or table fails before any write.
 */

export interface RegisterOptions {
  registration: Registration;
  /** The function's URL, without `?code=`. */
  url: string;
  /**
   * The authvalue, asked for only when it must be written: on create, when the auth type
   * changes, when Dataverse says none is set, or with `rotateKey`. Dataverse never returns
   * authvalue, so an unchanged key cannot be told from a new one.
   */
  authValue: () => Promise<string>;
  rotateKey: boolean;
  /** Delete steps of this endpoint that the file does not list. */
  prune: boolean;
  /** Read, plan and report every write, but send none. */
  dryRun: boolean;
}

export type Action = 'created' | 'updated' | 'unchanged' | 'deleted' | 'kept (not in the file; --prune deletes it)';

export interface Outcome {
  name: string;
  action: Action;
  /** Which columns differ, e.g. `rank 1 → 2`; never an authvalue. */
  changes: string[];
}

export interface WriteRequest {
  method: 'POST' | 'PATCH' | 'DELETE';
  url: string;
  /** The body with authvalue masked. */
  body?: Record<string, unknown>;
}

export interface RegisterResult {
  endpoint: Outcome & { id: string | null };
  steps: Outcome[];
  /** The writes sent, in order (with `dryRun`: the writes that would be sent). */
  writes: WriteRequest[];
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

function columns(value: string | null | readonly string[] | undefined): string {
  const list = typeof value === 'string' ? value.split(',') : (value ?? []);
  return [...new Set(list.map((column) => column.trim().toLowerCase()).filter((column) => column.length > 0))].sort().join(',');
}

/** Collects the columns that differ into a PATCH body and a readable list. */
class Difference {
  readonly body: Record<string, unknown> = {};
  readonly changes: string[] = [];

  compare(column: string, current: unknown, desired: unknown, shown: (value: unknown) => string = (value) => JSON.stringify(value ?? null)): this {
    if (current !== desired) {
      this.body[column] = desired;
      this.changes.push(`${column} ${shown(current)} → ${shown(desired)}`);
    }
    return this;
  }

  bind(property: string, currentId: string | null, desired: RowRef, entitySet: string, label: string): this {
    if (currentId !== desired.id) {
      this.body[property] = bind(entitySet, desired);
      this.changes.push(label);
    }
    return this;
  }

  get empty(): boolean {
    return this.changes.length === 0;
  }
}

interface ResolvedStep {
  definition: StepDefinition;
  name: string;
  message: RowRef;
  filter: RowRef;
}

export async function registerWebhook(client: DataverseClient, options: RegisterOptions): Promise<RegisterResult> {
  const { registration } = options;
  const endpointName = registration.endpoint.name;
  const desiredAuthType = AUTH_TYPES[registration.endpoint.auth.type];

  // Read everything first.
  const found = await findEndpointsByName(client, endpointName);
  if (found.length > 1) throw new RegistrationConflictError(`${found.length} service endpoints are named "${endpointName}": rename or delete all but one`);
  const existing: EndpointRow | undefined = found[0];
  if (existing && existing.contract !== WEBHOOK_CONTRACT) {
    throw new RegistrationConflictError(`The service endpoint "${endpointName}" is not a webhook (contract ${existing.contract}); it is left alone: choose another name`);
  }

  const lookup = createMessageLookup(client);
  const resolved: ResolvedStep[] = await Promise.all(
    registration.steps.map(async (definition) => {
      const ids = await lookup.filterId(definition.message, definition.table);
      return {
        definition,
        name: stepName(endpointName, definition),
        message: { id: ids.messageId, placeholder: '' },
        filter: { id: ids.filterId, placeholder: '' },
      };
    }),
  );

  const existingSteps = existing ? await listEndpointSteps(client, existing.serviceendpointid) : [];
  const stepsByName = new Map<string, StepRow>();
  const listedNames = new Set(resolved.map((step) => step.name.toLowerCase()));
  for (const step of existingSteps) {
    const key = step.name.toLowerCase();
    if (stepsByName.has(key) && listedNames.has(key)) {
      throw new RegistrationConflictError(`The endpoint "${endpointName}" has two steps named "${step.name}": delete one (or rename it) so the file's step can be matched`);
    }
    stepsByName.set(key, step);
  }
  const imagesByStep = new Map<string, ImageRow[]>();
  for (const step of resolved) {
    const match = stepsByName.get(step.name.toLowerCase());
    if (match) imagesByStep.set(match.sdkmessageprocessingstepid, await listStepImages(client, match.sdkmessageprocessingstepid));
  }

  // Then plan the writes.
  const writes: PlannedWrite[] = [];
  const endpointRef: RowRef = { id: existing?.serviceendpointid, placeholder: `<id of the new serviceendpoint "${endpointName}">` };
  const needsAuthValue = !existing || existing.authtype !== desiredAuthType || existing.isauthvalueset !== true || options.rotateKey;
  const authValue = needsAuthValue ? await options.authValue() : undefined;

  const endpointDifference = new Difference()
    .compare('url', existing?.url, options.url)
    .compare('authtype', existing?.authtype, desiredAuthType)
    .compare('messageformat', existing?.messageformat, JSON_MESSAGE_FORMAT);
  if (registration.endpoint.description !== undefined) endpointDifference.compare('description', existing?.description ?? '', registration.endpoint.description);
  if (authValue !== undefined) {
    endpointDifference.body.authvalue = authValue;
    endpointDifference.changes.push(existing ? 'authvalue (rewritten)' : 'authvalue');
  }
  let endpointAction: Action = 'unchanged';
  if (!existing) {
    endpointAction = 'created';
    writes.push({ method: 'POST', entitySet: ENTITY_SETS.serviceEndpoints, row: endpointRef, body: () => ({ name: endpointName, contract: WEBHOOK_CONTRACT, ...endpointDifference.body }) });
  } else if (!endpointDifference.empty) {
    endpointAction = 'updated';
    writes.push({ method: 'PATCH', entitySet: ENTITY_SETS.serviceEndpoints, row: endpointRef, body: () => endpointDifference.body });
  }

  const outcomes: Outcome[] = [];
  for (const step of resolved) {
    const current = stepsByName.get(step.name.toLowerCase());
    outcomes.push(current ? planStepUpdate(writes, step, current, imagesByStep.get(current.sdkmessageprocessingstepid) ?? []) : planStepCreate(writes, step, endpointRef));
  }
  for (const step of existingSteps) {
    if (listedNames.has(step.name.toLowerCase())) continue;
    if (options.prune) {
      writes.push({ method: 'DELETE', entitySet: ENTITY_SETS.steps, row: { id: step.sdkmessageprocessingstepid, placeholder: '' } });
      outcomes.push({ name: step.name, action: 'deleted', changes: [] });
    } else {
      outcomes.push({ name: step.name, action: 'kept (not in the file; --prune deletes it)', changes: [] });
    }
  }

  // Then write, in order.
  const sent: WriteRequest[] = [];
  for (const write of writes) {
    const body = write.body?.();
    const target = write.method === 'POST' ? write.entitySet : write.row.id ? rowPath(write.entitySet, write.row.id) : `${write.entitySet}(${write.row.placeholder})`;
    sent.push({ method: write.method, url: `${client.serviceRoot}${target}`, ...(body ? { body: maskSecrets(body) } : {}) });
    if (options.dryRun) continue;
    if (write.method === 'POST') write.row.id = await client.create(write.entitySet, body ?? {});
    else if (write.method === 'PATCH') await client.update(write.entitySet, requireId(write.row), body ?? {});
    else await client.delete(write.entitySet, requireId(write.row));
  }

  return {
    // A new endpoint's columns are all "changes"; the request shows them.
    endpoint: { name: endpointName, id: endpointRef.id ?? null, action: endpointAction, changes: existing ? endpointDifference.changes : [] },
    steps: outcomes,
    writes: sent,
  };
}

function requireId(row: RowRef): string {
  if (!row.id) throw new Error(`Internal error: ${row.placeholder} was not created before it was written`);
  return row.id;
}

function stepColumns(definition: StepDefinition) {
  return {
    stage: STAGES[definition.stage],
    mode: MODES[definition.mode],
    rank: definition.rank,
    asyncautodelete: definition.asyncAutoDelete,
    filteringattributes: definition.filteringAttributes ? columns(definition.filteringAttributes) : null,
  };
}

function imageColumns(step: StepDefinition, image: ImageDefinition) {
  return {
    name: image.name ?? image.alias,
    entityalias: image.alias,
    imagetype: IMAGE_TYPES[image.type],
    attributes: image.attributes ? columns(image.attributes) : null,
    messagepropertyname: image.messagePropertyName ?? defaultMessagePropertyName(step.message),
  };
}

function planStepCreate(writes: PlannedWrite[], step: ResolvedStep, endpoint: RowRef): Outcome {
  const stepRef: RowRef = { id: undefined, placeholder: `<id of the new step "${step.name}">` };
  const { definition } = step;
  writes.push({
    method: 'POST',
    entitySet: ENTITY_SETS.steps,
    row: stepRef,
    body: () => ({
      name: step.name,
      ...(definition.description !== undefined ? { description: definition.description } : {}),
      ...stepColumns(definition),
      // Runs on the server only (not in the offline client).
      supporteddeployment: 0,
      [BINDINGS.stepEventHandler]: bind(ENTITY_SETS.serviceEndpoints, endpoint),
      [BINDINGS.stepMessage]: bind(ENTITY_SETS.messages, step.message),
      [BINDINGS.stepMessageFilter]: bind(ENTITY_SETS.messageFilters, step.filter),
    }),
  });
  // A step is created enabled; a disabled one is switched off right after.
  if (!definition.enabled) writes.push({ method: 'PATCH', entitySet: ENTITY_SETS.steps, row: stepRef, body: () => ({ statecode: 1, statuscode: 2 }) });
  for (const image of definition.images) {
    writes.push({
      method: 'POST',
      entitySet: ENTITY_SETS.images,
      row: { id: undefined, placeholder: `<id of the new image "${image.alias}">` },
      body: () => ({ ...imageColumns(definition, image), [BINDINGS.imageStep]: bind(ENTITY_SETS.steps, stepRef) }),
    });
  }
  return { name: step.name, action: 'created', changes: [] };
}

function planStepUpdate(writes: PlannedWrite[], step: ResolvedStep, current: StepRow, currentImages: ImageRow[]): Outcome {
  const { definition } = step;
  const desired = stepColumns(definition);
  const stepRef: RowRef = { id: current.sdkmessageprocessingstepid, placeholder: '' };
  const difference = new Difference()
    .compare('name', current.name, step.name)
    .compare('stage', current.stage, desired.stage)
    .compare('mode', current.mode, desired.mode)
    .compare('rank', current.rank, desired.rank)
    .compare('asyncautodelete', current.asyncautodelete ?? false, desired.asyncautodelete);
  if (columns(current.filteringattributes) !== columns(desired.filteringattributes)) {
    difference.body.filteringattributes = desired.filteringattributes;
    difference.changes.push(`filteringattributes "${columns(current.filteringattributes)}" → "${desired.filteringattributes ?? ''}"`);
  }
  if (definition.description !== undefined) difference.compare('description', current.description ?? '', definition.description);
  difference
    .bind(BINDINGS.stepMessage, current._sdkmessageid_value, step.message, ENTITY_SETS.messages, `message → ${definition.message}`)
    .bind(BINDINGS.stepMessageFilter, current._sdkmessagefilterid_value, step.filter, ENTITY_SETS.messageFilters, `table → ${definition.table}`);
  const desiredState = definition.enabled ? 0 : 1;
  if (current.statecode !== desiredState) {
    difference.body.statecode = desiredState;
    difference.body.statuscode = definition.enabled ? 1 : 2;
    difference.changes.push(definition.enabled ? 'enabled' : 'disabled');
  }
  if (!difference.empty) writes.push({ method: 'PATCH', entitySet: ENTITY_SETS.steps, row: stepRef, body: () => difference.body });

  const imagesByAlias = new Map(currentImages.map((image) => [image.entityalias, image]));
  for (const image of definition.images) {
    const desiredImage = imageColumns(definition, image);
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
      .compare('messagepropertyname', currentImage.messagepropertyname, desiredImage.messagepropertyname);
    if (columns(currentImage.attributes) !== columns(desiredImage.attributes)) {
      imageDifference.body.attributes = desiredImage.attributes;
      imageDifference.changes.push('attributes');
    }
    if (!imageDifference.empty) {
      writes.push({ method: 'PATCH', entitySet: ENTITY_SETS.images, row: { id: currentImage.sdkmessageprocessingstepimageid, placeholder: '' }, body: () => imageDifference.body });
      difference.changes.push(`image "${image.alias}": ${imageDifference.changes.join(', ')}`);
    }
  }
  // The file lists every image of a step it manages: one it no longer lists is removed.
  for (const stale of imagesByAlias.values()) {
    writes.push({ method: 'DELETE', entitySet: ENTITY_SETS.images, row: { id: stale.sdkmessageprocessingstepimageid, placeholder: '' } });
    difference.changes.push(`image "${stale.entityalias}" removed`);
  }
  return { name: step.name, action: difference.changes.length === 0 ? 'unchanged' : 'updated', changes: difference.changes };
}
