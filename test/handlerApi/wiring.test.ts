import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { handlerSourceFiles, unlistedHandlers } from '../support/handlerWiring';
import { useTempDirs } from '../support/tempDirs';

/**
 * Registration is explicit (src/handlers/index.ts lists the files), so a file left out of the list
 * fails here, whatever handlers the app has.
 */
const ROOT = path.resolve(__dirname, '..', '..');
const API = path.join(ROOT, 'src', 'handlerApi');
const tempDir = useTempDirs();

describe('the handler files and their list', () => {
  it('every file of src/handlers that declares handlers is listed in src/handlers/index.ts', async () => {
    expect(await unlistedHandlers(path.join(ROOT, 'src', 'handlers'), ROOT)).toEqual([]);
  });

  it('a file left out of the list is named, with its handlers; tests and the generated module are not handler files', async () => {
    const folder = path.join(tempDir('wiring-'), 'handlers');
    mkdirSync(folder);
    const declare = (name: string) =>
      `import { on } from ${JSON.stringify(API)};\nexport const ${name.replace(/-/g, '')} = on({ name: '${name}', entity: 'test_widget', message: 'Update' }, () => undefined);\n`;
    writeFileSync(path.join(folder, 'listed.ts'), declare('listed'));
    writeFileSync(path.join(folder, 'forgotten.ts'), declare('forgotten'));
    writeFileSync(path.join(folder, 'helpers.ts'), 'export const nothing = 1;\n');
    writeFileSync(path.join(folder, 'listed.test.ts'), '');
    writeFileSync(path.join(folder, 'tables.generated.ts'), '');
    writeFileSync(path.join(folder, 'index.ts'), "import * as listed from './listed';\nexport const handlerFiles = [listed];\n");
    expect(handlerSourceFiles(folder).map((file) => path.basename(file))).toEqual(['forgotten.ts', 'helpers.ts', 'listed.ts']);
    expect(await unlistedHandlers(folder, path.dirname(folder))).toEqual([
      'handlers/forgotten.ts declares forgotten, and handlers/index.ts does not list it: add it to handlerFiles',
    ]);
  });
});
