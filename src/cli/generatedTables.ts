import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { GENERATED_MODULE_NAME, type TableCatalog } from '../dataverse/tables';

/**
 * The generated module of the app, for the commands that check the handlers' columns without
 * asking Dataverse (`register --plan`). They run compiled (dist/src/cli), so they read the compiled
 * module (dist/src/handlers/tables.generated.js), and only while its source exists and is not newer:
 * `tsc` leaves the output of a deleted module behind, and a module regenerated but not rebuilt
 * would check against the old columns. Null when the app has none: the generated types are an
 * upgrade, never a requirement.
 */
export interface GeneratedTables {
  tables: TableCatalog;
  /** Where it came from, for messages. */
  source: string;
}

export class GeneratedTablesError extends Error {
  override readonly name = 'GeneratedTablesError';
}

const SOURCE = `src/handlers/${GENERATED_MODULE_NAME}.ts`;

export function loadGeneratedTables(
  compiled = path.join(__dirname, '..', 'handlers', `${GENERATED_MODULE_NAME}.js`),
  source = path.resolve(__dirname, '..', '..', '..', SOURCE),
): GeneratedTables | null {
  if (!existsSync(source)) return null;
  if (!existsSync(compiled) || statSync(compiled).mtimeMs < statSync(source).mtimeMs) {
    throw new GeneratedTablesError(`${SOURCE} is newer than its build: run "npm run build" first`);
  }
  const loaded = require(compiled) as { tables?: unknown };
  const tables = loaded.tables;
  const valid =
    typeof tables === 'object' &&
    tables !== null &&
    Object.values(tables).every(
      (table) => typeof table === 'object' && table !== null && typeof (table as { columns?: unknown }).columns === 'object',
    );
  if (!valid) throw new GeneratedTablesError(`${SOURCE} does not export the tables "dataverse-webhooks types" writes: run it again`);
  return { tables: tables as TableCatalog, source: SOURCE };
}
