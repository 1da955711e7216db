import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { withoutTruncatedProperties } from '../../src/dataverse/samplePayloads';

/** `shared/` sits beside the repository, both here and in CI's clean clone. */
export const SHARED_DIR = path.resolve(__dirname, '..', '..', '..', 'shared');

export interface Fixture {
  name: string;
  body: Buffer;
}

/** The real captured payloads in shared/fixtures, byte for byte. */
export function capturedFixtures(): Fixture[] {
  const dir = path.join(SHARED_DIR, 'fixtures');
  return readdirSync(dir)
    .filter((file) => file.endsWith('.json'))
    .sort()
    .map((file) => ({ name: file, body: readFileSync(path.join(dir, file)) }));
}

/** The contact Update sample in use-webhooks.md: the fifth real payload. */
export function docsSample(): Fixture {
  const markdown = readFileSync(path.join(SHARED_DIR, 'docs', 'use-webhooks.md'), 'utf8');
  const block = /```json\n([\s\S]*?)\n```/.exec(markdown)?.[1];
  if (!block) throw new Error('use-webhooks.md has no ```json block');
  return { name: 'use-webhooks.md sample', body: Buffer.from(block, 'utf8') };
}

export function allRealPayloads(): Fixture[] {
  return [...capturedFixtures(), docsSample()];
}

export function fixture(name: string): Fixture {
  const found = allRealPayloads().find((candidate) => candidate.name.startsWith(name));
  if (!found) throw new Error(`no fixture named ${name}`);
  return found;
}

/** The docs sample as Dataverse would send it above 256 KB (send it with x-ms-dynamics-msg-size-exceeded). */
export function truncatedDocsSample(): string {
  return JSON.stringify(withoutTruncatedProperties(JSON.parse(docsSample().body.toString('utf8')) as Record<string, unknown>));
}
