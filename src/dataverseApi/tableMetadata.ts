import { z } from 'zod';
import type { DataverseClient } from './client';
import { ApiError } from './http';
import { identifier, queryString, stringLiteral } from './odata';

/**
 * Reads what `types` and `register` need to know of a table from its definition (EntityMetadata),
 * as "Query table definitions using the Web API" describes it
 * (https://learn.microsoft.com/power-apps/developer/data-platform/webapi/query-metadata-web-api):
 * - `EntityDefinitions(LogicalName='x')?$select=…&$expand=Attributes($select=…)` gives the table
 *   and every column, but only the properties all AttributeMetadata share;
 * - a choice column's options are on `OptionSet` (or `GlobalOptionSet`, when it uses a global
 *   choice), which only a cast of the Attributes collection to the column's own type can expand:
 *   `…/Attributes/Microsoft.Dynamics.CRM.PicklistAttributeMetadata?$expand=OptionSet,GlobalOptionSet`.
 *   The docs add that the cast cannot be to EnumAttributeMetadata, so Picklist, State, Status and
 *   MultiSelectPicklist are asked for one by one;
 * - a lookup's tables are `Targets` of LookupAttributeMetadata, the type Customer, Owner and
 *   PartyList columns have too.
 * Metadata queries are not paged ("All matching resources will be returned in the first
 * response"), so each is one request.
 */

const label = z
  .object({
    LocalizedLabels: z.array(z.object({ Label: z.string(), LanguageCode: z.number() })).optional(),
    UserLocalizedLabel: z.object({ Label: z.string(), LanguageCode: z.number() }).nullable().optional(),
  })
  .nullable()
  .optional();

/** The label in the signed-in user's language, else the first one, else null. */
function labelText(value: z.infer<typeof label>): string | null {
  return value?.UserLocalizedLabel?.Label ?? value?.LocalizedLabels?.[0]?.Label ?? null;
}

const attributeRow = z.object({
  LogicalName: z.string(),
  SchemaName: z.string(),
  AttributeType: z.string(),
  AttributeTypeName: z.object({ Value: z.string() }).nullable().optional(),
  AttributeOf: z.string().nullable().optional(),
  IsValidForRead: z.boolean().nullable().optional(),
  IsValidForCreate: z.boolean().nullable().optional(),
  IsValidForUpdate: z.boolean().nullable().optional(),
  DisplayName: label,
});

const entityDefinition = z.object({
  LogicalName: z.string(),
  SchemaName: z.string(),
  EntitySetName: z.string(),
  PrimaryIdAttribute: z.string(),
  PrimaryNameAttribute: z.string().nullable().optional(),
  Attributes: z.array(attributeRow),
});

const option = z.object({ Value: z.number().int(), Label: label });
const optionSet = z
  .object({ Options: z.array(option) })
  .nullable()
  .optional();
const enumAttribute = z.object({ LogicalName: z.string(), OptionSet: optionSet, GlobalOptionSet: optionSet });
const lookupAttribute = z.object({ LogicalName: z.string(), Targets: z.array(z.string()).nullable().optional() });

export interface AttributeMetadata {
  logicalName: string;
  schemaName: string;
  /** AttributeType: String, Lookup, Picklist, Virtual… */
  attributeType: string;
  /** AttributeTypeName.Value: StringType, MultiSelectPicklistType, ImageType… */
  attributeTypeName: string | null;
  /** The column this one is a companion of (a lookup's name, a choice's label), or null. */
  attributeOf: string | null;
  isValidForRead: boolean;
  isValidForCreate: boolean;
  isValidForUpdate: boolean;
  displayName: string | null;
  /** Choices: value → label, in value order. */
  options: Array<{ value: number; label: string | null }> | null;
  /** Lookups: the tables it may point to. */
  targets: string[] | null;
}

export interface TableMetadata {
  logicalName: string;
  schemaName: string;
  entitySetName: string;
  primaryIdAttribute: string;
  primaryNameAttribute: string | null;
  attributes: AttributeMetadata[];
}

