import { readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { SAMPLES_DIR } from './fixtures';
import type { ColumnFacts, TableFacts } from './tableMetadata';

/**
 * Real table definitions (samples/table-definitions: what two organizations' RetrieveMetadataChanges
 * returned, see its README), as facts the Web API stand-in (fakeDataverse.ts) serves, so that
 * `types` generates a module from real metadata. What the files do not hold is taken as Dataverse
 * has it by default: every column valid for read, create and update; the table's primary id
 * `<table>id`; its primary name `name`, or `<prefix>_name` for a custom table.
 */
export const TABLE_DEFINITIONS_DIR = path.join(SAMPLES_DIR, 'table-definitions');

const label = z.object({ UserLocalizedLabel: z.object({ Label: z.string() }).nullish() }).nullish();
const attribute = z.object({
  LogicalName: z.string(),
  SchemaName: z.string(),
  AttributeType: z.string(),
  AttributeTypeName: z.object({ Value: z.string() }).optional(),
  AttributeOf: z.string().nullish(),
  DisplayName: label,
  Targets: z.array(z.string()).optional(),
  OptionSet: z
    .object({
      IsGlobal: z.boolean().optional(),
      Name: z.string().optional(),
      Options: z.array(z.object({ Value: z.number(), Label: label })).optional(),
    })
    .nullish(),
});
const definition = z.object({ LogicalName: z.string(), SchemaName: z.string(), EntitySetName: z.string(), Attributes: z.array(attribute) });

export function realTableFacts(table: string): TableFacts {
  const parsed = definition.parse(JSON.parse(readFileSync(path.join(TABLE_DEFINITIONS_DIR, `${table}.json`), 'utf8')));
  const columns: ColumnFacts[] = parsed.Attributes.map((column) => {
    const typeName = column.AttributeTypeName?.Value.replace(/Type$/, '');
    const facts: ColumnFacts = {
      logicalName: column.LogicalName,
      schemaName: column.SchemaName,
      attributeType: column.AttributeType,
      ...(typeName && typeName !== column.AttributeType ? { attributeTypeName: typeName } : {}),
      displayName: column.DisplayName?.UserLocalizedLabel?.Label ?? null,
      attributeOf: column.AttributeOf ?? null,
      isValidForCreate: true,
      isValidForUpdate: true,
      isValidForRead: true,
    };
    // A yes/no column's OptionSet has TrueOption and FalseOption, and its value is a boolean.
    if (column.OptionSet?.Options) {
      facts.options = column.OptionSet.Options.map((option) => [
        option.Value,
        option.Label?.UserLocalizedLabel?.Label ?? String(option.Value),
      ]);
      if (column.OptionSet.IsGlobal && column.OptionSet.Name) facts.globalChoice = column.OptionSet.Name;
    }
    if (column.Targets) facts.targets = column.Targets;
    return facts;
  });
  const prefix = parsed.LogicalName.includes('_') ? `${parsed.LogicalName.split('_')[0]}_` : '';
  const primaryName = columns.some((column) => column.logicalName === `${prefix}name`) ? `${prefix}name` : 'name';
  return {
    logicalName: parsed.LogicalName,
    schemaName: parsed.SchemaName,
    entitySetName: parsed.EntitySetName,
    primaryIdAttribute: `${parsed.LogicalName}id`,
    primaryNameAttribute: primaryName,
    displayName: parsed.SchemaName,
    columns,
  };
}
