/**
 * The normalized Dataverse model that handlers receive. DataContract key/value arrays are plain
 * objects keyed by `key` (with a null prototype, so keys such as `__proto__` stay data), dates are
 * Date objects (ISO 8601 UTC strings once serialized), and typed values carry a `$type`.
 */

import { type ExecutionMode, MODES, STAGES, type StageName } from './steps';

export type DataverseRecord<T> = Record<string, T>;

/** A reference to a row; `Table` narrows `logicalName` where the table types know a lookup's targets. */
export interface EntityReference<Table extends string = string> {
  $type: 'EntityReference';
  logicalName: Table;
  id: string;
  name: string | null;
  keyAttributes: DataverseRecord<DataverseValue>;
  rowVersion: string | null;
}

export interface RelatedEntities {
  relationship: Relationship;
  collection: EntityCollection;
}

/**
 * A row. `Table` and `Attributes` narrow it where the generated table types know its columns
 * (src/dataverse/tables.ts); the defaults are what the parser guarantees for any table.
 */
export interface Entity<Table extends string = string, Attributes extends object = DataverseRecord<DataverseValue>> {
  $type: 'Entity';
  logicalName: Table;
  id: string;
  attributes: Attributes;
  formattedValues: DataverseRecord<string>;
  keyAttributes: DataverseRecord<DataverseValue>;
  relatedEntities: RelatedEntities[];
  rowVersion: string | null;
  entityState: number | null;
}

/** A choice; `Value` narrows it to a column's options where the table types know them. */
export interface OptionSetValue<Value extends number = number> {
  $type: 'OptionSetValue';
  value: Value;
}

export interface OptionSetValueCollection<Value extends number = number> {
  $type: 'OptionSetValueCollection';
  values: Value[];
}

export interface Money {
  $type: 'Money';
  value: number;
}

export interface EntityCollection {
  $type: 'EntityCollection';
  entityName: string | null;
  entities: Entity[];
  moreRecords: boolean;
  pagingCookie: string | null;
  totalRecordCount: number;
  totalRecordCountLimitExceeded: boolean;
  minActiveRowVersion: string | null;
}

export interface EntityReferenceCollection {
  $type: 'EntityReferenceCollection';
  references: EntityReference[];
}

export interface AliasedValue {
  $type: 'AliasedValue';
  entityLogicalName: string;
  attributeLogicalName: string;
  value: DataverseValue;
}

export interface BooleanManagedProperty {
  $type: 'BooleanManagedProperty';
  value: boolean;
  canBeChanged: boolean;
  managedPropertyLogicalName: string | null;
}

export interface Relationship {
  $type: 'Relationship';
  schemaName: string;
  primaryEntityRole: number | null;
}

export interface ColumnSet {
  $type: 'ColumnSet';
  allColumns: boolean;
  columns: string[];
}

export interface FetchExpression {
  $type: 'FetchExpression';
  query: string;
}

/**
 * A query whose structure we pass through: `QueryExpression`, `QueryByAttribute` and the like.
 * Its fields keep their DataContract names, with their values normalized.
 */
export interface StructuredQuery {
  $type: 'QueryExpression' | 'QueryByAttribute';
  [field: string]: DataverseValue;
}

/** A `__type` we have no model for: kept with its DataContract name and every original field. */
export interface UnknownTypedValue {
  $type: string;
  [field: string]: DataverseValue;
}

export type TypedValue =
  | Entity
  | EntityReference
  | OptionSetValue
  | OptionSetValueCollection
  | Money
  | EntityCollection
  | EntityReferenceCollection
  | AliasedValue
  | BooleanManagedProperty
  | Relationship
  | ColumnSet
  | FetchExpression
  | StructuredQuery
  | UnknownTypedValue;

export type DataverseValue = null | boolean | number | string | Date | TypedValue | DataverseValue[] | { [field: string]: DataverseValue };

export type { ExecutionMode, StageName };

/** The `x-ms-*` headers Dataverse sends with a webhook; null when a header was absent. */
export interface DataverseHeaders {
  organization: string | null;
  entityName: string | null;
  requestName: string | null;
  correlationRequestId: string | null;
  requestId: string | null;
}

/** The four properties Dataverse removes when the payload exceeds 256 KB. */
export const TRUNCATED_PROPERTIES = ['ParentContext', 'InputParameters', 'PreEntityImages', 'PostEntityImages'] as const;
export type TruncatedProperty = (typeof TRUNCATED_PROPERTIES)[number];

/** One level of the execution context (the event itself, or a parent context). */
export interface ExecutionContext {
  messageName: string;
  primaryEntityName: string;
  primaryEntityId: string;
  /** Dataverse sends "none"; that becomes null. */
  secondaryEntityName: string | null;
  stage: number;
  stageName: StageName | null;
  mode: ExecutionMode | null;
  depth: number;
  isolationMode: number | null;
  correlationId: string;
  operationId: string | null;
  requestId: string | null;
  organizationId: string;
  organizationName: string | null;
  businessUnitId: string | null;
  userId: string;
  initiatingUserId: string | null;
  initiatingUserAgent: string | null;
  initiatingUserAzureActiveDirectoryObjectId: string | null;
  userAzureActiveDirectoryObjectId: string | null;
  operationCreatedOn: Date | null;
  isExecutingOffline: boolean | null;
  isInTransaction: boolean | null;
  isOfflinePlayback: boolean | null;
  inputParameters: DataverseRecord<DataverseValue>;
  outputParameters: DataverseRecord<DataverseValue>;
  sharedVariables: DataverseRecord<DataverseValue>;
  preEntityImages: DataverseRecord<Entity>;
  postEntityImages: DataverseRecord<Entity>;
  owningExtension: EntityReference | null;
  parentContext: ExecutionContext | null;
  /** InputParameters.Target, when it is an Entity or an EntityReference. */
  target: Entity | EntityReference | null;
  /** Top-level properties this version does not model, kept as they came (values normalized). */
  additionalProperties: DataverseRecord<DataverseValue>;
}

export interface DataverseEvent extends ExecutionContext {
  /** True when `x-ms-dynamics-msg-size-exceeded` was sent: see `removedProperties`. */
  truncated: boolean;
  /**
   * Which of ParentContext, InputParameters, PreEntityImages and PostEntityImages were absent
   * from a truncated body. Empty when not truncated: then an empty collection means the
   * operation had none.
   */
  removedProperties: TruncatedProperty[];
  headers: DataverseHeaders;
}

/** Stage and mode numbers by name; the tables live with the other step vocabulary in steps.ts. */
export const STAGE_NAMES: Readonly<Record<number, StageName>> = Object.fromEntries(
  Object.entries(STAGES).map(([name, value]) => [value, name as StageName]),
);

export const EXECUTION_MODES: Readonly<Record<number, ExecutionMode>> = Object.fromEntries(
  Object.entries(MODES).map(([name, value]) => [value, name as ExecutionMode]),
);

export function isEntity(value: DataverseValue | undefined): value is Entity {
  return isTyped(value) && value.$type === 'Entity';
}

export function isEntityReference(value: DataverseValue | undefined): value is EntityReference {
  return isTyped(value) && value.$type === 'EntityReference';
}

export function isEntityCollection(value: DataverseValue | undefined): value is EntityCollection {
  return isTyped(value) && value.$type === 'EntityCollection';
}

function isTyped(value: DataverseValue | undefined): value is TypedValue {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date) && '$type' in value;
}
