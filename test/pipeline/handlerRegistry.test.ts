import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { type DataverseEvent, parseDataverseWebhookOrThrow } from '../../src/dataverse';
import { targetRecords } from '../../src/dataverse/accessors';
import {
  type ContextOptions,
  createMultipleOfAccounts,
  rawEntity,
  rawEntityReference,
  rawExecutionContext,
  withoutTruncatedProperties,
} from '../../src/dataverse/samplePayloads';
import type { HandlerDefinition } from '../../src/handlerApi';
import { allow, decide, MAX_REASON_LENGTH, on, reject } from '../../src/handlerApi';
import { registryOf } from '../../src/handlerApi/load';
import { silentLog } from '../../src/observability/log';
import { handlerContext } from '../../src/pipeline/handlerContext';
import type { HandlerContext } from '../../src/pipeline/handlerRegistry';

function event(options: ContextOptions, truncated = false): DataverseEvent {
  const context = rawExecutionContext(options);
  return parseDataverseWebhookOrThrow({
    body: JSON.stringify(truncated ? withoutTruncatedProperties(context) : context),
    headers: truncated ? { 'x-ms-dynamics-msg-size-exceeded': 'true' } : {},
  });
}

function contactUpdate(columns: Record<string, string>, options: Partial<ContextOptions> = {}): DataverseEvent {
  const id = randomUUID();
  return event({
    messageName: 'Update',
    entityName: 'contact',
    entityId: id,
    mode: 1,
    inputParameters: { Target: rawEntity('contact', id, { contactid: id, ...columns }) },
    ...options,
  });
}

const noop = () => undefined;

