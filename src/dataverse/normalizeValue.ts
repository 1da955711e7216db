import type { z } from 'zod';
import { looksLikeDataContractDate, parseDataContractDate } from './dates';
import { IssueFound } from './errors';
import { formatPath, memberAt, zodIssues } from './issues';
import type {
  DataverseRecord,
  DataverseValue,
  Entity,
  EntityCollection,
  EntityReference,
  OptionSetValue,
  RelatedEntities,
  Relationship,
  TypedValue,
  UnknownTypedValue,
} from './model';
import {
  isWellFormedEntity,
  isWellFormedEntityCollection,
  isWellFormedEntityReference,
  isWellFormedMoney,
  isWellFormedOptionSetValue,
  type RawKeyValueArray,
  rawAliasedValue,
  rawBooleanManagedProperty,
  rawColumnSet,
  rawEntity,
  rawEntityCollection,
  rawEntityReference,
  rawFetchExpression,
  rawMoney,
  rawOptionSetValue,
  rawRelationship,
} from './rawSchemas';

/** Real values nest a few levels (Entity → EntityCollection → Entity → …); 64 is far beyond any. */
export const MAX_VALUE_DEPTH = 64;

const EMPTY_GUID = '00000000-0000-0000-0000-000000000000';

/**
 * Walks one JSON value. `path` is the location of the value, kept as a mutable stack (push/pop)
 * so that nothing is allocated for paths unless an issue is reported.
 */
export class ValueNormalizer {
  private readonly path: Array<string | number> = [];
  private depth = 0;

  /*
   * The hot methods push and pop path segments and depth inline, without `try`/`finally` or a
   * closure: an issue ends the whole walk (IssueFound goes up to parseDataverseWebhook and nothing
   * resumes it), so a path or depth left unrestored by a throw is never read again.
   */

  constructor(basePath: ReadonlyArray<string | number> = []) {
    this.path.push(...basePath);
  }

  at<T>(segment: string | number, work: () => T): T {
    this.path.push(segment);
    const result = work();
    this.path.pop();
    return result;
  }

  value(raw: unknown): DataverseValue {
    switch (typeof raw) {
      case 'string':
        return looksLikeDataContractDate(raw) ? (parseDataContractDate(raw) ?? raw) : raw;
      case 'number':
      case 'boolean':
        return raw;
      case 'undefined':
        return null;
      case 'object': {
        if (raw === null) return null;
        this.enter();
        const nested = Array.isArray(raw) ? this.array(raw) : this.object(raw as Record<string, unknown>);
        this.depth--;
        return nested;
      }
      default:
        return this.fail(`unexpected ${typeof raw}`);
    }
  }

  /** Key/value DataContract arrays become objects keyed by `key` (later duplicates win). */
  keyValues(raw: RawKeyValueArray | null | undefined): DataverseRecord<DataverseValue> {
    const out: DataverseRecord<DataverseValue> = Object.create(null);
    if (!raw) return out;
    for (let i = 0; i < raw.length; i++) {
      const pair = raw[i]!;
      this.path.push(i, 'value');
      out[pair.key] = this.value(pair.value);
      this.path.pop();
      this.path.pop();
    }
    return out;
  }

  /** `keyValues` of the property `segment`. */
  private keyValuesAt(segment: string, raw: RawKeyValueArray | null | undefined): DataverseRecord<DataverseValue> {
    if (!raw || raw.length === 0) return Object.create(null);
    this.path.push(segment);
    const out = this.keyValues(raw);
    this.path.pop();
    return out;
  }

  /** Pre/PostEntityImages: every value is an Entity, with or without a `__type`. */
  entityImages(raw: RawKeyValueArray | null | undefined): DataverseRecord<Entity> {
    const out: DataverseRecord<Entity> = Object.create(null);
    if (!raw) return out;
    for (let i = 0; i < raw.length; i++) {
      const pair = raw[i]!;
      this.path.push(i, 'value');
      this.enter();
      out[pair.key] = this.entity(pair.value);
      this.depth--;
      this.path.pop();
      this.path.pop();
    }
    return out;
  }

  /** OwningExtension is an EntityReference without a `__type`. */
  optionalEntityReference(raw: unknown): EntityReference | null {
    if (raw === null || raw === undefined) return null;
    return this.nested(() => this.entityReference(raw));
  }

  fail(message: string): never {
    throw new IssueFound('invalid-context', [{ path: formatPath(this.path), message }]);
  }

  private nested<T>(work: () => T): T {
    this.enter();
    const result = work();
    this.depth--;
    return result;
  }

  private enter(): void {
    if (++this.depth > MAX_VALUE_DEPTH) {
      throw new IssueFound('too-deep', [
        { path: `${formatPath(this.path.slice(0, 12))}…`, message: `values nest deeper than ${MAX_VALUE_DEPTH} levels` },
      ]);
    }
  }

