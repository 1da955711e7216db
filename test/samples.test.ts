import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DOCS_SAMPLE_FILE, SAMPLES_DIR, SHARED_DIR } from './support/fixtures';

/**
 * samples/ is the project's copy of the real payloads (shared/fixtures, and the sample of
 * Microsoft's use-webhooks page): what the README's commands and the test kit point users at. Each
 * file must be the one its README's checksum names, and, where the team's shared/ is beside the
 * clone (here and in CI), the same bytes as the original.
 */
const sha256 = (bytes: Buffer | string) => createHash('sha256').update(bytes).digest('hex');
const samples = readdirSync(SAMPLES_DIR)
  .filter((file) => file.endsWith('.json'))
  .sort();
const readme = readFileSync(path.join(SAMPLES_DIR, 'README.md'), 'utf8');
const recorded = new Map([...readme.matchAll(/^\| `([^`]+\.json)` \| `([0-9a-f]{64})` \|$/gm)].map((match) => [match[1]!, match[2]!]));

describe('the sample payloads', () => {
  it('each file is listed in samples/README.md with its provenance and its checksum', () => {
    expect(samples.length).toBe(5);
    expect([...recorded.keys()].sort()).toEqual(samples);
    for (const file of samples) {
      expect(readme, file).toContain(`## ${file}`);
      expect(sha256(readFileSync(path.join(SAMPLES_DIR, file))), file).toBe(recorded.get(file));
    }
  });

  it('are the originals byte for byte, where the team’s shared/ is beside the clone', () => {
    const originals = existsSync(SHARED_DIR)
      ? samples.map((file) => {
          if (file !== DOCS_SAMPLE_FILE) return [file, sha256(readFileSync(path.join(SHARED_DIR, 'fixtures', file)))];
          const block = /```json\n([\s\S]*?)\n```/.exec(readFileSync(path.join(SHARED_DIR, 'docs', 'use-webhooks.md'), 'utf8'))?.[1] ?? '';
          return [file, sha256(block)];
        })
      : // A user's clone: the checksums recorded when the copy was made stand for the originals.
        samples.map((file) => [file, recorded.get(file)]);
    expect(originals).toEqual(samples.map((file) => [file, sha256(readFileSync(path.join(SAMPLES_DIR, file)))]));
  });
});
