import { describe, expect, it } from 'vitest';
import { parseDataverseWebhookOrThrow } from '../../src/dataverse';
import { largeCreateMultiple } from '../../src/dataverse/samplePayloads';
import { allRealPayloads } from '../support/fixtures';

/**
 * The whole normalized event of each real payload, pinned in a file beside this test: any change
 * to what a handler receives (a value, a type, a key's order, a prototype, a date) fails here, so
 * that the parser can be made faster without changing its output. The files were written by the
 * parser as it was before it had fast paths (issue 20); update them only for an intended change.
 */

/** A faithful, JSON-safe picture of a value: Dates, prototypes, key order and -0 included. */
function picture(value: unknown): unknown {
  if (value instanceof Date) return { $date: value.toISOString() };
  if (Array.isArray(value)) return value.map(picture);
  if (typeof value === 'number' && Object.is(value, -0)) return { $number: '-0' };
  if (value === undefined) return { $undefined: true };
  if (typeof value !== 'object' || value === null) return value;
  const prototype =
    Object.getPrototypeOf(value) === null
      ? 'null'
      : Object.getPrototypeOf(value) === Object.prototype
        ? 'Object'
        : String(value.constructor?.name);
  return { $prototype: prototype, entries: Object.entries(value).map(([key, entry]) => [key, picture(entry)]) };
}

describe('the normalized output of every real payload, pinned', () => {
  it.each(allRealPayloads().map((payload) => [payload.name, payload] as const))('%s', async (name, payload) => {
    const event = parseDataverseWebhookOrThrow({
      body: payload.body,
      headers: { 'x-ms-dynamics-organization': 'contoso.crm.dynamics.com' },
    });
    const file = `./__normalized__/${name.replace(/\.json$/, '').replace(/[^A-Za-z0-9._-]+/g, '-')}.json`;
    await expect(JSON.stringify(picture(event), null, 1)).toMatchFileSnapshot(file);
  });

  it('the benchmark’s generated CreateMultiple (Entities of typed attributes, the bulk path)', async () => {
    // Its ids and OperationCreatedOn are new each time: made the same for the pin, in first-seen order.
    const ids = new Map<string, string>();
    const body = largeCreateMultiple(20 * 1024)
      .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi, (id) => {
        if (!ids.has(id)) ids.set(id, `00000000-0000-4000-8000-${String(ids.size).padStart(12, '0')}`);
        return ids.get(id)!;
      })
      .replace(/"OperationCreatedOn":"[^"]*"/, '"OperationCreatedOn":"\\/Date(1731053106000)\\/"');
    const event = parseDataverseWebhookOrThrow({ body, headers: {} });
    await expect(JSON.stringify(picture(event), null, 1)).toMatchFileSnapshot('./__normalized__/generated-create-multiple-20k.json');
  });
});
