import { beforeEach, describe, expect, it } from 'vitest';
import type { DataverseEvent } from '../../../src/dataverse';
import { type Context, on } from '../../../src/handlerApi';
import { registryOf } from '../../../src/handlerApi/load';
import { recordingTelemetry } from '../../../src/observability/telemetry';
import { failureStore, replayFailures } from '../../../src/pipeline/failures';
import { docsSample, fixture } from '../../support/fixtures';
import { ingest } from '../../support/processing';
import { type ReconcileWorld, type TableName, useReconcileWorld } from '../../support/reconcileWorld';
import { drainQueue } from '../../support/storage';

/**
 * Reconciliation end to end, on Azurite and the Dataverse stand-in: the app's webhook is taken
 * away while changes are made, "Dataverse" gives up on each after its one retry, and one
 * reconcile run recovers what was missed; what was delivered never runs twice.
 */

interface Effect {
  handler: string;
  message: string;
  id: string;
  modifiedOn: number | null;
  reconciled: boolean;
}

function handlersRecording(effects: Effect[]) {
  const record =
    (handler: string) =>
    (event: DataverseEvent, ctx: Pick<Context, 'record'> & { reconciled: boolean }): void => {
      const modifiedOn = ctx.record?.attributes.modifiedon;
      effects.push({
        handler,
        message: event.messageName,
        id: (ctx.record?.id ?? event.primaryEntityId).toLowerCase(),
        modifiedOn: modifiedOn instanceof Date ? modifiedOn.getTime() : null,
        reconciled: ctx.reconciled,
      });
    };
  return registryOf([
    on(
      {
        name: 'account-sync',
        entity: 'account',
        message: ['Create', 'Update', 'Delete'],
        reconcile: { columns: ['name', 'accountnumber'] },
      },
      record('account-sync'),
    ),
    on({ name: 'contact-sync', entity: 'contact', message: ['Create', 'Update', 'Delete'], reconcile: true }, record('contact-sync')),
  ]);
}

const HANDLER_OF: Record<TableName, string> = { account: 'account-sync', contact: 'contact-sync' };

