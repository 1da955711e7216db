/**
 * Compile-time tests of the handler context: `npm run typecheck` (tsc over test/) checks this file,
 * so an `expectTypeOf` that no longer holds, or a `@ts-expect-error` line that starts compiling,
 * fails the suite. The calls are never run. The tables are made up, so that no generated table
 * module (src/handlers/tables.generated.ts) types them: these are the generic types. test/handlerApi/contextTypes.test.ts proves the same
 * errors by compiling small programs.
 */
import { expectTypeOf } from 'vitest';
import type { DataverseEvent, Entity } from '../../src/dataverse';
import type { AttributeChange } from '../../src/dataverse/accessors';
import type { DataverseRow } from '../../src/dataverseApi';
import { allow, decide, on, reject } from '../../src/handlerApi';

// Images: the accessors take the declared aliases of their kind, and nothing else.
on(
  {
    name: 'images',
    entity: 'x_cntct',
    message: 'Update',
    filteringAttributes: ['firstname'],
    images: {
      pre: { type: 'PreImage', columns: ['firstname'] },
      after: { type: 'PostImage' },
      both: { type: 'Both', columns: ['lastname'] },
    },
  },
  (event, ctx) => {
    expectTypeOf(event).toEqualTypeOf<DataverseEvent>();
    expectTypeOf(ctx.preImage('pre')).toEqualTypeOf<Entity | null>();
    expectTypeOf(ctx.postImage('after')).toEqualTypeOf<Entity | null>();
    expectTypeOf<Parameters<typeof ctx.preImage>[0]>().toEqualTypeOf<'pre' | 'both'>();
    expectTypeOf<Parameters<typeof ctx.postImage>[0]>().toEqualTypeOf<'after' | 'both'>();
    expectTypeOf(ctx.changes('pre')).toEqualTypeOf<AttributeChange[]>();
    // @ts-expect-error an alias the handler did not declare
    ctx.preImage('PreImage');
    // @ts-expect-error a post-image is not a pre-image
    ctx.preImage('after');
    // @ts-expect-error a pre-image is not a post-image
    ctx.postImage('pre');
    // @ts-expect-error changes compare with a pre-image only
    ctx.changes('after');
    // @ts-expect-error the alias is not optional: which image is read is explicit
    ctx.preImage();
    // @ts-expect-error nor for changes, once a pre-image is declared
    ctx.changes();
  },
);

// No images declared: no alias compiles.
on({ name: 'no-images', entity: 'x_accnt', message: 'Delete' }, (_event, ctx) => {
  expectTypeOf<Parameters<typeof ctx.preImage>[0]>().toEqualTypeOf<never>();
  // @ts-expect-error no image was declared
  ctx.preImage('pre');
  // @ts-expect-error no image was declared
  ctx.postImage('post');
  expectTypeOf(ctx.changes()).toEqualTypeOf<AttributeChange[]>();
  // @ts-expect-error no pre-image to compare with
  ctx.changes('pre');
});

// perRecord: the record is an Entity; otherwise it may be null.
on({ name: 'per-record', entity: 'x_accnt', message: 'Create', perRecord: true }, (_event, ctx) => {
  expectTypeOf(ctx.record).toEqualTypeOf<Entity>();
  expectTypeOf(ctx.record.id).toEqualTypeOf<string>();
});
on({ name: 'whole-event', entity: 'x_accnt', message: 'Create' }, (_event, ctx) => {
  expectTypeOf(ctx.record).toEqualTypeOf<Entity | null>();
  // @ts-expect-error without perRecord the record may be null
  void ctx.record.id;
});

// rereadTruncated: a row whenever the event was truncated; never without it.
on({ name: 'reread-columns', entity: 'x_accnt', message: 'Update', rereadTruncated: ['name'] }, (_event, ctx) => {
  expectTypeOf(ctx.rereadRecord).toEqualTypeOf<DataverseRow | null>();
  if (ctx.truncated) expectTypeOf(ctx.rereadRecord).toEqualTypeOf<DataverseRow>();
  else expectTypeOf(ctx.rereadRecord).toEqualTypeOf<null>();
  // @ts-expect-error only a truncated event was read again
  void ctx.rereadRecord.name;
});
on({ name: 'reread-all', entity: 'x_accnt', message: 'Update', rereadTruncated: true }, (_event, ctx) => {
  if (ctx.truncated) expectTypeOf(ctx.rereadRecord).toEqualTypeOf<DataverseRow>();
});
on({ name: 'no-reread', entity: 'x_accnt', message: 'Update' }, (_event, ctx) => {
  expectTypeOf(ctx.rereadRecord).toEqualTypeOf<null>();
  expectTypeOf(ctx.truncated).toEqualTypeOf<boolean>();
});
const maybe: boolean = Math.random() > 0.5;
on({ name: 'reread-maybe', entity: 'x_accnt', message: 'Update', rereadTruncated: maybe }, (_event, ctx) => {
  expectTypeOf(ctx.rereadRecord).toEqualTypeOf<DataverseRow | null>();
});

