import { mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadGeneratedTables } from '../../src/cli/generatedTables';
import { useTempDirs } from '../support/tempDirs';

const tempDir = useTempDirs();

/**
 * An app folder with the generated module's source and, optionally, its build, `compiledAge`
 * seconds older than the source. Both times are set here: the file system stamps a write with its
 * own clock to the nanosecond, and Date.now() is cut to the millisecond, so a build stamped "now"
 * within the millisecond of the source's write would be up to 1 ms older than it.
 */
function app(options: { source?: boolean; compiled?: string; compiledAge?: number }) {
  const root = tempDir('generated-tables-');
  const source = path.join(root, 'src', 'handlers', 'tables.generated.ts');
  const compiled = path.join(root, 'dist', 'src', 'handlers', 'tables.generated.js');
  mkdirSync(path.dirname(source), { recursive: true });
  mkdirSync(path.dirname(compiled), { recursive: true });
  const written = 1_700_000_000;
  if (options.source !== false) {
    writeFileSync(source, 'export const tables = {};\n');
    utimesSync(source, written, written);
  }
  if (options.compiled !== undefined) {
    writeFileSync(compiled, options.compiled);
    const built = written - (options.compiledAge ?? 0);
    utimesSync(compiled, built, built);
  }
  return () => loadGeneratedTables(compiled, source);
}

describe('register --plan reads the generated module of the built app', () => {
  it('none when the app has no module, even if an old build of one is left in dist', () => {
    expect(app({ source: false, compiled: 'exports.tables = {};' })()).toBeNull();
  });

  it('its tables when the build is current', () => {
    const load = app({ compiled: 'exports.tables = { contact: { columns: { firstname: { type: "String" } } } };' });
    expect(load()).toEqual({
      tables: { contact: { columns: { firstname: { type: 'String' } } } },
      source: 'src/handlers/tables.generated.ts',
    });
  });

  it('refuses a module not built, or built before it was regenerated, and one that is not a module of tables', () => {
    expect(app({})).toThrow('src/handlers/tables.generated.ts is newer than its build: run "npm run build" first');
    expect(app({ compiled: 'exports.tables = {};', compiledAge: 3600 })).toThrow(/is newer than its build/);
    expect(app({ compiled: 'exports.tables = {};', compiledAge: 0.001 })).toThrow(/is newer than its build/);
    expect(app({ compiled: 'exports.tables = { contact: 1 };' })).toThrow(
      'src/handlers/tables.generated.ts does not export the tables "dataverse-webhooks types" writes: run it again',
    );
  });
});