/** A generator of the same pseudo-random sequence on every run (mulberry32). */
function random(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * What each handler must have run exactly once: every delivered change, and, for each record with
 * a change Dataverse gave up on, its state when the run asked (reconciliation sees the row as it is,
 * not the values in between): its deletion, its creation, or its last update, unless that last
 * change was delivered.
 */
function expectedEffects(world: ReconcileWorld, outageStartedAt: number): string[] {
  const expected = world.posted
    .filter((change) => change.delivered)
    .map((change) => `${HANDLER_OF[change.table]}|${change.message}|${change.id}|${change.modifiedOn}`);
  const missed = new Map(world.posted.filter((change) => !change.delivered).map((change) => [`${change.table}|${change.id}`, change]));
  for (const { table, id } of missed.values()) {
    const posts = world.posted.filter((change) => change.table === table && change.id === id);
    const row = world.tracking.row(table, id);
    const handler = HANDLER_OF[table];
    if (!row) {
      if (!posts.some((change) => change.message === 'Delete' && change.delivered)) expected.push(`${handler}|Delete|${id}|null`);
      continue;
    }
    const modifiedOn = Date.parse(String(row.modifiedon));
    if (posts.some((change) => change.delivered && change.modifiedOn === modifiedOn)) continue;
    const created = Date.parse(String(row.createdon)) >= outageStartedAt;
    expected.push(`${handler}|${created ? 'Create' : 'Update'}|${id}|${modifiedOn}`);
  }
  return expected.sort();
}

const key = (effect: Effect) => `${effect.handler}|${effect.message}|${effect.id}|${effect.modifiedOn}`;

describe('reconciliation recovers what Dataverse gave up on', () => {
  const freshWorld = useReconcileWorld(['account', 'contact'], Date.UTC(2026, 4, 1, 9, 0, 0));
  let world: ReconcileWorld;
  let effects: Effect[];

  beforeEach(() => {
    world = freshWorld();
    effects = [];
  });

  async function scenario(instances: number) {
    const handlers = handlersRecording(effects);
    const next = random(27);
    const records: Array<{ table: TableName; id: string }> = [];
    // Before: 20 accounts and 20 contacts, delivered and processed.
    for (let i = 0; i < 20; i++) {
      for (const table of ['account', 'contact'] as const) {
        records.push({
          table,
          id: await world.create(
            table,
            table === 'account' ? { name: `Account ${i}`, accountnumber: `A-${i}` } : { lastname: `Contact ${i}` },
          ),
        });
        world.tick();
      }
    }
    await world.process(handlers);

    // The first run only takes a token: no flood of history.
    const first = await world.reconcile(handlers);
    expect(first).toMatchObject({
      status: 'ran',
      tables: [
        { table: 'account', status: 'token-taken' },
        { table: 'contact', status: 'token-taken' },
      ],
    });
    expect(await world.fanOut(handlers)).toEqual([]);
    const before = effects.length;
    expect(await world.process(handlers)).toMatchObject({ succeeded: 0 });
    expect(effects.length).toBe(before);
    world.tick();

    // The webhook is taken away: 200 changes to 50 records of two tables (10 of them created, some deleted).
    world.appUp = false;
    const outageStartedAt = world.tracking.clock();
    for (let i = 0; i < 10; i++) {
      const table = i % 2 === 0 ? 'account' : 'contact';
      records.push({ table, id: await world.create(table, table === 'account' ? { name: `New ${i}` } : { lastname: `New ${i}` }) });
      world.tick();
    }
    for (let change = 10; change < 200; change++) {
      const alive = records.filter((record) => world.tracking.row(record.table, record.id));
      const { table, id } = alive[Math.floor(next() * alive.length)]!;
      if (next() < 0.04) await world.delete(table, id);
      else await world.update(table, id, table === 'account' ? { name: `Name ${change}` } : { firstname: `First ${change}` });
      world.tick();
    }
    expect(world.posted.filter((change) => !change.delivered)).toHaveLength(200);

    // The webhook is back; some changes are delivered (and still queued) when the run asks.
    world.appUp = true;
    const existing = records.slice(0, 40).filter((record) => world.tracking.row(record.table, record.id));
    for (const { table, id } of existing.slice(0, 8)) {
      await world.update(table, id, table === 'account' ? { accountnumber: `B-${id.slice(0, 4)}` } : { lastname: 'Back' });
      world.tick();
    }
    await world.delete(existing[8]!.table, existing[8]!.id);
    world.tick();

    const runs = await Promise.all(Array.from({ length: instances }, (_, n) => world.reconcile(handlers, {}, { holder: `instance ${n}` })));
    expect(runs.filter((run) => run.status === 'ran')).toHaveLength(1);
    const telemetry = recordingTelemetry();
    await Promise.all(Array.from({ length: instances }, () => world.fanOut(handlers, telemetry)));
    await Promise.all(Array.from({ length: instances }, () => world.process(handlers)));

    expect(effects.map(key).sort()).toEqual(expectedEffects(world, outageStartedAt));
    expect(effects.filter((effect) => effect.reconciled).length).toBeGreaterThan(20);
    // dataverse.reconciled, per table: the missed changes queued (a few of them lost to their delivered copy as they ran).
    const reconciled = telemetry.eventsNamed('reconciled');
    expect(new Set(reconciled.map((event) => event.properties.table))).toEqual(new Set(['account', 'contact']));
    const queued = reconciled.reduce((sum, event) => sum + (event.measurements.queued ?? 0), 0);
    expect(queued).toBeGreaterThanOrEqual(effects.filter((effect) => effect.reconciled).length);
    expect(queued).toBe(
      reconciled.reduce((sum, event) => sum + event.measurements.creates! + event.measurements.updates! + event.measurements.deletes!, 0),
    );

    // A second run finds nothing; nor does a replay of everything changed since before the outage.
    const second = await world.reconcile(handlers);
    expect(second).toMatchObject({
      status: 'ran',
      tables: [
        { changed: 0, deleted: 0 },
        { changed: 0, deleted: 0 },
      ],
    });
    const replay = await world.reconcile(handlers, { since: outageStartedAt - 60_000 });
    expect(replay).toMatchObject({ status: 'ran', tables: [{ status: 'complete' }, { status: 'complete' }] });
    const fannedOut = await world.fanOut(handlers);
    expect(fannedOut.reduce((sum, report) => sum + report.queued.Create + report.queued.Update + report.queued.Delete, 0)).toBe(0);
    expect(fannedOut.reduce((sum, report) => sum + report.rows, 0)).toBeGreaterThan(30);
    expect(await drainQueue(world.storage.eventsQueue)).toEqual([]);
    expect(world.fake.violations).toEqual([]);
  }

  it('one run: every missed change has its effect once, every delivered one none twice, and a second run finds nothing', async () => {
    await scenario(1);
  });

  it('the same with three app instances reconciling and processing at once', async () => {
    await scenario(3);
  });
});

describe('a reconciled change and its delivered copy', () => {
  const freshWorld = useReconcileWorld(['account'], Date.UTC(2026, 4, 1, 9, 0, 0));
  let world: ReconcileWorld;
  let effects: Effect[];
  let handlers: ReturnType<typeof handlersRecording>;
  let id: string;

  beforeEach(async () => {
    world = freshWorld();
    effects = [];
    handlers = handlersRecording(effects);
    id = await world.create('account', { name: 'Contoso' });
    await world.process(handlers);
    await world.reconcile(handlers);
    world.tick();
  });

  it('run once when both are processed at the same time', async () => {
    // Delivered and queued, not processed yet, when the run finds the same change.
    await world.update('account', id, { name: 'Fabrikam' });
    await world.reconcile(handlers);
    await world.fanOut(handlers);
    expect((await world.storage.eventsQueue.getProperties()).approximateMessagesCount).toBe(2);
    await Promise.all([world.process(handlers), world.process(handlers)]);
    expect(effects.map(key)).toEqual([
      `account-sync|Create|${id}|${Date.UTC(2026, 4, 1, 9, 0, 0)}`,
      `account-sync|Update|${id}|${Date.UTC(2026, 4, 1, 9, 0, 1)}`,
    ]);
  });

  it('run once when the delivered copy comes after the reconciled one ran', async () => {
    world.appUp = false;
    await world.update('account', id, { name: 'Fabrikam' });
    world.appUp = true;
    await world.reconcile(handlers);
    await world.fanOut(handlers);
    await world.process(handlers);
    expect(effects).toEqual([
      expect.objectContaining({ message: 'Create', reconciled: false }),
      expect.objectContaining({ message: 'Update', reconciled: true, modifiedOn: Date.UTC(2026, 4, 1, 9, 0, 1) }),
    ]);
    // An asynchronous step's System Job retried by hand later: the same change, delivered.
    const missed = world.posted.at(-1)!;
    expect(missed.delivered).toBe(false);
    await world.repost(missed);
    const outcomes = await world.process(handlers);
    expect(outcomes).toMatchObject({ succeeded: 1 });
    expect(effects).toHaveLength(2);
  });

  it('fails, is poisoned, listed by failures and replayed like a delivered event, and stays reconciled', async () => {
    world.appUp = false;
    await world.update('account', id, { name: 'Fabrikam' });
    world.appUp = true;
    let failing = true;
    const calls: boolean[] = [];
    const flaky = registryOf([
      on(
        { name: 'account-sync', entity: 'account', message: ['Create', 'Update', 'Delete'], reconcile: { columns: ['name'] } },
        (_event, ctx) => {
          calls.push(ctx.reconciled);
          if (failing) throw new Error('the downstream system is down');
        },
      ),
    ]);
    await world.reconcile(flaky);
    await world.fanOut(flaky);
    await world.process(flaky);
    const [failure] = await failureStore(world.storage).list();
    expect(failure).toMatchObject({ table: 'account', message: 'Update', recordId: id, attempts: 3 });
    failing = false;
    expect(await replayFailures('all', { storage: world.storage })).toMatchObject([{ replayed: true }]);
    await world.process(flaky);
    expect(calls).toEqual([true, true, true, true]);
    expect(await failureStore(world.storage).list()).toEqual([]);
  });

  it('a reconciled update older than what the handler applied since is skipped as stale', async () => {
    world.appUp = false;
    await world.update('account', id, { name: 'Fabrikam' });
    world.appUp = true;
    await world.reconcile(handlers);
    await world.fanOut(handlers);
    // A newer change is delivered and processed before the reconciled event is.
    world.tick();
    const queued = await drainQueue(world.storage.eventsQueue);
    await world.update('account', id, { name: 'Northwind' });
    await world.process(handlers);
    for (const message of queued) await world.storage.eventsQueue.sendMessage(Buffer.from(JSON.stringify(message)).toString('base64'));
    await world.process(handlers);
    expect(effects).toEqual([
      expect.objectContaining({ message: 'Create', reconciled: false }),
      expect.objectContaining({ message: 'Update', reconciled: false, modifiedOn: Date.UTC(2026, 4, 1, 9, 0, 2) }),
    ]);
  });
});

describe('on payloads as Dataverse really sends them', () => {
  const freshWorld = useReconcileWorld(['account', 'contact']);
  let world: ReconcileWorld;

  beforeEach(() => {
    world = freshWorld();
  });

  /**
   * samples/05 (a contact Update, asynchronous, its Target with modifiedon and no RowVersion) and
   * samples/06 (an account Create, its Target with createdon and modifiedon): the change a run finds
   * in the row is the one the delivered payload names, whether the delivered copy ran first or waits.
   */
  it.each([
    ['ran before the run', true],
    ['still queued when the run found it', false],
  ])('a delivered real capture and the same change found by reconciliation run once: delivered copy %s', async (_, processedFirst) => {
    const effects: Effect[] = [];
    const handlers = handlersRecording(effects);
    const contactId = '6d81597f-0f9f-e711-8122-000d3aa2331c';
    const accountId = '53c52f26-a89d-ef11-8a69-000d3a30b0c1';
    // The contact exists before the token; it is updated at the capture's modifiedon, the account created at its createdon.
    // (The captures are years apart: this organization keeps its changes longer than the default week.)
    world.tracking.expireChangeTrackingInDays = 10 * 365;
    world.tracking.clock = () => Date.UTC(2017, 7, 1);
    world.tracking.create('contact', { contactid: contactId, lastname: 'Smith' });
    world.tracking.clock = () => Date.UTC(2017, 8, 1);
    await world.reconcile(handlers);
    world.tracking.clock = () => 1506384247000;
    world.tracking.update('contact', contactId, { firstname: 'James', lastname: 'Glynn' });
    world.tracking.clock = () => 1731053106000;
    world.tracking.create('account', { accountid: accountId, name: 'Контора' });
    await ingest(world.storage, docsSample().body);
    await ingest(world.storage, fixture('06-').body);
    if (processedFirst) await world.process(handlers);
    expect(await world.reconcile(handlers)).toMatchObject({ tables: [{ changed: 1 }, { changed: 1 }] });
    const pages = await world.fanOut(handlers);
    expect(pages.reduce((sum, page) => sum + page.queued.Create + page.queued.Update, 0)).toBe(processedFirst ? 0 : 2);
    await world.process(handlers);
    expect(effects.map(key).sort()).toEqual([
      `account-sync|Create|${accountId}|1731053106000`,
      `contact-sync|Update|${contactId}|1506384247000`,
    ]);
  });
});
