import { describe, expect, it } from 'vitest';
import { type DataverseEvent, type Entity, parseDataverseWebhookOrThrow } from '../../src/dataverse';
import { type ColumnSpec, columnValueProblem, entityProblems, type TableSpec } from '../../src/dataverse/tables';
import { on } from '../../src/handlerApi';
import { registryOf } from '../../src/handlerApi/load';
import { silentLog } from '../../src/observability/log';
import { handlerContext } from '../../src/pipeline/handlerContext';
import type { HandlerContext, HandlerRegistry } from '../../src/pipeline/handlerRegistry';
import { fixture } from '../support/fixtures';
import { tables } from './generated/tables.generated';

/**
 * The real payloads reach handlers declared with the generated types, and what they hold is what
 * the types say: this file is compiled with generated/tables.generated.ts (tsconfig.json here), so
 * each read below is checked by the compiler, with no cast, and each value is checked at run time
 * against the same generated constant (`entityProblems`, the run-time mirror of `ColumnValue`).
 */

function event(name: string): DataverseEvent {
  return parseDataverseWebhookOrThrow({ body: fixture(name).body, headers: {} });
}

/** What the processor gives a handler (src/pipeline/handlerContext.ts), for one event and record. */
function context(event: DataverseEvent, record: Entity | null): HandlerContext {
  return handlerContext({
    event,
    eventId: 'fixture',
    record,
    log: silentLog,
    deliveryCount: 1,
    signal: new AbortController().signal,
    idempotencyKey: '00000000-0000-0000-0000-000000000001',
  });
}

async function deliver(registry: HandlerRegistry, parsed: DataverseEvent): Promise<number> {
  const matched = registry.match(parsed);
  for (const handler of matched) await handler.handle(parsed, context(parsed, parsed.target?.$type === 'Entity' ? parsed.target : null));
  return matched.length;
}

describe('real payloads in the typed context', () => {
  it('fixture 06: an account Create reaches a typed handler, every column as its type says', async () => {
    const seen: string[] = [];
    const registry = registryOf([
      on({ name: 'accounts', entity: 'account', message: 'Create', stage: 'PostOperation', mode: 'Synchronous' }, (_event, ctx) => {
        const record = ctx.record!;
        // Typed reads, no cast: text, a choice's own options, a lookup's tables, a yes/no, a date.
        const name: string | null | undefined = record.attributes.name;
        const status: 1 | 2 | undefined = record.attributes.statuscode?.value;
        const owner: 'systemuser' | 'team' | undefined = record.attributes.ownerid?.logicalName;
        const isPrivate: boolean | null | undefined = record.attributes.isprivate;
        const createdOn: Date | null | undefined = record.attributes.createdon;
        seen.push(`${name?.slice(0, 4)} ${status} ${owner} ${isPrivate} ${createdOn?.toISOString()}`);
        expect(tables.account.columns.statuscode.options[status!]).toBe('Active');
        expect(entityProblems(tables.account, record)).toEqual([]);
      }),
    ]);
    expect(await deliver(registry, event('06-'))).toBe(1);
    expect(seen).toEqual(['АаБб 1 systemuser false 2024-11-08T08:05:06.000Z']);
  });

  it('fixture 08: an account Update of 2018, with the columns the platform adds', async () => {
    const registry = registryOf([
      on(
        {
          name: 'phones',
          entity: 'account',
          message: 'Update',
          stage: 'PostOperation',
          mode: 'Synchronous',
          filteringAttributes: ['telephone1'],
        },
        (_event, ctx) => {
          expect(ctx.changes().map((change) => change.attribute)).toEqual(['telephone1']);
          const modifiedBy: 'systemuser' | undefined = ctx.record!.attributes.modifiedby?.logicalName;
          expect(modifiedBy).toBe('systemuser');
          expect(entityProblems(tables.account, ctx.record!)).toEqual([]);
        },
      ),
    ]);
    expect(await deliver(registry, event('08-'))).toBe(1);
  });

  it('fixture 03: every kind of column of a custom table (Money, base currency, decimals, a multi-select choice)', async () => {
    const registry = registryOf([
      on({ name: 'all', entity: 'shko_allfields', message: 'Create', stage: 'PostOperation', mode: 'Synchronous' }, (_event, ctx) => {
        const attributes = ctx.record!.attributes;
        // A multi-select choice is an OptionSetValueCollection, or [] when empty (Dataverse sends a bare array).
        const selected = attributes.shko_choices;
        const choices: Array<342490000 | 342490001 | 342490002> = !selected || Array.isArray(selected) ? [] : selected.values;
        expect(choices.map((choice) => tables.shko_allfields.columns.shko_choices.options[choice])).toEqual(['One', 'Two']);
        expect([
          attributes.shko_currency?.value,
          attributes.shko_currency_base?.value,
          attributes.shko_decimal,
          attributes.shko_datetime?.toISOString(),
        ]).toEqual([100, 100, 10.12, '2023-10-17T07:00:00.000Z']);
        expect(entityProblems(tables.shko_allfields, ctx.record!)).toEqual([]);
      }),
    ]);
    expect(await deliver(registry, event('03-'))).toBe(1);
  });

  it('the use-webhooks.md sample: a contact Update whose Target carries computed and phonetic columns', async () => {
    const registry = registryOf([
      on({ name: 'contacts', entity: 'contact', message: 'Update', filteringAttributes: ['firstname'] }, (_event, ctx) => {
        const fullName: string | null | undefined = ctx.record!.attributes.fullname;
        const yomi: string | null | undefined = ctx.record!.attributes.yomifullname;
        expect([typeof fullName, typeof yomi]).toEqual(['string', 'string']);
        expect(entityProblems(tables.contact, ctx.record!)).toEqual([]);
      }),
    ]);
    expect(await deliver(registry, event('use-webhooks.md'))).toBe(1);
  });

  it('the run-time check sees a value the types would not describe', () => {
    const spec = (column: ColumnSpec): TableSpec => ({
      schemaName: 'T',
      entitySetName: 'ts',
      primaryIdAttribute: 'tid',
      primaryNameAttribute: null,
      columns: { c: column },
    });
    const entity = (value: unknown) => ({ attributes: { c: value } }) as unknown as Pick<Entity, 'attributes'>;
    expect(entityProblems(spec({ type: 'Picklist', options: { 1: 'One' } }), entity({ $type: 'OptionSetValue', value: 2 }))).toEqual([
      'c: option 2 is not one of 1',
    ]);
    expect(
      entityProblems(
        spec({ type: 'Customer', targets: ['account', 'contact'] }),
        entity({ $type: 'EntityReference', logicalName: 'lead', id: 'x' }),
      ),
    ).toEqual(['c: a reference to lead, which is not one of account, contact']);
    expect(entityProblems(spec({ type: 'String' }), { attributes: { other: 'x' } } as unknown as Pick<Entity, 'attributes'>)).toEqual([
      'other: not a column of the table',
    ]);
    expect(columnValueProblem({ type: 'DateTime' }, '2024-01-01')).toBe('a DateTime column holds a Date');
    expect(columnValueProblem({ type: 'MultiSelectPicklist', options: { 1: 'One' } }, [])).toBeNull();
    expect(columnValueProblem({ type: 'Image' }, [255, 216])).toBeNull();
  });
});
