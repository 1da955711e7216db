import type { ColumnSpec, TableSpec } from '../dataverse/tables';
import type { AttributeMetadata, TableMetadata } from '../dataverseApi/tableMetadata';

/**
 * Which columns of a table's metadata become typed columns, and as what. The rule is what a
 * webhook's entities (Target, images, Targets of a bulk message) can hold, as the parser gives it:
 *
 * - Columns are keyed by logical name, as the execution context's Attributes are; the schema name
 *   and display name are kept for the module's doc comments only.
 * - A companion column (`AttributeOf` set) is left out: a lookup's name and yomi name
 *   (`parentcustomeridname`, `owneridyominame`), its table (`owneridtype`), a choice's or yes/no's
 *   label (`gendercodename`, Virtual), the image's URL and timestamp. Dataverse fills them for
 *   reads; in the execution context the name is the EntityReference's `name` and the label is in
 *   `formattedValues`. The one exception is an image column's data (`entityimage`, AttributeOf
 *   `entityimageid`), which a Target carries when the image is written.
 * - A Virtual column that is not a multi-select choice, an image or a file has no value of its own
 *   and is left out.
 * - Everything else is kept, read-only or not: `*_base` money (CalculationOf its column,
 *   computed by Dataverse, present in PostOperation Targets, as fixture 03 shows), `yomi*`
 *   phonetic names (real text columns; a contact's Target carries `yomifullname`, as the sample in
 *   use-webhooks.md shows), computed columns such as `fullname`, and columns not valid for read
 *   (`isprivate`: Dataverse itself puts it in an account's Create Target, fixture 06).
 * - Multi-table lookups keep every target: a Customer column is an EntityReference to account or
 *   contact, an Owner column to systemuser or team, a PartyList column an EntityCollection of
 *   activityparty rows.
 */

const VIRTUAL_KINDS: Readonly<Record<string, ColumnSpec['type']>> = {
  MultiSelectPicklistType: 'MultiSelectPicklist',
  ImageType: 'Image',
  FileType: 'File',
};

const PLAIN_KINDS: Readonly<Record<string, ColumnSpec['type']>> = {
  String: 'String',
  Memo: 'Memo',
  EntityName: 'EntityName',
  Uniqueidentifier: 'Uniqueidentifier',
  Integer: 'Integer',
  BigInt: 'BigInt',
  Decimal: 'Decimal',
  Double: 'Double',
  Boolean: 'Boolean',
  DateTime: 'DateTime',
  Money: 'Money',
  PartyList: 'PartyList',
  ManagedProperty: 'ManagedProperty',
};

/** The kind of a column, or null for one a webhook entity never holds. */
export function columnKind(
  attribute: Pick<AttributeMetadata, 'attributeType' | 'attributeTypeName' | 'attributeOf'>,
): ColumnSpec['type'] | null {
  const virtualKind = attribute.attributeTypeName ? VIRTUAL_KINDS[attribute.attributeTypeName] : undefined;
  if (attribute.attributeOf !== null && virtualKind !== 'Image') return null;
  if (attribute.attributeType === 'Virtual') return virtualKind ?? null;
  if (['Picklist', 'State', 'Status', 'Lookup', 'Customer', 'Owner'].includes(attribute.attributeType))
    return attribute.attributeType as ColumnSpec['type'];
  return PLAIN_KINDS[attribute.attributeType] ?? 'Other';
}

function columnSpec(attribute: AttributeMetadata, type: ColumnSpec['type']): ColumnSpec {
  const described = { schemaName: attribute.schemaName, ...(attribute.displayName ? { label: attribute.displayName } : {}) };
  switch (type) {
    case 'Picklist':
    case 'State':
    case 'Status':
    case 'MultiSelectPicklist': {
      // Every choice column has an option set; one the casts did not return is left untyped rather than typed wrong.
      if (!attribute.options) return { ...described, type: 'Other' };
      const options: Record<number, string> = {};
      for (const option of [...attribute.options].sort((a, b) => a.value - b.value))
        options[option.value] = option.label ?? String(option.value);
      return { ...described, type, options };
    }
    case 'Lookup':
    case 'Customer':
    case 'Owner': {
      if (!attribute.targets || attribute.targets.length === 0) return { ...described, type: 'Other' };
      return { ...described, type, targets: [...new Set(attribute.targets)].sort() };
    }
    default:
      return { ...described, type } as ColumnSpec;
  }
}

/** A table's metadata as the generated module describes it: its typed columns, sorted by logical name. */
export function tableSpec(metadata: TableMetadata): TableSpec {
  const columns: Record<string, ColumnSpec> = {};
  for (const attribute of [...metadata.attributes].sort((a, b) => compare(a.logicalName, b.logicalName))) {
    const type = columnKind(attribute);
    if (type !== null) columns[attribute.logicalName] = columnSpec(attribute, type);
  }
  return {
    schemaName: metadata.schemaName,
    entitySetName: metadata.entitySetName,
    primaryIdAttribute: metadata.primaryIdAttribute,
    primaryNameAttribute: metadata.primaryNameAttribute,
    columns,
  };
}

/** Ordinal order, the same on every machine and locale. */
export function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
