import { z } from 'zod';

/**
 * zod schemas for the DataContract JSON that Dataverse sends, one per shape. They validate
 * one level at a time: nested values are `unknown` here and normalized (and validated) by
 * `normalizeValue`, which tracks depth and paths. That keeps hostile nesting off the stack.
 */

/** 1 for the code units of hexadecimal digits, any case. */
const HEX_DIGIT = new Uint8Array(128);
for (const digit of '0123456789abcdefABCDEF') HEX_DIGIT[digit.charCodeAt(0)] = 1;

/** `6d81597f-0f9f-e711-8122-000d3aa2331c`, any case. A table lookup per character: a dozen run per context. */
export function isGuid(text: unknown): text is string {
  if (typeof text !== 'string' || text.length !== 36) return false;
  if (text.charCodeAt(8) !== 45 || text.charCodeAt(13) !== 45 || text.charCodeAt(18) !== 45 || text.charCodeAt(23) !== 45) return false; // '-'
  for (let i = 0; i < 36; i++) {
    const code = text.charCodeAt(i);
    if (code > 127 || (HEX_DIGIT[code] === 0 && i !== 8 && i !== 13 && i !== 18 && i !== 23)) return false;
  }
  return true;
}
export const guid = z.custom<string>(isGuid, 'expected a GUID');

export type RawKeyValueArray = ReadonlyArray<{ key: string; value?: unknown }>;

/**
 * Checked in place rather than rebuilt by zod: attribute arrays are the bulk of a payload, and
 * copying every pair only to walk it again doubled the cost of normalizing.
 */
export function isKeyValueArray(raw: unknown): raw is RawKeyValueArray {
  if (!Array.isArray(raw)) return false;
  for (let i = 0; i < raw.length; i++) {
    const pair: unknown = raw[i];
    if (typeof pair !== 'object' || pair === null || typeof (pair as { key?: unknown }).key !== 'string') return false;
  }
  return true;
}
export const keyValueArray = z.custom<RawKeyValueArray>(isKeyValueArray, 'expected an array of {"key", "value"} pairs');

/**
 * `z.array(item)` that stops at the first element `isItem` refuses and names that one only.
 * zod's own array schema builds an issue for every bad element before any is reported: two million
 * bad `Columns` took seconds and a gigabyte of heap to report five.
 */
function arrayOf<T>(isItem: (item: unknown) => item is T, expected: string) {
  return z
    .custom<T[]>((raw) => Array.isArray(raw), 'expected an array')
    .superRefine((items, context) => {
      const bad = firstRefused(items, isItem);
      if (bad !== -1) context.addIssue({ code: 'custom', path: [bad], message: expected, input: items[bad] });
    });
}

/** The index of the first item `isItem` refuses, or -1. */
function firstRefused(items: readonly unknown[], isItem: (item: unknown) => boolean): number {
  for (let i = 0; i < items.length; i++) if (!isItem(items[i])) return i;
  return -1;
}

const isString = (value: unknown): value is string => typeof value === 'string';
const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** Real captures give `RowVersion` as a string ("5948260"); a number is accepted and kept as text. */
const rowVersion = z.union([z.string(), z.number()]).nullish();

export const rawEntityReference = z.object({
  Id: guid,
  LogicalName: z.string(),
  Name: z.string().nullish(),
  KeyAttributes: keyValueArray.nullish(),
  RowVersion: rowVersion,
});

export const rawEntity = z.object({
  LogicalName: z.string(),
  Id: guid.nullish(),
  Attributes: keyValueArray,
  FormattedValues: keyValueArray.nullish(),
  KeyAttributes: keyValueArray.nullish(),
  /** Each pair's key (a Relationship) and value (an EntityCollection) are checked as they are normalized. */
  RelatedEntities: arrayOf(isObject, 'expected a {"key", "value"} pair').nullish(),
  RowVersion: rowVersion,
  EntityState: z.number().int().nullish(),
});

export const rawOptionSetValue = z.object({ Value: z.number().int() });

export const rawMoney = z.object({ Value: z.number() });

export const rawEntityCollection = z.object({
  Entities: z.array(z.unknown()),
  EntityName: z.string().nullish(),
  MoreRecords: z.boolean().nullish(),
  PagingCookie: z.string().nullish(),
  TotalRecordCount: z.number().int().nullish(),
  TotalRecordCountLimitExceeded: z.boolean().nullish(),
  MinActiveRowVersion: z.string().nullish(),
});

