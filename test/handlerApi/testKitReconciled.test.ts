import { expect, it } from 'vitest';
import { on } from '../../src/handlerApi';
import { generatedEvent, runHandler } from '../../src/handlerApi/testing';

/** The test kit runs a handler as a reconciled change when asked, and only a handler that reconciles. */

it('runs a reconciling handler with ctx.reconciled true, and never one that does not reconcile', async () => {
  const seen: boolean[] = [];
  const reconciling = on({ name: 'syncs', entity: 'account', message: 'Update', reconcile: true }, (_event, ctx) => {
    seen.push(ctx.reconciled);
  });
  const plain = on({ name: 'plain', entity: 'account', message: 'Update' }, () => {
    seen.push(false);
  });
  const event = generatedEvent({ entity: 'account', message: 'Update', attributes: ['name=Contoso'] });
  expect(await runHandler(reconciling, event, { reconciled: true })).toMatchObject({ matched: true, calls: [{ error: null }] });
  expect(await runHandler(reconciling, event)).toMatchObject({ matched: true });
  expect(await runHandler(plain, event, { reconciled: true })).toMatchObject({ matched: false, calls: [] });
  expect(seen).toEqual([true, false]);
});