describe('handlers declare the steps they need', () => {
  it('handlers on one table, message, stage and mode share a step with the union of their columns', () => {
    const registry = registryOf([
      on(
        {
          name: 'names',
          entity: 'contact',
          message: 'Update',
          stage: 'PostOperation',
          mode: 'Asynchronous',
          filteringAttributes: ['lastname', 'firstname'],
          images: { pre: { type: 'PreImage', columns: ['lastname', 'firstname'] } },
        },
        noop,
      ),
      on(
        {
          name: 'email',
          entity: 'contact',
          message: 'Update',
          mode: 'Asynchronous',
          stage: 'PostOperation',
          filteringAttributes: ['emailaddress1'],
          images: { pre: { type: 'PreImage', columns: ['emailaddress1'] }, post: { type: 'PostImage' } },
        },
        noop,
      ),
      on({ name: 'gatekeeper', entity: 'contact', message: 'Update', stage: 'PreValidation' }, noop),
      on({ name: 'everything', entity: '*', message: '*' }, noop),
    ]);
    expect(registry.steps).toEqual([
      {
        entity: 'contact',
        message: 'Update',
        stage: 'PostOperation',
        mode: 'Asynchronous',
        filteringAttributes: ['emailaddress1', 'firstname', 'lastname'],
        images: [
          { alias: 'pre', type: 'PreImage', columns: ['emailaddress1', 'firstname', 'lastname'] },
          { alias: 'post', type: 'PostImage', columns: null },
        ],
        handlers: ['names', 'email'],
      },
      {
        entity: 'contact',
        message: 'Update',
        stage: 'PreValidation',
        mode: 'Synchronous',
        filteringAttributes: null,
        images: [],
        handlers: ['gatekeeper'],
      },
    ]);
  });

  it('a step has no filtering attributes when one of its handlers wants every Update, and one step per message', () => {
    const registry = registryOf([
      on({ name: 'some', entity: 'account', message: 'Update', filteringAttributes: ['name'] }, noop),
      on({ name: 'all', entity: 'account', message: ['Create', 'Update'] }, noop),
    ]);
    expect(registry.steps.map((step) => [step.message, step.filteringAttributes, step.handlers])).toEqual([
      ['Update', null, ['some', 'all']],
      ['Create', null, ['all']],
    ]);
  });

  it('refuses, as the app loads, what Dataverse would refuse or what would run twice', () => {
    // Declared as JavaScript (or a cast) would: the compiler refuses each of these first.
    const refused = (options: object) => {
      try {
        registryOf([on(options as never, noop)]);
        return '';
      } catch (error) {
        return String(error);
      }
    };
    expect(refused({ name: 'both', entity: 'account', message: ['Create', 'CreateMultiple'] })).toContain(
      'it declares both Create and CreateMultiple: Dataverse raises Create for every record of a CreateMultiple and CreateMultiple for every Create, so it would run twice per record; declare Create alone',
    );
    expect(refused({ name: 'x', entity: 'account', message: 'Update', stage: 'PreOperation', mode: 'Asynchronous' })).toContain(
      'Dataverse runs asynchronous steps only in PostOperation',
    );
    expect(refused({ name: 'x', entity: 'account', message: 'Create', images: { pre: { type: 'PreImage' } } })).toContain(
      'image "pre": a Create has no pre-image',
    );
    expect(refused({ name: 'x', entity: 'account', message: 'Delete', images: { post: { type: 'Both' } } })).toContain(
      'image "post": a Delete has no post-image',
    );
    expect(
      refused({ name: 'x', entity: 'account', message: 'Update', stage: 'PreOperation', images: { post: { type: 'PostImage' } } }),
    ).toContain('a post-image needs the PostOperation stage');
    expect(refused({ name: 'x', entity: 'account', message: 'UpdateMultiple', images: { pre: { type: 'PreImage' } } })).toContain(
      'declare Update instead',
    );
    expect(refused({ name: 'x', entity: 'account', message: 'Create', filteringAttributes: ['name'] })).toContain(
      'filteringAttributes apply to Update and UpdateMultiple only',
    );
    expect(refused({ name: 'x', entity: 'account', message: 'Update', filteringAttributes: [] })).toContain('filteringAttributes is empty');
    expect(refused({ name: 'x', entity: 'Account', message: 'Update' })).toContain('entity "Account" is not a table logical name');
    expect(refused({ name: 'x', entity: '*', message: 'Update', filteringAttributes: ['name'] })).toContain(
      'a handler for "*" registers no step',
    );
    expect(refused({ name: 'x', entity: 'account', message: 'Update', images: { 'pre image': { type: 'PreImage' } } })).toContain(
      'an alias is a letter then letters',
    );
    expect(refused({ name: 'x', entity: 'account', message: 'Update', filteringAtributes: ['name'] })).toContain(
      'unknown option "filteringAtributes"',
    );
    expect(refused({ name: 'x', entity: 'account', message: 'Update', stage: 'MainOperation' })).toContain(
      'stage "MainOperation" is not one of PreValidation, PreOperation, PostOperation',
    );
  });

  it('refuses two handlers that cannot share a step, naming both', () => {
    const first = on({ name: 'first', entity: 'account', message: 'Update', images: { image: { type: 'PreImage' } } }, noop);
    expect(() =>
      registryOf([first, on({ name: 'second', entity: 'account', message: 'Update', images: { image: { type: 'PostImage' } } }, noop)]),
    ).toThrow('handlers first and second declare the image "image" of Update of account as PreImage and PostImage');
    const unsure = on({ name: 'no-mode', entity: 'account', message: 'Update' }, noop);
    expect(() =>
      registryOf([unsure, on({ name: 'sync', entity: 'account', message: 'Update', stage: 'PostOperation', mode: 'Synchronous' }, noop)]),
    ).toThrow(
      'handler no-mode leaves its stage out, so it would also receive the PostOperation Synchronous Update of account declared by sync: declare its stage and mode',
    );
    // Each alone is a registry.
    expect(registryOf([first]).all.map((handler) => handler.name)).toEqual(['first']);
    expect(registryOf([unsure]).steps).toHaveLength(1);
  });
});

