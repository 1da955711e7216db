import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { withoutTruncatedProperties } from '../../src/dataverse/samplePayloads';

/** The real payloads and table definitions the project ships (samples/README.md says where each comes from). */
export const SAMPLES_DIR = path.resolve(__dirname, '..', '..', 'samples');
/** The sample of Microsoft's use-webhooks page, in samples/. */
export const DOCS_SAMPLE_FILE = '05-contact-update-async-postop-docs-sample.json';

export interface Fixture {
  name: string;
  body: Buffer;
}

/** The real captured payloads (samples/, kept byte for byte). */
export function capturedFixtures(): Fixture[] {
  const dir = SAMPLES_DIR;
  return readdirSync(dir)
    .filter((file) => file.endsWith('.json') && file !== DOCS_SAMPLE_FILE)
    .sort()
    .map((file) => ({ name: file, body: readFileSync(path.join(dir, file)) }));
}

/** The contact Update sample in use-webhooks.md: the fifth real payload. */
export function docsSample(): Fixture {
  return { name: 'use-webhooks.md sample', body: readFileSync(path.join(SAMPLES_DIR, DOCS_SAMPLE_FILE)) };
}

export function allRealPayloads(): Fixture[] {
  return [...capturedFixtures(), docsSample()];
}

export function fixture(name: string): Fixture {
  const found = allRealPayloads().find((candidate) => candidate.name.startsWith(name));
  if (!found) throw new Error(`no fixture named ${name}`);
  return found;
}

/**
 * A fixture's execution context as an object (its byte-order mark, which some captures keep, left
 * out): to send it again as another delivery, `JSON.stringify({ ...fixtureContext('06-'), CorrelationId })`.
 */
export function fixtureContext(name: string): Record<string, unknown> {
  return JSON.parse(
    fixture(name)
      .body.toString('utf8')
      .replace(/^\uFEFF/, ''),
  ) as Record<string, unknown>;
}

/** The docs sample as Dataverse would send it above 256 KB (send it with x-ms-dynamics-msg-size-exceeded). */
export function truncatedDocsSample(): string {
  return JSON.stringify(withoutTruncatedProperties(JSON.parse(docsSample().body.toString('utf8')) as Record<string, unknown>));
}
