import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main';
import { closestName, DATAVERSE_MESSAGES, DATAVERSE_TABLES, messageNameProblem, tableNameProblem } from '../../src/dataverse/knownNames';
import { on } from '../../src/handlerApi';
import { generatedTableNames, HandlerLoadError, registryOf } from '../../src/handlerApi/load';
import { handlerFiles } from '../../src/handlers';
import { captureIO } from '../support/cliIO';
import { SAMPLES_DIR } from '../support/fixtures';
import { TABLE_DEFINITIONS_DIR } from '../support/realTableDefinitions';
import { useTempDirs } from '../support/tempDirs';

/**
 * A misspelt table or message is refused as the app loads, in one line that names the closest
 * known name (the compiler refuses it too: test/handlerApi/contextTypes.test.ts). Known: Dataverse's
 * own names (src/dataverse/knownNames.ts), the generated module's tables, and any
 * publisher-prefixed name (a custom table or custom API).
 */
const ROOT = path.resolve(__dirname, '..', '..');
const tempDir = useTempDirs();

const loadError = (definition: object): string => {
  try {
    registryOf([{ definition }], []);
    return '';
  } catch (error) {
    expect(error).toBeInstanceOf(HandlerLoadError);
    return (error as Error).message;
  }
};

describe("Dataverse's own names", () => {
  it('are listed once each, sorted, without the prefixed names a pattern already allows', () => {
    for (const list of [DATAVERSE_TABLES, DATAVERSE_MESSAGES] as readonly (readonly string[])[]) {
      expect(new Set(list.map((name) => name.toLowerCase())).size).toBe(list.length);
      expect([...list]).toEqual([...list].sort((a, b) => a.toLowerCase().localeCompare(b.toLowerCase())));
      expect(list.filter((name) => name.includes('_'))).toEqual([]);
    }
    expect(DATAVERSE_TABLES.every((table) => /^[a-z][a-z0-9]*$/.test(table))).toBe(true);
  });

  it('take every table and message of the real payloads and table definitions the project ships', () => {
    const samples = readdirSync(SAMPLES_DIR).filter((file) => file.endsWith('.json'));
    const contexts = samples.map(
      (file) => JSON.parse(readFileSync(path.join(SAMPLES_DIR, file), 'utf8')) as { PrimaryEntityName: string; MessageName: string },
    );
    const tables = [
      ...contexts.map((context) => context.PrimaryEntityName),
      ...readdirSync(TABLE_DEFINITIONS_DIR)
        .filter((file) => file.endsWith('.json'))
        .map((file) => file.replace(/\.json$/, '')),
    ];
    expect(tables).toEqual(expect.arrayContaining(['account', 'contact', 'opportunity', 'msdyn_agentstatus', 'cdsify_integrationtest']));
    expect(tables.map((table) => tableNameProblem(table))).toEqual(tables.map(() => null));
    expect(contexts.map((context) => messageNameProblem(context.MessageName))).toEqual(contexts.map(() => null));
  });

  it('name the closest known one for a typo: a letter added, dropped, changed or two swapped', () => {
    expect(closestName('contcat', DATAVERSE_TABLES)).toBe('contact');
    expect(closestName('acount', DATAVERSE_TABLES)).toBe('account');
    expect(closestName('opportunty', DATAVERSE_TABLES)).toBe('opportunity');
    expect(closestName('Updte', DATAVERSE_MESSAGES)).toBe('Update');
    expect(closestName('crate', DATAVERSE_MESSAGES)).toBe('Create');
    expect(closestName('Frobnicate', DATAVERSE_MESSAGES)).toBeNull();
    expect(tableNameProblem('widget')).toBe(
      'entity "widget" is not a Dataverse table: check its logical name, or add it to src/dataverse/knownNames.ts if your organization has it (a custom table\'s name carries its publisher prefix: new_project)',
    );
  });
});

describe('a misspelt table or message', () => {
  it('is refused as the app loads, in one line naming the closest known name', () => {
    const file = 'test/dataverse/knownNames.test.ts';
    // A JavaScript handler, or a cast: what the compiler cannot see.
    expect(loadError(on({ name: 'typo', entity: 'contcat' as 'contact', message: 'Update' }, () => undefined))).toBe(
      `${file}: handler typo: entity "contcat" is not a Dataverse table: did you mean contact? (a custom table's name carries its publisher prefix: new_project)`,
    );
    // The message is named first, and alone: its filtering attributes are not blamed for it.
    expect(
      loadError(on({ name: 'typo', entity: 'contact', message: 'Updte' as 'Update', filteringAttributes: ['lastname'] }, () => undefined)),
    ).toBe(
      `${file}: handler typo: message "Updte" is not a Dataverse message: did you mean Update? (a custom API's name carries its publisher prefix: contoso_Approve)`,
    );
  });

  it('is allowed when it is a custom table or custom API (prefixed), or a table of the generated module', () => {
    expect(loadError(on({ name: 'custom', entity: 'new_project', message: ['Update', 'contoso_Approve'] }, () => undefined))).toBe('');
    const unlisted = on({ name: 'unlisted', entity: 'widget' as 'account', message: 'Update' }, () => undefined);
    expect(() => registryOf([{ unlisted }], ['widget'])).not.toThrow();
    const compiled = path.join(tempDir('generated-'), 'tables.generated.js');
    writeFileSync(compiled, 'exports.tables = { widget: { columns: {} } };');
    expect(generatedTableNames(compiled)).toEqual(['widget']);
    expect(generatedTableNames(path.join(tempDir('none-'), 'tables.generated.js'))).toEqual([]);
  });

  it('stops register --plan with that line, exit 1', async () => {
    const typo = on({ name: 'typo', entity: 'contcat' as 'contact', message: 'Update' }, () => undefined);
    (handlerFiles as unknown[]).push({ typo });
    try {
      const io = captureIO({ cwd: ROOT });
      expect(await main(['register', '--plan'], io)).toBe(1);
      expect(io.out()).toBe('');
      expect(io.err()).toBe(
        `The app's handlers do not load: test/dataverse/knownNames.test.ts: handler typo: entity "contcat" is not a Dataverse table: did you mean contact? (a custom table's name carries its publisher prefix: new_project)\n`,
      );
    } finally {
      (handlerFiles as unknown[]).pop();
    }
  });
});
