import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../src/cli/main';
import { LocalSettingsError, readLocalSettings } from '../src/localSettings';
import { captureIO } from './support/cliIO';
import { useTempDirs } from './support/tempDirs';

const tempDir = useTempDirs();

describe('local.settings.json, one reader for the CLI and the local host', () => {
  it('reads Values as text and the local HTTP port, as Core Tools does; no file is null', () => {
    const dir = tempDir('local-settings-');
    expect(readLocalSettings(dir)).toBeNull();
    writeFileSync(
      path.join(dir, 'local.settings.json'),
      JSON.stringify({ IsEncrypted: false, Values: { A: 'x', B: 5, C: true }, Host: { LocalHttpPort: 7072 } }),
    );
    expect(readLocalSettings(dir)).toEqual({
      file: path.join(dir, 'local.settings.json'),
      values: { A: 'x', B: '5', C: 'true' },
      port: 7072,
    });
  });

  it('a file that is not one is an error naming the file, and the CLI says it in one line without its content', async () => {
    const dir = tempDir('local-settings-');
    writeFileSync(path.join(dir, 'local.settings.json'), '{"Values": {"AzureWebJobsStorage": "AccountKey=secret-key"');
    expect(() => readLocalSettings(dir)).toThrow(LocalSettingsError);
    const io = captureIO({ env: {}, cwd: dir });
    expect(await main(['failures'], io)).toBe(1);
    expect(io.err()).toMatch(
      new RegExp(`^No storage connection: ${path.join(dir, 'local.settings.json').replaceAll('/', '\\/')} is not valid JSON`),
    );
    expect(io.err().trim().split('\n')).toHaveLength(1);
    expect(io.err()).not.toContain('secret-key');
  });
});
