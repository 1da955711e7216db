import { type DataverseEvent, type DataverseValue, type Entity, isEntity, isEntityCollection, isEntityReference } from './model';

/**
 * Typed reads of a normalized event, for handlers. They stay in the domain core: they need no
 * Azure and work on what `inspect` prints.
 */

/** One attribute an Update changed: its value in the pre-image (if registered) and in the Target. */
export interface AttributeChange {
  attribute: string;
  /** undefined when no pre-image carries the attribute (the step has no pre-image, or not that column). */
  from: DataverseValue | undefined;
  to: DataverseValue;
}

function firstImage(images: Record<string, Entity>, alias?: string): Entity | null {
  if (alias !== undefined) return images[alias] ?? null;
  for (const image of Object.values(images)) return image;
  return null;
}

/** The pre-image registered under `alias`, or the only/first one. */
export function preImage(event: DataverseEvent, alias?: string): Entity | null {
  return firstImage(event.preEntityImages, alias);
}

/** The post-image registered under `alias`, or the only/first one. */
export function postImage(event: DataverseEvent, alias?: string): Entity | null {
  return firstImage(event.postEntityImages, alias);
}

/** The Target when it is an Entity (Create, Update), else null (Delete carries an EntityReference). */
export function targetEntity(event: DataverseEvent): Entity | null {
  return isEntity(event.target) ? event.target : null;
}

/**
 * The latest value of an attribute the event knows: the Target first (what the operation wrote),
 * then the post-image, then the pre-image. undefined when none carries it.
 */
export function attribute(event: DataverseEvent, name: string): DataverseValue | undefined {
  for (const entity of [targetEntity(event), postImage(event), preImage(event)]) {
    if (entity && Object.hasOwn(entity.attributes, name)) return entity.attributes[name];
  }
  return undefined;
}

/**
 * What an Update changed: every attribute of the Target whose value differs from the pre-image
 * (all of them when there is no pre-image, or `null` is passed for it). The primary key and the modified* bookkeeping columns
 * are left out: Dataverse writes them on every update.
 */
export function changedAttributes(event: DataverseEvent, preImageAlias?: string | null): AttributeChange[] {
  const target = targetEntity(event);
  if (!target) return [];
  // null: compare with no image (every column of the Target is a change); undefined: the first pre-image.
  const before = preImageAlias === null ? null : preImage(event, preImageAlias);
  const changes: AttributeChange[] = [];
  for (const [name, to] of Object.entries(target.attributes)) {
    if (BOOKKEEPING_ATTRIBUTES.has(name) || name === `${target.logicalName}id`) continue;
    const from = before && Object.hasOwn(before.attributes, name) ? before.attributes[name] : undefined;
    if (from !== undefined && sameValue(from, to)) continue;
    changes.push({ attribute: name, from, to });
  }
  return changes;
}

const BOOKKEEPING_ATTRIBUTES = new Set(['modifiedon', 'modifiedby', 'modifiedonbehalfby', 'versionnumber']);

function sameValue(a: DataverseValue | undefined, b: DataverseValue | undefined): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

const EMPTY_GUID = '00000000-0000-0000-0000-000000000000';
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The ids a create answered with: `Ids` of a CreateMultiple (in the order of Targets), `id` of a Create. */
function createdIds(event: DataverseEvent): string[] {
  const ids = event.outputParameters['Ids'];
  if (Array.isArray(ids)) return ids.filter((id): id is string => typeof id === 'string' && GUID.test(id));
  const id = event.outputParameters['id'];
  return typeof id === 'string' && GUID.test(id) ? [id] : [];
}

/** A record known only by its table and id: the Target was a reference, or the event was truncated. */
function recordStub(logicalName: string, id: string): Entity {
  return {
    $type: 'Entity',
    logicalName,
    id,
    attributes: Object.create(null) as Entity['attributes'],
    formattedValues: Object.create(null) as Entity['formattedValues'],
    keyAttributes: Object.create(null) as Entity['keyAttributes'],
    relatedEntities: [],
    rowVersion: null,
    entityState: null,
  };
}

function withId(entity: Entity, id: string | undefined): Entity {
  return entity.id === EMPTY_GUID && id !== undefined && id !== EMPTY_GUID ? { ...entity, id } : entity;
}

/**
 * The records an event is about, one Entity each: the entities of `Targets` (CreateMultiple,
 * UpdateMultiple, UpsertMultiple), else the Target. A record whose id the request left empty takes
 * the one the create answered with (`Ids` of CreateMultiple, `id` of Create). When the Target is a
 * reference (Delete) or the event was truncated (no InputParameters), each record is a stub with its
 * table and id and no attributes: the created `Ids`, else PrimaryEntityId. Empty only when no
 * record id is known at all (a truncated UpdateMultiple).
 */
export function targetRecords(event: DataverseEvent): Entity[] {
  const ids = createdIds(event);
  const targets = event.inputParameters['Targets'];
  if (isEntityCollection(targets)) return targets.entities.map((entity, index) => withId(entity, ids[index]));
  const target = targetEntity(event);
  if (target) return [withId(target, ids[0] ?? event.primaryEntityId)];
  if (isEntityReference(event.target)) return [recordStub(event.target.logicalName, event.target.id)];
  if (ids.length > 0) return ids.map((id) => recordStub(event.primaryEntityName, id));
  return event.primaryEntityId === EMPTY_GUID ? [] : [recordStub(event.primaryEntityName, event.primaryEntityId)];
}

/**
 * How recent the record state in this event is, for ordering events of one record. Prefers the
 * row's `versionnumber` (strictly increasing per table), then `modifiedon`, then the time the
 * operation was created; values of different kinds are never compared.
 */
export interface RecordVersion {
  kind: 'versionnumber' | 'modifiedon' | 'operationCreatedOn';
  value: bigint;
}

export function recordVersion(event: DataverseEvent, record: Entity | null = targetEntity(event)): RecordVersion | null {
  const sources = [record, postImage(event)];
  for (const source of sources) {
    const version = source?.attributes['versionnumber'];
    if (typeof version === 'number' && Number.isInteger(version)) return { kind: 'versionnumber', value: BigInt(version) };
    if (typeof version === 'string' && /^\d+$/.test(version)) return { kind: 'versionnumber', value: BigInt(version) };
  }
  for (const source of sources) {
    const modifiedOn = source?.attributes['modifiedon'];
    if (modifiedOn instanceof Date) return { kind: 'modifiedon', value: BigInt(modifiedOn.getTime()) };
  }
  if (event.operationCreatedOn) return { kind: 'operationCreatedOn', value: BigInt(event.operationCreatedOn.getTime()) };
  return null;
}
