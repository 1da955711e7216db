import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SAMPLES_DIR } from './support/fixtures';
import { realTableFacts, TABLE_DEFINITIONS_DIR } from './support/realTableDefinitions';

/**
 * samples/ is the project's copy of real Dataverse data: the payloads the README's commands and
 * the test kit point users at, and (samples/table-definitions) the table definitions the typed
 * tables are generated from in the tests. Each file must be the one its README's checksum names:
 * the checksums were recorded from the originals when the copies were made, and stand for them,
 * since a clone has nothing beside it to compare with.
 */
const sha256 = (bytes: Buffer | string) => createHash('sha256').update(bytes).digest('hex');
const jsonFiles = (dir: string) =>
  readdirSync(dir)
    .filter((file) => file.endsWith('.json'))
    .sort();
const checksums = (readme: string) =>
  new Map([...readme.matchAll(/^\| `([^`]+\.json)` \| `([0-9a-f]{64})` \|$/gm)].map((match) => [match[1]!, match[2]!]));

describe('the sample payloads', () => {
  const samples = jsonFiles(SAMPLES_DIR);
  const readme = readFileSync(path.join(SAMPLES_DIR, 'README.md'), 'utf8');
  const recorded = checksums(readme);

  it('each file is listed in samples/README.md with its provenance and its checksum', () => {
    expect(samples.length).toBe(5);
    expect([...recorded.keys()].sort()).toEqual(samples);
    for (const file of samples) {
      expect(readme, file).toContain(`## ${file}`);
      expect(sha256(readFileSync(path.join(SAMPLES_DIR, file))), file).toBe(recorded.get(file));
    }
  });
});

describe('the real table definitions', () => {
  const definitions = jsonFiles(TABLE_DEFINITIONS_DIR);
  const readme = readFileSync(path.join(TABLE_DEFINITIONS_DIR, 'README.md'), 'utf8');
  const recorded = checksums(readme);

  it('each file is listed in samples/table-definitions/README.md with its checksum and its column count', () => {
    expect(definitions).toEqual(['account.json', 'cdsify_integrationtest.json', 'opportunity.json']);
    expect([...recorded.keys()].sort()).toEqual(definitions);
    for (const file of definitions) {
      expect(sha256(readFileSync(path.join(TABLE_DEFINITIONS_DIR, file))), file).toBe(recorded.get(file));
      const table = file.replace(/\.json$/, '');
      const columns = new RegExp(`^\\| \`${file.replace('.', '\\.')}\` \\| .* \\| (\\d+) \\|$`, 'm').exec(readme)?.[1];
      expect(realTableFacts(table).columns.length, file).toBe(Number(columns));
    }
  });
});