export const rawAliasedValue = z.object({
  EntityLogicalName: z.string(),
  AttributeLogicalName: z.string(),
  Value: z.unknown(),
});

export const rawBooleanManagedProperty = z.object({
  Value: z.boolean(),
  CanBeChanged: z.boolean().nullish(),
  ManagedPropertyLogicalName: z.string().nullish(),
});

export const rawRelationship = z.object({
  SchemaName: z.string(),
  PrimaryEntityRole: z.number().int().nullish(),
});

export const rawColumnSet = z.object({
  AllColumns: z.boolean().nullish(),
  Columns: arrayOf(isString, 'expected a column name').nullish(),
});

export const rawFetchExpression = z.object({ Query: z.string() });

/**
 * One level of RemoteExecutionContext. Required: what identifies and routes an event, which
 * every capture since 2017 carries. Optional: what older contexts lack or truncation removes.
 */
export const rawExecutionContext = z.object({
  MessageName: z.string().min(1),
  PrimaryEntityName: z.string(),
  PrimaryEntityId: guid,
  SecondaryEntityName: z.string().nullish(),
  Stage: z.number().int(),
  Mode: z.number().int(),
  Depth: z.number().int(),
  IsolationMode: z.number().int().nullish(),
  CorrelationId: guid,
  OperationId: guid.nullish(),
  RequestId: guid.nullish(),
  OrganizationId: guid,
  OrganizationName: z.string().nullish(),
  BusinessUnitId: guid.nullish(),
  UserId: guid,
  InitiatingUserId: guid.nullish(),
  InitiatingUserAgent: z.string().nullish(),
  InitiatingUserAzureActiveDirectoryObjectId: guid.nullish(),
  UserAzureActiveDirectoryObjectId: guid.nullish(),
  OperationCreatedOn: z.string().nullish(),
  IsExecutingOffline: z.boolean().nullish(),
  IsInTransaction: z.boolean().nullish(),
  IsOfflinePlayback: z.boolean().nullish(),
  InputParameters: keyValueArray.nullish(),
  OutputParameters: keyValueArray.nullish(),
  SharedVariables: keyValueArray.nullish(),
  PreEntityImages: keyValueArray.nullish(),
  PostEntityImages: keyValueArray.nullish(),
  OwningExtension: z.unknown().optional(),
  ParentContext: z.unknown().optional(),
});
export type RawExecutionContext = z.infer<typeof rawExecutionContext>;
export const EXECUTION_CONTEXT_PROPERTIES: ReadonlySet<string> = new Set(Object.keys(rawExecutionContext.shape));

/*
 * Fast paths. zod's object parsing costs more than the rest of normalizing a small context, and is
 * paid again for every entity of a CreateMultiple. Each check below is true only for a value its
 * schema above accepts unchanged (so the value itself can be used as the schema's output); for
 * anything else the caller runs the schema, which reports the failing paths. Each check also takes
 * everything its schema accepts, so the two agree on every input: test/dataverse/rawSchemas.test.ts
 * holds each check to its schema field by field, and test/dataverse/fastChecks.test.ts on ten
 * thousand mutations of the real samples.
 */

const isNullish = (value: unknown): value is null | undefined => value === null || value === undefined;
/** `z.number().int()` accepts safe integers only. */
const isInt = (value: unknown): value is number => Number.isSafeInteger(value);
const nullishString = (value: unknown) => isNullish(value) || typeof value === 'string';
const nullishGuid = (value: unknown) => isNullish(value) || isGuid(value);
const nullishInt = (value: unknown) => isNullish(value) || isInt(value);
const nullishBoolean = (value: unknown) => isNullish(value) || typeof value === 'boolean';
const nullishKeyValues = (value: unknown) => isNullish(value) || isKeyValueArray(value);
/** `z.number()` refuses Infinity, which JSON.parse makes of a number too large for a double (1e400). */
const isFiniteNumber = (value: unknown): value is number => Number.isFinite(value);
const nullishRowVersion = (value: unknown) => isNullish(value) || typeof value === 'string' || isFiniteNumber(value);