  private array(raw: unknown[]): DataverseValue {
    const items: DataverseValue[] = new Array(raw.length);
    for (let i = 0; i < raw.length; i++) {
      this.path.push(i);
      items[i] = this.value(raw[i]);
      this.path.pop();
    }
    return collectionOf(items) ?? items;
  }

  private object(raw: Record<string, unknown>): DataverseValue {
    const dataContractType = raw['__type'];
    if (typeof dataContractType === 'string') return this.typed(typeNameOf(dataContractType), raw);
    if (typeof raw['LogicalName'] === 'string') {
      if (Array.isArray(raw['Attributes'])) return this.entity(raw);
      if (typeof raw['Id'] === 'string') return this.entityReference(raw);
    }
    return this.fields(raw);
  }

  private typed(typeName: string, raw: Record<string, unknown>): DataverseValue {
    switch (typeName) {
      case 'Entity':
        return this.entity(raw);
      case 'EntityReference':
        return this.entityReference(raw);
      case 'OptionSetValue':
        return { $type: 'OptionSetValue', value: (isWellFormedOptionSetValue(raw) ? raw : this.check(rawOptionSetValue, raw)).Value };
      case 'Money':
        return { $type: 'Money', value: (isWellFormedMoney(raw) ? raw : this.check(rawMoney, raw)).Value };
      case 'EntityCollection':
        return this.entityCollection(raw);
      case 'AliasedValue': {
        const aliased = this.check(rawAliasedValue, raw);
        return {
          $type: 'AliasedValue',
          entityLogicalName: aliased.EntityLogicalName,
          attributeLogicalName: aliased.AttributeLogicalName,
          value: this.at('Value', () => this.value(aliased.Value)),
        };
      }
      case 'BooleanManagedProperty': {
        const property = this.check(rawBooleanManagedProperty, raw);
        return {
          $type: 'BooleanManagedProperty',
          value: property.Value,
          canBeChanged: property.CanBeChanged ?? true,
          managedPropertyLogicalName: property.ManagedPropertyLogicalName ?? null,
        };
      }
      case 'Relationship':
        return this.relationship(raw);
      case 'ColumnSet': {
        const columnSet = this.check(rawColumnSet, raw);
        return { $type: 'ColumnSet', allColumns: columnSet.AllColumns ?? false, columns: columnSet.Columns ?? [] };
      }
      case 'FetchExpression':
        return { $type: 'FetchExpression', query: this.check(rawFetchExpression, raw).Query };
      case 'QueryExpression':
      case 'QueryByAttribute':
        return this.fields(raw, typeName);
      default:
        // Primitives that a serializer wrapped with a type hint, e.g. {"__type":"Guid:#System","__value":"…"}.
        if ('__value' in raw && Object.keys(raw).length === 2) return this.at('__value', () => this.value(raw['__value']));
        return this.fields(raw, typeName);
    }
  }

  private entity(raw: unknown): Entity {
    const entity = isWellFormedEntity(raw) ? raw : this.check(rawEntity, raw);
    const formattedValues: DataverseRecord<string> = Object.create(null);
    for (const pair of entity.FormattedValues ?? []) {
      // Labels are text; anything else (never seen in real payloads) is not a label and is left out.
      if (typeof pair.value === 'string') formattedValues[pair.key] = pair.value;
    }
    return {
      $type: 'Entity',
      logicalName: entity.LogicalName,
      id: entity.Id ?? EMPTY_GUID,
      attributes: this.keyValuesAt('Attributes', entity.Attributes),
      formattedValues,
      keyAttributes: this.keyValuesAt('KeyAttributes', entity.KeyAttributes),
      relatedEntities:
        entity.RelatedEntities && entity.RelatedEntities.length > 0
          ? this.at('RelatedEntities', () => this.relatedEntities(entity.RelatedEntities))
          : [],
      rowVersion: entity.RowVersion === null || entity.RowVersion === undefined ? null : String(entity.RowVersion),
      entityState: entity.EntityState ?? null,
    };
  }

  private entityReference(raw: unknown): EntityReference {
    const reference = isWellFormedEntityReference(raw) ? raw : this.check(rawEntityReference, raw);
    return {
      $type: 'EntityReference',
      logicalName: reference.LogicalName,
      id: reference.Id,
      name: reference.Name ?? null,
      keyAttributes: this.keyValuesAt('KeyAttributes', reference.KeyAttributes),
      rowVersion: reference.RowVersion === null || reference.RowVersion === undefined ? null : String(reference.RowVersion),
    };
  }

