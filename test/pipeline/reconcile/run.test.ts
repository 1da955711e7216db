import { beforeEach, describe, expect, it } from 'vitest';
import { on } from '../../../src/handlerApi';
import { registryOf } from '../../../src/handlerApi/load';
import type { EventLog, LogProperties } from '../../../src/observability/log';
import { recordingTelemetry } from '../../../src/observability/telemetry';
import type { HandlerRegistry } from '../../../src/pipeline/handlerRegistry';
import { encodeQueueMessage } from '../../../src/storage/queueMessages';
import { ReconcileState } from '../../../src/storage/reconcileState';
import { type ReconcileWorld, useReconcileWorld } from '../../support/reconcileWorld';
import { drainQueue } from '../../support/storage';

/** The run's own rules: the token, the lease, the pages, the tables it cannot read. */

function recordingLog(): EventLog & { lines: Array<{ level: string; message: string; properties: LogProperties }> } {
  const lines: Array<{ level: string; message: string; properties: LogProperties }> = [];
  const add =
    (level: string) =>
    (message: string, properties: LogProperties = {}) =>
      void lines.push({ level, message, properties });
  return { lines, info: add('info'), warn: add('warn'), error: add('error') };
}

const START = Date.UTC(2026, 4, 1, 9, 0, 0);
const DAY = 24 * 60 * 60 * 1000;

