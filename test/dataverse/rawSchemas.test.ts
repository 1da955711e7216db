import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import {
  isGuid,
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
 * The parser's fast checks stand in for their zod schemas (rawSchemas.ts): a value a check takes
 * is used as the schema's output without running it. So each check must take only what its schema
 * accepts, unchanged. Every field of a well-formed value is given, one at a time, each of a set of
 * values of every JSON kind (and a missing key); wherever the check says yes, the schema must too
 * and must give the value back as it was.
 */
const GUID = '6d81597f-0f9f-e711-8122-000d3aa2331c';
const CANDIDATES: unknown[] = [
  undefined,
  null,
  '',
  'text',
  GUID,
  GUID.toUpperCase(),
  `${GUID}x`,
  0,
  -1,
  1.5,
  2 ** 53,
  2 ** 53 + 2,
  Number.MAX_SAFE_INTEGER,
  JSON.parse('1e400'), // Infinity, as JSON.parse gives it
  true,
  false,
  [],
  [{ key: 'a', value: 1 }],
  [{ value: 1 }],
  [null],
  {},
  { key: 'a' },
];

function holdsToItsSchema(name: string, check: (raw: unknown) => boolean, schema: z.ZodType, base: Record<string, unknown>): void {
  expect(check(base), `${name}: the well-formed value`).toBe(true);
  let taken = 0;
  for (const field of Object.keys(base)) {
    for (const candidate of CANDIDATES) {
      const value = { ...base };
      if (candidate === undefined) delete value[field];
      else value[field] = candidate;
      if (!check(value)) continue;
      taken++;
      const parsed = schema.safeParse(value);
      expect(parsed.success, `${name}.${field} = ${JSON.stringify(candidate)}`).toBe(true);
      // Unchanged: every field the schema knows comes back as it was given (arrays as equal copies).
      for (const [key, given] of Object.entries(value)) {
        if (key in (parsed.data as object)) expect((parsed.data as Record<string, unknown>)[key]).toStrictEqual(given);
      }
    }
  }
  expect(taken).toBeGreaterThan(Object.keys(base).length);
  for (const notAnObject of [null, [], 'x', 1]) expect(check(notAnObject)).toBe(false);
}

describe('the fast checks of the raw schemas', () => {
  it('isWellFormedExecutionContext takes only what rawExecutionContext accepts unchanged', () => {
    const base: Record<string, unknown> = {
      MessageName: 'Update',
      PrimaryEntityName: 'contact',
      PrimaryEntityId: GUID,
      SecondaryEntityName: 'none',
      Stage: 40,
      Mode: 1,
      Depth: 1,
      IsolationMode: 2,
      CorrelationId: GUID,
      OperationId: GUID,
      RequestId: GUID,
      OrganizationId: GUID,
      OrganizationName: 'org',
      BusinessUnitId: GUID,
      UserId: GUID,
      InitiatingUserId: GUID,
      InitiatingUserAgent: 'agent',
      InitiatingUserAzureActiveDirectoryObjectId: GUID,
      UserAzureActiveDirectoryObjectId: GUID,
      OperationCreatedOn: '/Date(1506384247000)/',
      IsExecutingOffline: false,
      IsInTransaction: false,
      IsOfflinePlayback: false,
      InputParameters: [],
      OutputParameters: [],
      SharedVariables: [],
      PreEntityImages: [],
      PostEntityImages: [],
      OwningExtension: null,
      ParentContext: null,
    };
    holdsToItsSchema('context', isWellFormedExecutionContext, rawExecutionContext, base);
  });

  it('isWellFormedEntity takes only what rawEntity accepts unchanged', () => {
    const base = {
      LogicalName: 'contact',
      Id: GUID,
      Attributes: [],
      FormattedValues: [],
      KeyAttributes: [],
      RelatedEntities: [],
      RowVersion: '5948260',
      EntityState: null,
    };
    holdsToItsSchema('entity', isWellFormedEntity, rawEntity, base);
  });

  it('isWellFormedEntityCollection takes only what rawEntityCollection accepts unchanged', () => {
    const base = {
      Entities: [],
      EntityName: 'account',
      MoreRecords: false,
      PagingCookie: null,
      TotalRecordCount: -1,
      TotalRecordCountLimitExceeded: false,
      MinActiveRowVersion: null,
    };
    holdsToItsSchema('collection', isWellFormedEntityCollection, rawEntityCollection, base);
  });

  it('isWellFormedEntityReference, isWellFormedOptionSetValue and isWellFormedMoney take only what their schemas accept unchanged', () => {
    const reference = { Id: GUID, LogicalName: 'account', Name: 'Contoso', KeyAttributes: [], RowVersion: '5948260' };
    holdsToItsSchema('reference', isWellFormedEntityReference, rawEntityReference, reference);
    holdsToItsSchema('option set value', isWellFormedOptionSetValue, rawOptionSetValue, { Value: 1 });
    holdsToItsSchema('money', isWellFormedMoney, rawMoney, { Value: 1.5 });
  });

  it('takes every real payload’s contexts and entities (else the fast path would never run)', () => {
    for (const payload of allRealPayloads()) {
      let context: unknown = JSON.parse(payload.body.toString('utf8'));
      while (context) {
        expect(isWellFormedExecutionContext(context), payload.name).toBe(true);
        const target = (context as { InputParameters: Array<{ key: string; value: unknown }> }).InputParameters.find(
          (pair) => pair.key === 'Target',
        )?.value;
        if (target && typeof target === 'object' && 'Attributes' in target) expect(isWellFormedEntity(target), payload.name).toBe(true);
        context = (context as { ParentContext: unknown }).ParentContext;
      }
    }
  });

  it('isGuid: 8-4-4-4-12 hexadecimal digits of any case, nothing else', () => {
    expect([GUID, GUID.toUpperCase(), '00000000-0000-0000-0000-000000000000'].every(isGuid)).toBe(true);
    const wrong = [
      GUID.replace('-', 'x'),
      `${GUID.slice(0, 35)}g`,
      `${GUID.slice(0, 35)}٠`,
      GUID.slice(1),
      ` ${GUID.slice(1)}`,
      GUID.replaceAll('-', '0'),
      7,
      null,
    ];
    expect(wrong.filter(isGuid)).toEqual([]);
  });
});