  private entityCollection(raw: unknown): EntityCollection {
    const collection = isWellFormedEntityCollection(raw) ? raw : this.check(rawEntityCollection, raw);
    const entities: Entity[] = new Array(collection.Entities.length);
    this.path.push('Entities');
    for (let i = 0; i < entities.length; i++) {
      this.path.push(i);
      this.enter();
      entities[i] = this.entity(collection.Entities[i]);
      this.depth--;
      this.path.pop();
    }
    this.path.pop();
    return {
      $type: 'EntityCollection',
      entityName: collection.EntityName ?? null,
      entities,
      moreRecords: collection.MoreRecords ?? false,
      pagingCookie: collection.PagingCookie ?? null,
      totalRecordCount: collection.TotalRecordCount ?? -1,
      totalRecordCountLimitExceeded: collection.TotalRecordCountLimitExceeded ?? false,
      minActiveRowVersion: collection.MinActiveRowVersion ?? null,
    };
  }

  private relationship(raw: unknown): Relationship {
    const relationship = this.check(rawRelationship, raw);
    return {
      $type: 'Relationship',
      schemaName: relationship.SchemaName,
      primaryEntityRole: relationship.PrimaryEntityRole ?? null,
    };
  }

  private relatedEntities(raw: ReadonlyArray<Record<string, unknown>> | null | undefined): RelatedEntities[] {
    if (!raw) return [];
    return raw.map((pair, i) =>
      this.at(i, () =>
        this.nested(() => ({
          relationship: this.at('key', () => this.relationship(pair['key'])),
          collection: this.at('value', () => this.entityCollection(pair['value'])),
        })),
      ),
    );
  }

  /**
   * An object we keep field by field: a plain object (no `__type`), or a typed value we don't model,
   * which then leads with its `$type`. Field names are kept, values normalized; in an issue's path a
   * field is named by its position, since its name is the payload's (it can be customer data).
   *
   * `$type` marks the model's typed values, so a field of that name is refused rather than copied,
   * where it would pass for our tag (`{"$type": "Entity"}` an Entity without id or attributes).
   * Dataverse never sends one: its DataContract JSON writes a type as `__type`, every dictionary
   * as an array of key/value pairs, and an object's members only as the names its data contract
   * declares (dotnet/docs, docs/framework/wcf/feature-details/stand-alone-json-serialization.md,
   * "Collections, Dictionaries and Arrays" and "Preserving Type Information").
   */
  private fields(raw: Record<string, unknown>): { [field: string]: DataverseValue };
  private fields(raw: Record<string, unknown>, $type: string): UnknownTypedValue;
  private fields(raw: Record<string, unknown>, $type?: string): { [field: string]: DataverseValue } {
    const out: { [field: string]: DataverseValue } = Object.create(null);
    if ($type !== undefined) out['$type'] = $type;
    let position = -1;
    for (const key in raw) {
      if (!Object.hasOwn(raw, key)) continue;
      position++;
      if (key === '__type') continue;
      this.path.push(memberAt(position));
      if (key === '$type') this.fail(RESERVED_TYPE_FIELD);
      out[key] = this.value(raw[key]);
      this.path.pop();
    }
    return out;
  }

  private check<S extends z.ZodType>(schema: S, raw: unknown): z.output<S> {
    const result = schema.safeParse(raw);
    if (result.success) return result.data;
    throw new IssueFound('invalid-context', zodIssues(result.error, { at: this.path }));
  }
}

/** The issue for a `$type` field (see `fields`); it names the app's own word, no payload value. */
export const RESERVED_TYPE_FIELD = 'a field named "$type" is refused: the app tags its typed values with it, and Dataverse never sends one';

/** `Entity:http://schemas.microsoft.com/xrm/2011/Contracts` → `Entity`. */
function typeNameOf(dataContractType: string): string {
  const colon = dataContractType.indexOf(':');
  return colon === -1 ? dataContractType : dataContractType.slice(0, colon);
}

/**
 * DataContract serializes OptionSetValueCollection (multi-select choices) and
 * EntityReferenceCollection (Associate's RelatedEntities) as bare arrays, without a wrapper type.
 */
function collectionOf(items: DataverseValue[]): TypedValue | null {
  if (items.length === 0) return null;
  const first = items[0];
  if (!isTypedAs(first, 'OptionSetValue') && !isTypedAs(first, 'EntityReference')) return null;
  const kind = first.$type;
  if (!items.every((item) => isTypedAs(item, kind))) return null;
  if (kind === 'OptionSetValue') {
    return { $type: 'OptionSetValueCollection', values: (items as OptionSetValue[]).map((item) => item.value) };
  }
  return { $type: 'EntityReferenceCollection', references: items as EntityReference[] };
}

function isTypedAs<K extends 'OptionSetValue' | 'EntityReference'>(
  value: DataverseValue | undefined,
  type: K,
): value is Extract<TypedValue, { $type: K }> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && (value as { $type?: unknown }).$type === type;
}