describe('inline handlers (decide) declare a step Dataverse waits for', () => {
  const allowAll = () => allow();

  it('register a synchronous step, shared with reacting handlers of the same step, and default to Synchronous', () => {
    const registry = registryOf([
      decide(
        { name: 'gate', entity: 'account', message: 'Update', stage: 'PreValidation', filteringAttributes: ['creditlimit'] },
        allowAll,
      ),
      on(
        { name: 'audit', entity: 'account', message: 'Update', stage: 'PreValidation', mode: 'Synchronous', filteringAttributes: ['name'] },
        noop,
      ),
      decide({ name: 'late-gate', entity: 'account', message: 'Create', stage: 'PostOperation' }, allowAll),
    ]);
    expect(registry.steps).toEqual([
      {
        entity: 'account',
        message: 'Update',
        stage: 'PreValidation',
        mode: 'Synchronous',
        filteringAttributes: ['creditlimit', 'name'],
        images: [],
        handlers: ['gate', 'audit'],
      },
      // A PostOperation step is asynchronous by default for on(…); an inline handler's is synchronous.
      {
        entity: 'account',
        message: 'Create',
        stage: 'PostOperation',
        mode: 'Synchronous',
        filteringAttributes: null,
        images: [],
        handlers: ['late-gate'],
      },
    ]);
    expect(registry.inline.map((decider) => decider.name)).toEqual(['gate', 'late-gate']);
    expect(registry.all.map((handler) => handler.name)).toEqual(['audit']);
  });

  it('refuses, as the app loads, a step Dataverse does not wait for, and what does not apply to a decision', () => {
    // Declared as JavaScript (or a cast) would: the compiler refuses each of these first.
    const refused = (options: object, ...before: HandlerDefinition[]) => {
      try {
        registryOf([...before, decide(options as never, allowAll)]);
        return '';
      } catch (error) {
        return String(error);
      }
    };
    // The one line the app logs and the CLI prints: the declaring file, the handler, the reason.
    expect(refused({ name: 'async', entity: 'account', message: 'Create', stage: 'PostOperation', mode: 'Asynchronous' })).toBe(
      'HandlerLoadError: test/pipeline/handlerRegistry.test.ts: handler async: an inline handler decides whether the operation goes on, and Dataverse runs an asynchronous step after the operation completed, where no answer can stop it: declare a synchronous step, or react with on(…) instead',
    );
    expect(refused({ name: 'early-async', entity: 'account', message: 'Create', stage: 'PreValidation', mode: 'Asynchronous' })).toContain(
      'Dataverse runs asynchronous steps only in PostOperation',
    );
    expect(refused({ name: 'no-stage', entity: 'account', message: 'Create' })).toContain(
      'an inline handler must declare its stage: PreValidation, PreOperation, PostOperation',
    );
    expect(refused({ name: 'any', entity: '*', message: 'Create', stage: 'PreValidation' })).toContain(
      'an inline handler decides for its own step: name the table and the message',
    );
    expect(refused({ name: 'per-record', entity: 'account', message: 'Create', stage: 'PreValidation', perRecord: true })).toContain(
      '"perRecord" apply to reacting handlers (on(…))',
    );
    expect(
      refused({ name: 'post-image', entity: 'account', message: 'Update', stage: 'PreOperation', images: { post: { type: 'PostImage' } } }),
    ).toContain('a post-image needs the PostOperation stage');
    const taken = on({ name: 'same', entity: 'account', message: 'Create' }, noop);
    expect(refused({ name: 'same', entity: 'account', message: 'Create', stage: 'PreValidation' }, taken)).toContain(
      'two handlers are named "same"',
    );
    expect(() => registryOf([taken, on({ name: 'same', entity: 'contact', message: 'Create' }, noop)])).toThrow(
      'two handlers are named "same"',
    );
  });

  it('decide only synchronous events of their step, and the queue never runs them', () => {
    const registry = registryOf([
      decide({ name: 'gate', entity: 'contact', message: 'Update', stage: 'PreOperation' }, allowAll),
      on({ name: 'react', entity: 'contact', message: 'Update', stage: 'PreOperation' }, noop),
    ]);
    const at = (stage: number, mode: number) => contactUpdate({ firstname: 'x' }, { stage, mode });
    expect(registry.decisionsFor(at(20, 0)).map((decider) => decider.name)).toEqual(['gate']);
    expect(registry.decisionsFor(at(40, 1))).toEqual([]);
    expect(registry.decisionsFor(at(10, 0))).toEqual([]);
    expect(registry.match(at(20, 0)).map((handler) => handler.name)).toEqual(['react']);
  });

  it('a rejection needs a reason for the person, and a code fit for logs', () => {
    expect(reject('  Too high  ', { code: 'credit-limit' })).toEqual({ outcome: 'reject', reason: 'Too high', code: 'credit-limit' });
    expect(reject('No')).toEqual({ outcome: 'reject', reason: 'No', code: 'rejected' });
    expect(reject('x'.repeat(MAX_REASON_LENGTH + 10))).toMatchObject({ reason: 'x'.repeat(MAX_REASON_LENGTH) });
    expect(() => reject('   ')).toThrow('reject(reason) needs a reason for the person whose save fails');
    expect(() => reject('No', { code: 'has spaces' })).toThrow('may use only letters, digits');
    expect(allow()).toEqual({ outcome: 'allow' });
  });
});

