import { z } from 'zod';
import { type ColumnDeclaration, declaredColumnProblems, type TableCatalog } from '../dataverse/tables';
import type { DataverseClient } from '../dataverseApi';
import { queryString } from '../dataverseApi/odata';
import { tableDefinitionPath } from '../dataverseApi/tableMetadata';
import { columnKind } from '../tableTypes/fromMetadata';

/**
 * The columns the handlers name (filtering attributes, image columns) checked against the tables'
 * metadata before `register` writes anything: a misspelt column would otherwise be registered,
 * and its step would never run (a filter on a column no Target carries) or its image would lack
 * the column. The same rule as the generated types decides what a column is
 * (tableTypes/fromMetadata.ts), so what compiles against the generated module is what passes here.
 */

export class ColumnCheckError extends Error {
  override readonly name = 'ColumnCheckError';
}

function fail(problems: string[], source: string): never {
  throw new ColumnCheckError(`${problems.join('; ')} (${source}); nothing was written`);
}

/** `register --plan`: against the generated module, when there is one. */
export function checkColumnsAgainstCatalog(declarations: readonly ColumnDeclaration[], catalog: TableCatalog, source: string): void {
  const problems = declarations.flatMap((declaration) =>
    declaredColumnProblems(declaration, (table) => (Object.hasOwn(catalog, table) ? new Set(Object.keys(catalog[table]!.columns)) : null)),
  );
  if (problems.length > 0) fail(problems, source);
}

const columnsResponse = z.object({
  Attributes: z.array(
    z.object({
      LogicalName: z.string(),
      AttributeType: z.string(),
      AttributeTypeName: z.object({ Value: z.string() }).nullable().optional(),
      AttributeOf: z.string().nullable().optional(),
    }),
  ),
});

/** `register`: against the organization itself, one request per table that a declaration names columns of. */
export async function checkColumnsAgainstOrganization(client: DataverseClient, declarations: readonly ColumnDeclaration[]): Promise<void> {
  const tables = [
    ...new Set(
      declarations
        .filter(
          (declaration) =>
            declaration.entity !== '*' &&
            ((declaration.filteringAttributes?.length ?? 0) > 0 || declaration.images.some((image) => image.columns !== null)),
        )
        .map((declaration) => declaration.entity.toLowerCase()),
    ),
  ];
  const columns = new Map<string, ReadonlySet<string>>();
  for (const table of tables) {
    const definition = await client.get(
      `${tableDefinitionPath(table)}${queryString({ select: ['LogicalName'], expand: 'Attributes($select=LogicalName,AttributeType,AttributeTypeName,AttributeOf)' })}`,
      columnsResponse,
    );
    const names = definition.Attributes.filter(
      (attribute) =>
        columnKind({
          attributeType: attribute.AttributeType,
          attributeTypeName: attribute.AttributeTypeName?.Value ?? null,
          attributeOf: attribute.AttributeOf ?? null,
        }) !== null,
    ).map((attribute) => attribute.LogicalName);
    columns.set(table, new Set(names));
  }
  const problems = declarations.flatMap((declaration) => declaredColumnProblems(declaration, (table) => columns.get(table) ?? null));
  if (problems.length > 0) fail(problems, `the table definitions of ${client.organizationUrl}`);
}
