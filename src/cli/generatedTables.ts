import { existsSync } from 'node:fs';
import path from 'node:path';
import { GENERATED_MODULE_NAME, type TableCatalog } from '../dataverse/tables';

/**
 * The generated module of the built app (dist/src/handlers/tables.generated.js), for the commands
 * that check the handlers' columns without asking Dataverse (`register --plan`). Null when the
 * app has none: the generated types are an upgrade, never a requirement.
 */
export interface GeneratedTables {
  tables: TableCatalog;
  /** Where it came from, for messages. */
  source: string;
}

export function loadGeneratedTables(handlersDir = path.join(__dirname, '..', 'handlers')): GeneratedTables | null {
  const file = path.join(handlersDir, `${GENERATED_MODULE_NAME}.js`);
  if (!existsSync(file)) return null;
  const loaded = require(file) as { tables?: unknown };
  const tables = loaded.tables;
  const valid =
    typeof tables === 'object' &&
    tables !== null &&
    Object.values(tables).every((table) => typeof table === 'object' && table !== null && typeof (table as { columns?: unknown }).columns === 'object');
  if (!valid) throw new Error(`${file} does not export the tables "dataverse-webhooks types" writes: run it again`);
  return { tables: tables as TableCatalog, source: `src/handlers/${GENERATED_MODULE_NAME}.ts` };
}