// The fields every handler gets.
on({ name: 'common', entity: '*', message: '*' }, (_event, ctx) => {
  expectTypeOf(ctx.eventId).toEqualTypeOf<string>();
  expectTypeOf(ctx.deliveryCount).toEqualTypeOf<number>();
  expectTypeOf(ctx.attribute).parameter(0).toEqualTypeOf<string>();
});

// The app's own `on` is the same typed method.
on({ name: 'app-on', entity: 'x_cntct', message: 'Update', images: { pre: { type: 'PreImage' } } }, (_event, ctx) => {
  ctx.preImage('pre');
  // @ts-expect-error an alias the handler did not declare
  ctx.preImage('post');
});

// A misspelt option is a compile error, not an option silently ignored.
// @ts-expect-error filteringAtributes is not an option
on({ name: 'typo', entity: 'x_accnt', message: 'Update', filteringAtributes: ['name'] }, () => undefined);
// @ts-expect-error MainOperation cannot be registered
on({ name: 'stage', entity: 'x_accnt', message: 'Update', stage: 'MainOperation' }, () => undefined);
// @ts-expect-error an image type Dataverse does not have
on({ name: 'image-type', entity: 'x_accnt', message: 'Update', images: { pre: { type: 'Before' } } }, () => undefined);

// Inline handlers: the same typed event and context, and a decision to return on every path.
decide(
  {
    name: 'gate',
    entity: 'x_accnt',
    message: 'Update',
    stage: 'PreValidation',
    filteringAttributes: ['creditlimit'],
    images: { pre: { type: 'PreImage', columns: ['creditlimit'] } },
  },
  async (event, ctx) => {
    expectTypeOf(event).toEqualTypeOf<DataverseEvent>();
    expectTypeOf(ctx.preImage('pre')).toEqualTypeOf<Entity | null>();
    expectTypeOf(ctx.signal).toEqualTypeOf<AbortSignal>();
    expectTypeOf(ctx.idempotencyKey).toEqualTypeOf<string>();
    expectTypeOf(ctx.record).toEqualTypeOf<Entity | null>();
    expectTypeOf(ctx.rereadRecord).toEqualTypeOf<null>();
    // @ts-expect-error an alias the handler did not declare
    ctx.preImage('post');
    // @ts-expect-error no post-image is declared
    ctx.postImage('pre');
    return ctx.changes('pre').length > 0 ? reject('The credit limit needs approval', { code: 'approval' }) : allow();
  },
);
// The app's own `decide` is the same typed method.
decide({ name: 'app-decide', entity: 'x_accnt', message: 'Create', stage: 'PreOperation' }, (_event, ctx) =>
  ctx.attribute('name') === null ? reject('A name is required') : allow(),
);
decide(
  { name: 'forgets', entity: 'x_accnt', message: 'Create', stage: 'PreValidation' },
  // @ts-expect-error an inline handler returns a decision on every path: allow() is never implied
  (event) => {
    if (event.depth > 1) return allow();
  },
);
// @ts-expect-error an inline handler declares its stage
decide({ name: 'no-stage', entity: 'x_accnt', message: 'Create' }, () => allow());
// @ts-expect-error Dataverse does not wait for an asynchronous step
decide({ name: 'async', entity: 'x_accnt', message: 'Create', stage: 'PostOperation', mode: 'Asynchronous' }, () => allow());
// @ts-expect-error perRecord, skipStale and rereadTruncated are for reacting handlers
decide({ name: 'per-record', entity: 'x_accnt', message: 'Create', stage: 'PreValidation', perRecord: true }, () => allow());

// ctx.reconciled: only a handler that reconciles can be called for a reconciled change.
on({ name: 'reconciles', entity: 'x_accnt', message: 'Update', reconcile: true }, (_event, ctx) => {
  expectTypeOf(ctx.reconciled).toEqualTypeOf<boolean>();
  // @ts-expect-error a reconciling handler declares no image
  ctx.preImage('pre');
});
on({ name: 'delivered-only', entity: 'x_accnt', message: 'Update' }, (_event, ctx) => {
  expectTypeOf(ctx.reconciled).toEqualTypeOf<false>();
});