/** What `rawExecutionContext` accepts unchanged (see above). */
export function isWellFormedExecutionContext(raw: unknown): raw is RawExecutionContext {
  if (!isObject(raw)) return false;
  const context = raw;
  return (
    typeof context['MessageName'] === 'string' &&
    context['MessageName'].length > 0 &&
    typeof context['PrimaryEntityName'] === 'string' &&
    isGuid(context['PrimaryEntityId']) &&
    nullishString(context['SecondaryEntityName']) &&
    isInt(context['Stage']) &&
    isInt(context['Mode']) &&
    isInt(context['Depth']) &&
    nullishInt(context['IsolationMode']) &&
    isGuid(context['CorrelationId']) &&
    nullishGuid(context['OperationId']) &&
    nullishGuid(context['RequestId']) &&
    isGuid(context['OrganizationId']) &&
    nullishString(context['OrganizationName']) &&
    nullishGuid(context['BusinessUnitId']) &&
    isGuid(context['UserId']) &&
    nullishGuid(context['InitiatingUserId']) &&
    nullishString(context['InitiatingUserAgent']) &&
    nullishGuid(context['InitiatingUserAzureActiveDirectoryObjectId']) &&
    nullishGuid(context['UserAzureActiveDirectoryObjectId']) &&
    nullishString(context['OperationCreatedOn']) &&
    nullishBoolean(context['IsExecutingOffline']) &&
    nullishBoolean(context['IsInTransaction']) &&
    nullishBoolean(context['IsOfflinePlayback']) &&
    nullishKeyValues(context['InputParameters']) &&
    nullishKeyValues(context['OutputParameters']) &&
    nullishKeyValues(context['SharedVariables']) &&
    nullishKeyValues(context['PreEntityImages']) &&
    nullishKeyValues(context['PostEntityImages'])
  );
}

export type RawEntity = z.output<typeof rawEntity>;

/** What `rawEntity` accepts unchanged. */
export function isWellFormedEntity(raw: unknown): raw is RawEntity {
  if (!isObject(raw)) return false;
  return (
    typeof raw['LogicalName'] === 'string' &&
    nullishGuid(raw['Id']) &&
    isKeyValueArray(raw['Attributes']) &&
    nullishKeyValues(raw['FormattedValues']) &&
    nullishKeyValues(raw['KeyAttributes']) &&
    (isNullish(raw['RelatedEntities']) ||
      (Array.isArray(raw['RelatedEntities']) && firstRefused(raw['RelatedEntities'], isObject) === -1)) &&
    nullishRowVersion(raw['RowVersion']) &&
    nullishInt(raw['EntityState'])
  );
}

export type RawEntityCollection = z.output<typeof rawEntityCollection>;

/** What `rawEntityCollection` accepts unchanged. */
export function isWellFormedEntityCollection(raw: unknown): raw is RawEntityCollection {
  if (!isObject(raw)) return false;
  return (
    Array.isArray(raw['Entities']) &&
    nullishString(raw['EntityName']) &&
    nullishBoolean(raw['MoreRecords']) &&
    nullishString(raw['PagingCookie']) &&
    nullishInt(raw['TotalRecordCount']) &&
    nullishBoolean(raw['TotalRecordCountLimitExceeded']) &&
    nullishString(raw['MinActiveRowVersion'])
  );
}

export type RawEntityReference = z.output<typeof rawEntityReference>;

/** What `rawEntityReference` accepts unchanged: the commonest typed value of all. */
export function isWellFormedEntityReference(raw: unknown): raw is RawEntityReference {
  if (!isObject(raw)) return false;
  return (
    isGuid(raw['Id']) &&
    typeof raw['LogicalName'] === 'string' &&
    nullishString(raw['Name']) &&
    nullishKeyValues(raw['KeyAttributes']) &&
    nullishRowVersion(raw['RowVersion'])
  );
}

/** What `rawOptionSetValue` accepts unchanged: a safe integer, not 2^53 + 2 rounded to its neighbour. */
export function isWellFormedOptionSetValue(raw: unknown): raw is z.output<typeof rawOptionSetValue> {
  return isObject(raw) && isInt(raw['Value']);
}

/** What `rawMoney` accepts unchanged: a finite number. */
export function isWellFormedMoney(raw: unknown): raw is z.output<typeof rawMoney> {
  return isObject(raw) && isFiniteNumber(raw['Value']);
}