const ATTRIBUTE_PROPERTIES = [
  'LogicalName',
  'SchemaName',
  'AttributeType',
  'AttributeTypeName',
  'AttributeOf',
  'IsValidForRead',
  'IsValidForCreate',
  'IsValidForUpdate',
  'DisplayName',
];
const TABLE_PROPERTIES = ['LogicalName', 'SchemaName', 'EntitySetName', 'PrimaryIdAttribute', 'PrimaryNameAttribute'];
/** The casts whose OptionSet holds a column's options; State and Status have no global choice. */
const CHOICE_CASTS = [
  { cast: 'PicklistAttributeMetadata', global: true },
  { cast: 'MultiSelectPicklistAttributeMetadata', global: true },
  { cast: 'StateAttributeMetadata', global: false },
  { cast: 'StatusAttributeMetadata', global: false },
] as const;

export class TableNotFoundError extends Error {
  override readonly name = 'TableNotFoundError';
}

/** The path of a table's definition: `EntityDefinitions(LogicalName='contact')`. */
export function tableDefinitionPath(logicalName: string): string {
  return `EntityDefinitions(LogicalName=${stringLiteral(identifier(logicalName.toLowerCase()))})`;
}

/** Every column of a table, with its options and targets: six requests, sent together. */
export async function readTableMetadata(client: DataverseClient, logicalName: string): Promise<TableMetadata> {
  const table = tableDefinitionPath(logicalName);
  const attributes = `${table}/Attributes`;
  const reads = Promise.all([
    client.get(
      `${table}${queryString({ select: TABLE_PROPERTIES, expand: `Attributes($select=${ATTRIBUTE_PROPERTIES.join(',')})` })}`,
      entityDefinition,
    ),
    client.list(
      `${attributes}/Microsoft.Dynamics.CRM.LookupAttributeMetadata${queryString({ select: ['LogicalName', 'Targets'] })}`,
      lookupAttribute,
    ),
    ...CHOICE_CASTS.map(({ cast, global }) =>
      client.list(
        `${attributes}/Microsoft.Dynamics.CRM.${cast}${queryString({ select: ['LogicalName'], expand: global ? 'OptionSet($select=Options),GlobalOptionSet($select=Options)' : 'OptionSet($select=Options)' })}`,
        enumAttribute,
      ),
    ),
  ]);
  const [definition, lookups, ...choices] = await reads.catch((error: unknown) => {
    // Dataverse answers 404 for a table it does not have (its own message names an id, not the name).
    if (error instanceof ApiError && error.status === 404)
      throw new TableNotFoundError(`Dataverse has no table with the logical name "${logicalName}"`);
    throw error;
  });
  const targets = new Map(lookups.map((row) => [row.LogicalName, row.Targets ?? []]));
  const options = new Map(
    choices.flat().map((row) => {
      const set = row.OptionSet ?? row.GlobalOptionSet;
      return [row.LogicalName, (set?.Options ?? []).map((item) => ({ value: item.Value, label: labelText(item.Label) }))];
    }),
  );
  return {
    logicalName: definition.LogicalName,
    schemaName: definition.SchemaName,
    entitySetName: definition.EntitySetName,
    primaryIdAttribute: definition.PrimaryIdAttribute,
    primaryNameAttribute: definition.PrimaryNameAttribute ?? null,
    attributes: definition.Attributes.map((row) => ({
      logicalName: row.LogicalName,
      schemaName: row.SchemaName,
      attributeType: row.AttributeType,
      attributeTypeName: row.AttributeTypeName?.Value ?? null,
      attributeOf: row.AttributeOf ?? null,
      isValidForRead: row.IsValidForRead ?? true,
      isValidForCreate: row.IsValidForCreate ?? false,
      isValidForUpdate: row.IsValidForUpdate ?? false,
      displayName: labelText(row.DisplayName),
      options: options.get(row.LogicalName) ?? null,
      targets: targets.get(row.LogicalName) ?? null,
    })),
  };
}