describe('matching an event to handlers', () => {
  const registry = registryOf([
    on({ name: 'names', entity: 'contact', message: 'Update', filteringAttributes: ['firstname'] }, noop),
    on({ name: 'email', entity: 'contact', message: 'Update', filteringAttributes: ['emailaddress1'] }, noop),
    // Matched without regard to case, as Dataverse names messages; the types want the canonical case.
    on({ name: 'any-update', entity: 'contact', message: 'update' } as never, noop),
  ]);
  const names = (candidate: DataverseEvent) => registry.match(candidate).map((handler) => handler.name);

  it('each handler receives the Updates that carry one of its own filtering attributes, as if it had its own step', () => {
    expect(names(contactUpdate({ firstname: 'Ann' }))).toEqual(['names', 'any-update']);
    expect(names(contactUpdate({ emailaddress1: 'a@example.com' }))).toEqual(['email', 'any-update']);
    expect(names(contactUpdate({ telephone1: '555' }))).toEqual(['any-update']);
  });

  it('a truncated Update has no Target to look at and reaches every handler of its table and message', () => {
    const id = randomUUID();
    const truncated = event(
      {
        messageName: 'Update',
        entityName: 'contact',
        entityId: id,
        mode: 1,
        inputParameters: { Target: rawEntity('contact', id, { telephone1: '555' }) },
      },
      true,
    );
    expect(names(truncated)).toEqual(['names', 'email', 'any-update']);
  });

  it('a declared stage or mode must match; one left out matches any', () => {
    const staged = registryOf([
      on({ name: 'pre', entity: 'contact', message: 'Update', stage: 'PreOperation' }, noop),
      on({ name: 'post-sync', entity: 'contact', message: 'Update', stage: 'PostOperation', mode: 'Synchronous' }, noop),
    ]);
    const match = (stage: number, mode: number) =>
      staged.match(contactUpdate({ firstname: 'x' }, { stage, mode })).map((handler) => handler.name);
    expect(match(20, 0)).toEqual(['pre']);
    expect(match(40, 0)).toEqual(['post-sync']);
    expect(match(40, 1)).toEqual([]);
  });
});

describe('the context a handler receives', () => {
  // As the processor builds it (src/pipeline/handlerContext.ts).
  const runtimeContext = (on: DataverseEvent, record: HandlerContext['record']) =>
    handlerContext({
      event: on,
      eventId: 'e',
      record,
      log: silentLog,
      deliveryCount: 1,
      signal: new AbortController().signal,
      idempotencyKey: '00000000-0000-8000-8000-000000000000',
    });

  it('says truncated, and calls a per-record handler with filtering attributes only for the records that carry one', async () => {
    const seen: Array<{ id: string; truncated: boolean }> = [];
    const registry = registryOf([
      on({ name: 'bulk', entity: 'account', message: 'UpdateMultiple', perRecord: true, filteringAttributes: ['name'] }, (_event, ctx) => {
        seen.push({ id: ctx.record.id, truncated: ctx.truncated });
      }),
    ]);
    const bulk = event({ ...rawContextOf(createMultipleOfAccounts(2)), messageName: 'UpdateMultiple' });
    const [first, second] = targetRecords(bulk);
    delete first!.attributes['name'];
    const [handler] = registry.match(bulk);
    await handler!.handle(bulk, runtimeContext(bulk, first!));
    await handler!.handle(bulk, runtimeContext(bulk, second!));
    expect(seen).toEqual([{ id: second!.id, truncated: false }]);
  });

  it('changes() without an alias compares with no image, even when the event carries one nobody declared', async () => {
    const id = randomUUID();
    const update = event({
      messageName: 'Update',
      entityName: 'contact',
      entityId: id,
      mode: 1,
      inputParameters: { Target: rawEntity('contact', id, { firstname: 'Ann', lastname: 'Lee' }) },
      preEntityImages: { byHand: rawEntity('contact', id, { firstname: 'Ann', lastname: 'Li' }) },
    });
    const seen: unknown[] = [];
    const registry = registryOf([
      on(
        { name: 'undeclared', entity: 'contact', message: 'Update', stage: 'PostOperation', mode: 'Asynchronous' },
        (_event, ctx) => void seen.push(ctx.changes().map((change) => change.attribute)),
      ),
    ]);
    await registry.all[0]!.handle(update, runtimeContext(update, null));
    expect(seen).toEqual([['firstname', 'lastname']]);
  });

  it('fails a per-record call that names no record, instead of calling the handler with none', () => {
    const registry = registryOf([on({ name: 'bulk', entity: 'account', message: 'UpdateMultiple', perRecord: true }, noop)]);
    const bulk = event({ messageName: 'UpdateMultiple', entityName: 'account', entityId: '00000000-0000-0000-0000-000000000000' }, true);
    expect(() => registry.all[0]!.handle(bulk, runtimeContext(bulk, null))).toThrow(
      'handler bulk runs per record, and this UpdateMultiple names no record',
    );
  });
});

