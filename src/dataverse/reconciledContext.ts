import { createHash } from 'node:crypto';
import type { ReconcilableMessage } from './reconcileRules';
import {
  dataContractDate,
  keyValues,
  type RawJson,
  rawEntity,
  rawEntityReference,
  rawExecutionContext,
  rawMoney,
  rawOptionSetValue,
} from './samplePayloads';

/**
 * A change found by reconciliation (Dataverse change tracking), written as the RemoteExecutionContext
 * JSON a webhook would have carried, so that it is parsed, queued, deduplicated, retried, replayed
 * and inspected exactly like a delivered event. What change tracking gives is less than a webhook:
 * the row as it is now (the columns asked for), or only the id of a deleted row; so the context has
 * a Target and no images, no ParentContext, no request parameters but the Target (and a Create's
 * `id`), and SharedVariables `dataverse-webhooks.reconciled`.
 *
 * The Web API writes values in OData JSON (https://learn.microsoft.com/power-apps/developer/data-platform/webapi/query/select-columns);
 * each column becomes the DataContract value a webhook carries for it, by the column's type
 * (AttributeType in its definition):
 * - choices (Picklist, State, Status) are integers there, OptionSetValue here; a multi-select
 *   choice is the text "1,2" there, a bare array of OptionSetValue here (as in real captures);
 * - money is a number there, Money here; dates are ISO text there, `/Date(ms)/` here;
 * - a lookup is `_<column>_value` with its table in the annotation
 *   `Microsoft.Dynamics.CRM.lookuplogicalname` and its name in `OData.Community.Display.V1.FormattedValue`
 *   (both asked for with `Prefer: odata.include-annotations`), an EntityReference here;
 * - formatted values (`<column>@OData.Community.Display.V1.FormattedValue`) become the Entity's FormattedValues.
 */

export type ColumnKind = 'text' | 'number' | 'money' | 'boolean' | 'date' | 'choice' | 'choices' | 'lookup' | 'guid';

/** How a column of this type is read and written; null for a column change tracking cannot return usefully (files, images, party lists, calculated virtual columns). */
export function columnKind(attributeType: string, attributeTypeName: string | null): ColumnKind | null {
  const kinds: Record<string, ColumnKind> = {
    String: 'text',
    Memo: 'text',
    EntityName: 'text',
    Integer: 'number',
    BigInt: 'number',
    Decimal: 'number',
    Double: 'number',
    Money: 'money',
    Boolean: 'boolean',
    DateTime: 'date',
    Picklist: 'choice',
    State: 'choice',
    Status: 'choice',
    Lookup: 'lookup',
    Customer: 'lookup',
    Owner: 'lookup',
    Uniqueidentifier: 'guid',
  };
  if (attributeType === 'Virtual') return attributeTypeName === 'MultiSelectPicklistType' ? 'choices' : null;
  return kinds[attributeType] ?? null;
}

/** The name a column has in Web API rows and `$select`: a lookup is `_<column>_value`. */
export function webApiColumn(column: string, kind: ColumnKind): string {
  return kind === 'lookup' ? `_${column}_value` : column;
}

const FORMATTED = '@OData.Community.Display.V1.FormattedValue';
const LOOKUP_TABLE = '@Microsoft.Dynamics.CRM.lookuplogicalname';

/** The annotations a change tracking request asks for, so that lookups and formatted values can be written as a webhook does. */
export const ROW_ANNOTATIONS = ['OData.Community.Display.V1.FormattedValue', 'Microsoft.Dynamics.CRM.lookuplogicalname'] as const;