describe('a reconcile run', () => {
  const freshWorld = useReconcileWorld(['account'], START);
  let world: ReconcileWorld;
  let handlers: HandlerRegistry;
  let calls: Array<{ message: string; reconciled: boolean }>;

  beforeEach(() => {
    world = freshWorld();
    calls = [];
    handlers = registryOf([
      on({ name: 'accounts', entity: 'account', message: ['Create', 'Update'], reconcile: { columns: ['name'] } }, (event, ctx) => {
        calls.push({ message: event.messageName, reconciled: ctx.reconciled });
      }),
    ]);
  });

  it('starts over from the current state when Dataverse says the token expired, with a warning and a metric', async () => {
    await world.create('account', { name: 'Contoso' });
    await world.reconcile(handlers);
    const position = await new ReconcileState(world.storage.reconcile).position('account');
    expect(position.deltaToken).toMatch(/^\d+!05\/01\/2026 09:00:00$/);
    // Eight days later (the organization keeps changes for seven): a missed change, then a run.
    world.tick((8 * DAY) / 1000);
    world.appUp = false;
    await world.update('account', world.tracking.ids('account')[0]!, { name: 'Fabrikam' });
    const log = recordingLog();
    const telemetry = recordingTelemetry();
    const run = await world.reconcile(handlers, {}, { log, telemetry });
    expect(run).toMatchObject({ status: 'ran', tables: [{ table: 'account', status: 'restarted', changed: 0 }] });
    expect(telemetry.metrics).toEqual([{ name: 'reconcileRestarted', value: 1, properties: { table: 'account', reason: 'expired' } }]);
    expect(telemetry.eventsNamed('reconcileRun')).toEqual([
      expect.objectContaining({ properties: expect.objectContaining({ table: 'account', status: 'restarted' }) }),
    ]);
    expect(log.lines).toContainEqual({
      level: 'warn',
      message: expect.stringContaining('reconcile --since'),
      properties: expect.objectContaining({ table: 'account', lastSyncedAt: '2026-05-01T09:00:00.000Z', expired: true }),
    });
    // Nothing was replayed (starting over takes a token), and the new token works.
    expect(await world.fanOut(handlers)).toEqual([]);
    const renewed = await new ReconcileState(world.storage.reconcile).position('account');
    expect(renewed.deltaToken).not.toBe(position.deltaToken);
    world.tick();
    await world.update('account', world.tracking.ids('account')[0]!, { name: 'Northwind' });
    expect(await world.reconcile(handlers)).toMatchObject({ tables: [{ status: 'complete', changed: 1 }] });
  });

  it('starts over when the token cannot be read, saying so', async () => {
    await world.create('account', { name: 'Contoso' });
    await world.reconcile(handlers);
    const state = new ReconcileState(world.storage.reconcile);
    await state.savePosition({ ...(await state.position('account')), deltaToken: 'not-a-token' });
    const telemetry = recordingTelemetry();
    expect(await world.reconcile(handlers, {}, { telemetry })).toMatchObject({ tables: [{ status: 'restarted' }] });
    expect(telemetry.metrics).toEqual([{ name: 'reconcileRestarted', value: 1, properties: { table: 'account', reason: 'refused' } }]);
  });

  it('reports a table whose change tracking is off, and reconciles the others', async () => {
    world.tracking.table('contact', { enabled: false });
    const both = registryOf([
      on({ name: 'accounts', entity: 'account', message: 'Update', reconcile: true }, () => undefined),
      on({ name: 'contacts', entity: 'contact', message: 'Update', reconcile: true }, () => undefined),
    ]);
    const log = recordingLog();
    const telemetry = recordingTelemetry();
    const run = await world.reconcile(both, {}, { log, telemetry });
    expect(run).toMatchObject({
      tables: [
        { table: 'account', status: 'token-taken' },
        { table: 'contact', status: 'tracking-off', detail: expect.stringContaining('register --enable-change-tracking') },
      ],
    });
    expect(log.lines).toContainEqual(
      expect.objectContaining({ level: 'error', properties: expect.objectContaining({ table: 'contact' }) }),
    );
    expect(telemetry.eventsNamed('reconcileRun').map((event) => event.properties.status)).toEqual(['token-taken', 'tracking-off']);
  });

  it('pages through the changes; a run stopped at its deadline goes on from the page it reached', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) ids.push(await world.create('account', { name: `Account ${i}` }));
    await world.process(handlers);
    await world.reconcile(handlers, {}, { maxPageSize: 3 });
    world.appUp = false;
    for (const id of ids) {
      world.tick();
      await world.update('account', id, { name: `Renamed ${id.slice(0, 4)}` });
    }
    // The deadline has passed: the run takes one page and stops.
    const partial = await world.reconcile(handlers, {}, { maxPageSize: 3, deadline: Date.now() });
    expect(partial).toMatchObject({ tables: [{ status: 'partial', changed: 3, pages: 1 }] });
    expect((await new ReconcileState(world.storage.reconcile).position('account')).nextLink).toContain('$skiptoken=');
    const rest = await world.reconcile(handlers, {}, { maxPageSize: 3 });
    expect(rest).toMatchObject({ tables: [{ status: 'complete', changed: 7, pages: 3 }] });
    const pages = await world.fanOut(handlers);
    expect(pages.map((page) => page.queued.Update).sort()).toEqual([1, 3, 3, 3]);
    await world.process(handlers);
    expect(calls.filter((call) => call.reconciled)).toHaveLength(10);
  });

  it('runs one at a time, RECONCILE_INTERVAL apart unless asked now', async () => {
    const settings = { intervalMs: 15 * 60_000, leaseMs: 60_000 };
    const [a, b] = await Promise.all([
      world.reconcile(handlers, { force: false }, { holder: 'a', settings }),
      world.reconcile(handlers, { force: false }, { holder: 'b', settings }),
    ]);
    expect([a.status, b.status].sort()).toEqual(['held', 'ran']);
    expect(await world.reconcile(handlers, { force: false }, { settings })).toMatchObject({ status: 'not-due' });
    expect(await world.reconcile(handlers, { force: true }, { settings })).toMatchObject({ status: 'ran' });
    // A run that holds the lease keeps even a forced one out.
    const state = new ReconcileState(world.storage.reconcile);
    const taken = await state.acquire('someone', 60_000, 0, true);
    expect(taken.kind).toBe('acquired');
    expect(await world.reconcile(handlers, { force: true })).toMatchObject({ status: 'held', holder: 'someone' });
  });

  it('puts back pages that failed every attempt, and does nothing without reconciling handlers', async () => {
    await world.storage.reconcilePoisonQueue.createIfNotExists();
    await world.storage.reconcilePoisonQueue.sendMessage(encodeQueueMessage({ v: 1, kind: 'reconcile-batch', page: 1 }));
    expect(await world.reconcile(handlers)).toMatchObject({ status: 'ran', requeuedBatches: 1 });
    expect(await drainQueue(world.storage.reconcileQueue)).toEqual([{ v: 1, kind: 'reconcile-batch', page: 1 }]);
    expect(await drainQueue(world.storage.reconcilePoisonQueue)).toEqual([]);
    const none = registryOf([on({ name: 'plain', entity: 'account', message: 'Update' }, () => undefined)]);
    expect(await world.reconcile(none)).toEqual({ status: 'nothing-to-reconcile' });
  });

  it('replays from a time: every row changed since, from the current state (not the deletions)', async () => {
    const kept = await world.create('account', { name: 'A' });
    const gone = await world.create('account', { name: 'C' });
    await world.reconcile(handlers);
    world.tick(3600);
    // The app never saw these: its webhook was down, and suppose the token was lost too.
    world.appUp = false;
    await world.update('account', kept, { name: 'A2' });
    await world.delete('account', gone);
    const since = world.tracking.clock() - 1000;
    const replay = await world.reconcile(handlers, { since });
    expect(replay).toMatchObject({ tables: [{ status: 'complete', changed: 1, deleted: 0 }] });
    const pages = await world.fanOut(handlers);
    expect(pages).toEqual([expect.objectContaining({ rows: 1, queued: { Create: 0, Update: 1, Delete: 0 } })]);
    await world.process(handlers);
    // The token it found is kept: the next run still sees the deletion, and does not run the update again.
    expect(await world.reconcile(handlers)).toMatchObject({ tables: [{ status: 'complete', changed: 1, deleted: 1 }] });
    expect(await world.fanOut(handlers)).toEqual([expect.objectContaining({ queued: { Create: 0, Update: 0, Delete: 0 } })]);
    expect(calls.filter((call) => call.reconciled)).toEqual([{ message: 'Update', reconciled: true }]);
  });
});