describe('the records of an event', () => {
  it('takes an id the request left empty from the ids the create answered with', () => {
    const empty = '00000000-0000-0000-0000-000000000000';
    const ids = [randomUUID(), randomUUID()];
    const bulk = event({
      messageName: 'CreateMultiple',
      entityName: 'account',
      entityId: empty,
      inputParameters: {
        Targets: {
          __type: 'EntityCollection:http://schemas.microsoft.com/xrm/2011/Contracts',
          Entities: [rawEntity('account', empty, { name: 'a' }), rawEntity('account', empty, { name: 'b' })],
          EntityName: 'account',
          MoreRecords: false,
          MinActiveRowVersion: null,
          PagingCookie: null,
          TotalRecordCount: -1,
          TotalRecordCountLimitExceeded: false,
        },
      },
      outputParameters: { Ids: ids },
    });
    expect(targetRecords(bulk).map((record) => [record.id, record.attributes['name']])).toEqual([
      [ids[0], 'a'],
      [ids[1], 'b'],
    ]);
    // Truncated, the records are known by those ids alone.
    const truncated = event(
      { messageName: 'CreateMultiple', entityName: 'account', entityId: empty, outputParameters: { Ids: ids } },
      true,
    );
    expect(targetRecords(truncated).map((record) => [record.logicalName, record.id, Object.keys(record.attributes)])).toEqual([
      ['account', ids[0], []],
      ['account', ids[1], []],
    ]);
  });

  it('a Delete is about the record its Target refers to', () => {
    const id = randomUUID();
    const deleted = event({
      messageName: 'Delete',
      entityName: 'contact',
      entityId: id,
      inputParameters: { Target: rawEntityReference('contact', id) },
    });
    expect(targetRecords(deleted).map((record) => [record.logicalName, record.id])).toEqual([['contact', id]]);
  });
});

function rawContextOf(context: Record<string, unknown>): ContextOptions {
  const targets = (context['InputParameters'] as Array<{ key: string; value: never }>).find((pair) => pair.key === 'Targets')?.value;
  return {
    messageName: String(context['MessageName']),
    entityName: String(context['PrimaryEntityName']),
    entityId: String(context['PrimaryEntityId']),
    inputParameters: targets ? { Targets: targets } : {},
  };
}

describe('reconcile: what change tracking can serve', () => {
  const noop = () => undefined;
  // As a declaration written in JavaScript (or cast) reaches the registry: the compiler's rules do not apply.
  const register = (options: Record<string, unknown>) => () =>
    registryOf([on({ name: 'h', entity: 'account', message: 'Update', ...options } as never, noop)]);

  it('takes reconcile: true or { columns }, and keeps what a reconciled Target holds', () => {
    const registry = registryOf([
      on({ name: 'all', entity: 'account', message: ['Create', 'Update', 'Delete'], reconcile: true }, noop),
      on({ name: 'some', entity: 'contact', message: 'Update', stage: 'PostOperation', reconcile: { columns: ['lastname'] } }, noop),
      on({ name: 'none', entity: 'contact', message: 'Create' }, noop),
    ]);
    expect(registry.all.map((handler) => handler.reconcile)).toEqual([{ columns: null }, { columns: ['lastname'] }, null]);
  });

  it('refuses, as the app loads, what a reconciled call could not give', () => {
    expect(register({ reconcile: true, images: { pre: { type: 'PreImage' } } })).toThrow(/a reconciled call has no images/);
    expect(register({ reconcile: true, filteringAttributes: ['name'] })).toThrow(/cannot honour filtering attributes/);
    expect(register({ reconcile: true, entity: '*' })).toThrow(/not "\*"/);
    expect(register({ reconcile: true, message: ['Update', 'Assign'] })).toThrow(/not to Assign/);
    expect(register({ reconcile: true, stage: 'PreOperation', mode: 'Synchronous' })).toThrow(/declare stage PostOperation/);
    expect(register({ reconcile: { columns: [] } })).toThrow(/reconcile is true, or \{ columns/);
    expect(register({ reconcile: { columns: ['Not A Column'] } })).toThrow(/"Not A Column" is not a column logical name/);
    expect(register({ reconcile: 'yes' })).toThrow(/reconcile is true, or \{ columns/);
    expect(() =>
      registryOf([
        decide({ name: 'd', entity: 'account', message: 'Update', stage: 'PreValidation', reconcile: true } as never, () => allow()),
      ]),
    ).toThrow(/"reconcile" apply to reacting handlers/);
  });
});