function columnValue(kind: ColumnKind, name: string, row: Readonly<Record<string, unknown>>): RawJson | undefined {
  const key = webApiColumn(name, kind);
  if (!Object.hasOwn(row, key)) return undefined;
  const value = row[key];
  if (value === null || value === undefined) return null;
  switch (kind) {
    case 'money':
      return typeof value === 'number' ? rawMoney(value) : null;
    case 'date': {
      const time = typeof value === 'string' ? Date.parse(value) : Number.NaN;
      return Number.isNaN(time) ? null : dataContractDate(new Date(time));
    }
    case 'choice':
      return typeof value === 'number' ? rawOptionSetValue(value) : null;
    case 'choices':
      return String(value)
        .split(',')
        .filter((part) => part.trim() !== '')
        .map((part) => rawOptionSetValue(Number(part)));
    case 'lookup': {
      const table = row[`${key}${LOOKUP_TABLE}`];
      const label = row[`${key}${FORMATTED}`];
      return typeof value === 'string' && typeof table === 'string'
        ? rawEntityReference(table, value, typeof label === 'string' ? label : null)
        : null;
    }
    case 'number':
    case 'boolean':
    case 'text':
    case 'guid':
      return typeof value === 'object' ? null : (value as RawJson);
  }
}

/** The Target: the asked-for columns of the row as DataContract attributes, with their formatted values. */
export function reconciledEntity(
  table: string,
  id: string,
  row: Readonly<Record<string, unknown>>,
  columns: ReadonlyMap<string, ColumnKind>,
): RawJson {
  const attributes: Record<string, RawJson> = {};
  const formatted: Record<string, string> = {};
  for (const [name, kind] of columns) {
    const value = columnValue(kind, name, row);
    if (value === undefined) continue;
    attributes[name] = value;
    const label = kind === 'lookup' ? undefined : row[`${name}${FORMATTED}`];
    if (typeof label === 'string') formatted[name] = label;
  }
  return rawEntity(table, id, attributes, formatted);
}

/** A GUID derived from text (RFC 9562 version 8): the same change always gets the same ids. */
export function derivedGuid(text: string): string {
  const hex = createHash('sha256').update(text).digest('hex');
  const variant = ((Number.parseInt(hex[16]!, 16) & 0x3) | 0x8).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-8${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

export interface ReconciledChange {
  table: string;
  id: string;
  message: ReconcilableMessage;
  /** Identifies the change: the same change found twice (two runs, three instances) is one delivery. */
  changeKey: string;
  /** The row as the Web API returned it; null for a Delete. */
  row: Readonly<Record<string, unknown>> | null;
  /** The columns the Target holds, and their kinds. */
  columns: ReadonlyMap<string, ColumnKind>;
  /** When the row last changed (`modifiedon`); for a Delete, when the deletion was found. */
  changedOn: Date;
  /** The row's version number (`@odata.etag`), kept as the Target's RowVersion; null when unknown. */
  rowVersion: string | null;
  organizationId: string;
  /** Who made the change (`modifiedby`, `createdby`), else the app's own identity. */
  userId: string;
}

/** The flag a reconciled context carries in SharedVariables, for `inspect` and anyone reading the payload. */
export const RECONCILED_VARIABLE = 'dataverse-webhooks.reconciled';

/** The RemoteExecutionContext JSON a webhook of this change would have carried, as far as change tracking knows it. */
export function reconciledContext(change: ReconciledChange): Record<string, RawJson> {
  const ids = derivedGuid(`reconcile|${change.changeKey}`);
  const target =
    change.message === 'Delete' || change.row === null
      ? rawEntityReference(change.table, change.id)
      : {
          ...(reconciledEntity(change.table, change.id, change.row, change.columns) as Record<string, RawJson>),
          RowVersion: change.rowVersion,
        };
  const context = rawExecutionContext({
    messageName: change.message,
    entityName: change.table,
    entityId: change.id,
    stage: 40,
    mode: 1,
    depth: 1,
    inputParameters: { Target: target },
    outputParameters: change.message === 'Create' ? { id: change.id } : {},
    operationCreatedOn: change.changedOn,
    correlationId: ids,
    operationId: ids,
    requestId: ids,
  });
  return {
    ...context,
    BusinessUnitId: '00000000-0000-0000-0000-000000000000',
    InitiatingUserAgent: 'dataverse-webhooks reconcile',
    InitiatingUserId: change.userId,
    UserId: change.userId,
    IsInTransaction: false,
    OrganizationId: change.organizationId,
    OrganizationName: null,
    OwningExtension: null,
    SharedVariables: keyValues({ [RECONCILED_VARIABLE]: true }),
  };
}
