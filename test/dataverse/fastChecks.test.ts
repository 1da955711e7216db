import { isDeepStrictEqual } from 'node:util';
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import {
  isWellFormedEntity,
  isWellFormedEntityCollection,
  isWellFormedEntityReference,
  isWellFormedExecutionContext,
  isWellFormedMoney,
  isWellFormedOptionSetValue,
  rawEntity,
  rawEntityCollection,
  rawEntityReference,
  rawExecutionContext,
  rawMoney,
  rawOptionSetValue,
} from '../../src/dataverse/rawSchemas';
import { allRealPayloads } from '../support/fixtures';

/**
 * A differential test of the parser's fast checks (rawSchemas.ts): each stands in for a zod schema,
 * and a value it takes is used without running the schema. Seeded mutations of every object of the
 * real samples are given to each check and to its schema alone, and the two must agree on every
 * one: the check takes it exactly when the schema accepts it, and what it takes the schema would
 * give back unchanged. Counted, with the agreements on each side, so that neither side is empty.
 */

const INPUTS = 12_000;
const SEED = 0x26_0008;

type Check = (raw: unknown) => boolean;
const PAIRS: ReadonlyArray<[string, Check, z.ZodType]> = [
  ['execution context', isWellFormedExecutionContext, rawExecutionContext],
  ['entity', isWellFormedEntity, rawEntity],
  ['entity collection', isWellFormedEntityCollection, rawEntityCollection],
  ['entity reference', isWellFormedEntityReference, rawEntityReference],
  ['option set value', isWellFormedOptionSetValue, rawOptionSetValue],
  ['money', isWellFormedMoney, rawMoney],
];

