import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { LOGICAL_NAME } from '../dataverse/steps';
import { GENERATED_MODULE_NAME, type TableCatalog } from '../dataverse/tables';
import { WEB_API_VERSION } from '../dataverseApi';
import { readTableMetadata } from '../dataverseApi/tableMetadata';
import type { HandlerRegistry } from '../pipeline/handlerRegistry';
import { compare, tableSpec } from '../tableTypes/fromMetadata';
import { renderModule } from '../tableTypes/render';
import { type HandlersSource, loadAppHandlers, resolveHandlers } from './appHandlers';
import {
  AUTHENTICATION_HELP,
  AZURE_DEPENDENCIES,
  type ConnectionDependencies,
  connectToDataverse,
  ORG_OPTION_HELP,
  organizationUrl,
} from './dataverseConnection';
import { type CommandIO, UsageError } from './io';

export const DEFAULT_TYPES_FILE = path.join('src', 'handlers', `${GENERATED_MODULE_NAME}.ts`);
/** The module the generated one augments, from the app's folder. */
const TABLES_MODULE = path.join('src', 'dataverse', 'tables');

export const TYPES_USAGE = `Usage: dataverse-webhooks types [--org URL] [--tables a,b] [--out FILE] [--check]

Writes the TypeScript types of your tables' columns, read from the organization's table definitions.

With them handlers get their columns typed, and a misspelt column does not compile.

Reads each table's columns, the options of its choices and the tables its lookups point to, and
writes one module (default: ${DEFAULT_TYPES_FILE}) for you to commit. With it, a handler
declared with \`entity: 'contact'\` gets ctx.record, its images and changes typed by contact's
columns, and its filteringAttributes and image columns must be contact's. Without it everything
compiles as before. The module is sorted and holds no date: run the command again after the
tables change, and the diff shows what changed.

${ORG_OPTION_HELP}
  --tables a,b     the tables' logical names (default: every table a handler declares)
  --out FILE       where to write the module (default: ${DEFAULT_TYPES_FILE}); register --plan
                   and the README's checks read it there
  --check          write nothing; exit 1 when the module differs from what the organization
                   gives now (for CI)

${AUTHENTICATION_HELP}`;

export function createTypesCommand(dependencies: ConnectionDependencies, handlerSource: HandlersSource = loadAppHandlers) {
  return async function typesCommand(args: string[], io: CommandIO): Promise<number> {
    const { values } = parseArgs({
      args,
      allowPositionals: false,
      options: {
        org: { type: 'string' },
        tables: { type: 'string' },
        out: { type: 'string' },
        check: { type: 'boolean', default: false },
      },
    });
    const tables = values.tables !== undefined ? listedTables(values.tables) : declaredTables(await resolveHandlers(handlerSource));
    organizationUrl(values.org, io);
    const out = path.resolve(io.cwd, values.out ?? DEFAULT_TYPES_FILE);

    const { client } = connectToDataverse(values.org, io, dependencies);
    const catalog: Record<string, TableCatalog[string]> = {};
    for (const table of tables) catalog[table] = tableSpec(await readTableMetadata(client, table));

    let tablesModule = path.relative(path.dirname(out), path.resolve(io.cwd, TABLES_MODULE)).split(path.sep).join('/');
    if (!tablesModule.startsWith('.')) tablesModule = `./${tablesModule}`;
    const text = renderModule(catalog, { organization: client.organizationUrl, tables, tablesModule, webApiVersion: WEB_API_VERSION });
    const shown = path.relative(io.cwd, out) || out;
    const summary = tables.map((table) => `${table} ${Object.keys(catalog[table]!.columns).length}`).join(', ');

    if (values.check) {
      const current = await readFile(out, 'utf8').catch(() => null);
      if (current === text) {
        io.stdout(`${shown} is up to date (${summary} columns).\n`);
        return 0;
      }
      io.stderr(
        `${shown} ${current === null ? 'does not exist' : 'differs from the table definitions'}: run "dataverse-webhooks types${values.tables !== undefined ? ` --tables ${tables.join(',')}` : ''}" and commit the result\n`,
      );
      return 1;
    }
    await mkdir(path.dirname(out), { recursive: true });
    await writeFile(out, text);
    io.stdout(`Wrote ${shown}: ${summary} columns, ${Buffer.byteLength(text)} bytes.\n`);
    return 0;
  };
}

export const typesCommand = createTypesCommand(AZURE_DEPENDENCIES);

function listedTables(text: string): string[] {
  const tables = text
    .split(',')
    .map((table) => table.trim().toLowerCase())
    .filter(Boolean);
  if (tables.length === 0) throw new UsageError('--tables needs at least one table logical name');
  for (const table of tables)
    if (!LOGICAL_NAME.test(table))
      throw new UsageError(`--tables: "${table}" is not a table logical name (lowercase letters, digits, underscores)`);
  return [...new Set(tables)].sort(compare);
}

function declaredTables(handlers: HandlerRegistry): string[] {
  const tables = [
    ...new Set(handlers.all.map((handler) => handler.declaration.entity.toLowerCase()).filter((entity) => entity !== '*')),
  ].sort(compare);
  if (tables.length === 0) throw new UsageError('No handler declares a table: pass --tables a,b');
  return tables;
}