/** mulberry32: a small seeded generator, so that a failure is reproduced by the same seed. */
function generator(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const GUID = '6d81597f-0f9f-e711-8122-000d3aa2331c';

/** Values of every kind a field can be given: JSON's types, and the edges of each the checks must know. */
const CANDIDATES: readonly unknown[] = [
  null,
  true,
  false,
  '',
  'text',
  0,
  -0,
  1,
  -1,
  1.5,
  100000000,
  2 ** 31,
  2 ** 53 - 1,
  2 ** 53,
  2 ** 53 + 2,
  -(2 ** 53) - 2,
  1e308,
  JSON.parse('1e400'), // Infinity, as JSON.parse gives it
  JSON.parse('-1e400'),
  5e-324,
  '42',
  '/Date(1506384247000)/',
  '/Date(1506409448000-0700)/',
  '/Date(99999999999999999)/',
  '2024-08-02T07:00:39Z',
  GUID,
  GUID.toUpperCase(),
  `{${GUID}}`,
  GUID.replaceAll('-', ''),
  GUID.slice(1),
  `${GUID}0`,
  ` ${GUID.slice(1)}`,
  `${GUID.slice(0, 35)}g`,
  `${GUID.slice(0, 35)}٣`, // an Arabic-Indic digit
  `${GUID.slice(0, 35)}３`, // a fullwidth digit
  '00000000-0000-0000-0000-000000000000',
  'é',
  '😀',
  '\ud800',
  '\u202eevil',
  'a\u200db',
  '\u0000',
  [],
  [0],
  [null],
  ['name'],
  [{ key: 'a', value: 1 }],
  [{ key: 1, value: 1 }],
  [{ value: 1 }],
  [{ key: 'a' }],
  [{}],
  [[]],
  {},
  { Value: 1 },
  { key: 'a', value: 1 },
  JSON.parse('{"__proto__": {"polluted": true}}'),
  JSON.parse('[{"key": "__proto__", "value": {"polluted": true}}]'),
];

/** A deep copy that keeps own `__proto__` members (as JSON.parse makes them), -0 and Infinity. */
function copy(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(copy);
  if (typeof value !== 'object' || value === null) return value;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value)) {
    Object.defineProperty(out, key, {
      value: copy((value as Record<string, unknown>)[key]),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}

function setMember(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

/** Every object and array of a parsed JSON value, the value itself included. */
function containersOf(value: unknown, found: Array<Record<string, unknown> | unknown[]> = []): Array<Record<string, unknown> | unknown[]> {
  if (typeof value !== 'object' || value === null) return found;
  found.push(value as Record<string, unknown> | unknown[]);
  for (const item of Array.isArray(value) ? value : Object.values(value)) containersOf(item, found);
  return found;
}

const SCHEMA_FIELDS = [...new Set(PAIRS.flatMap(([, , schema]) => Object.keys((schema as z.ZodObject).shape)))];

/** One mutation somewhere in `root`: a field deleted, added or replaced, an item changed, a value nested or replaced outright. */
function mutate(root: unknown, random: () => number): unknown {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const candidate = () => copy(pick(CANDIDATES));
  // Mostly the root itself (the checks look one level deep), else anything inside it.
  const containers = containersOf(root);
  if (containers.length === 0) return candidate();
  const target = random() < 0.6 ? containers[0]! : pick(containers);
  const operation = random();
  if (Array.isArray(target)) {
    if (target.length > 0 && operation < 0.4) target[Math.floor(random() * target.length)] = candidate();
    else if (target.length > 0 && operation < 0.6) target.splice(Math.floor(random() * target.length), 1);
    else target.push(candidate());
    return root;
  }
  const keys = Object.keys(target);
  if (operation < 0.05) return candidate(); // the whole value replaced
  if (operation < 0.25 && keys.length > 0) delete target[pick(keys)];
  else if (operation < 0.35) setMember(target, pick(['$type', '__proto__', 'constructor', 'extra', '__type']), candidate());
  else if (operation < 0.45 && keys.length > 0) {
    const key = pick(keys);
    setMember(target, key, random() < 0.5 ? [target[key]] : { Value: target[key] }); // nested one level further
  } else setMember(target, random() < 0.5 && keys.length > 0 ? pick(keys) : pick(SCHEMA_FIELDS), candidate());
  return root;
}

describe('the fast checks agree with zod on every input', () => {
  it(`${INPUTS} seeded mutations of the real samples: each check takes exactly what its schema accepts, unchanged`, () => {
    const objects = allRealPayloads().flatMap((payload) =>
      containersOf(JSON.parse(payload.body.toString('utf8'))).filter((c) => !Array.isArray(c)),
    );
    // The samples hold no EntityCollection: one of their entities, as a RetrieveMultiple would return it.
    const entities = objects.filter((object) => isWellFormedEntity(object));
    const collections = entities.map((entity) => ({
      Entities: [entity],
      EntityName: (entity as Record<string, unknown>)['LogicalName'],
      MoreRecords: false,
      PagingCookie: null,
      TotalRecordCount: -1,
      TotalRecordCountLimitExceeded: false,
      MinActiveRowVersion: null,
    }));
    // Each input starts from an object one check takes (each check in turn), or, one time in seven, from any object.
    const seeds = [...objects, ...collections];
    const seedsOf = [...PAIRS.map(([, check]) => seeds.filter((seed) => check(seed))), seeds];
    for (const kind of seedsOf) expect(kind.length).toBeGreaterThan(0);
    const random = generator(SEED);
    const differences: string[] = [];
    const agreed = Object.fromEntries(PAIRS.map(([name]) => [name, { taken: 0, refused: 0 }]));
    for (let input = 0; input < INPUTS; input++) {
      const kind = seedsOf[input % seedsOf.length]!;
      let value = copy(kind[Math.floor(random() * kind.length)]);
      for (let count = 1 + Math.floor(random() * 3); count > 0; count--) value = mutate(value, random);
      for (const [name, check, schema] of PAIRS) {
        const fast = check(value);
        const parsed = schema.safeParse(value);
        const unchanged =
          parsed.success &&
          typeof parsed.data === 'object' &&
          Object.entries(parsed.data as object).every(([key, output]) =>
            isDeepStrictEqual(output, (value as Record<string, unknown>)[key]),
          );
        if (fast !== parsed.success || (fast && !unchanged)) {
          differences.push(
            `${name}, input ${input}: fast ${fast}, zod ${parsed.success}${parsed.success && !unchanged ? ' (changed)' : ''}`,
          );
        } else agreed[name]![fast ? 'taken' : 'refused']++;
      }
    }
    console.log(`fast checks vs zod: ${INPUTS} inputs, ${differences.length} differences`, agreed);
    expect(differences.slice(0, 10)).toEqual([]);
    for (const [name, counts] of Object.entries(agreed)) {
      expect(counts.taken, `${name} taken`).toBeGreaterThan(50);
      expect(counts.refused, `${name} refused`).toBeGreaterThan(50);
    }
  });

  it('the inputs the issue found: an option set value above 2^53, a Money and a RowVersion of 1e400', () => {
    const reference = { Id: GUID, LogicalName: 'account', RowVersion: JSON.parse('1e400') };
    expect([isWellFormedOptionSetValue({ Value: 2 ** 53 + 2 }), isWellFormedMoney({ Value: JSON.parse('1e400') })]).toEqual([false, false]);
    expect(isWellFormedEntityReference(reference)).toBe(false);
    expect(rawEntityReference.safeParse(reference).success).toBe(false);
  });
});
