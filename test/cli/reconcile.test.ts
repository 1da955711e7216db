import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main';
import { createReconcileCommand } from '../../src/cli/reconcile';
import { createRegisterCommand } from '../../src/cli/register';
import { createStatusCommand } from '../../src/cli/status';
import { webhookUrl } from '../../src/functionNames';
import { on } from '../../src/handlerApi';
import { registryOf } from '../../src/handlerApi/load';
import { captureIO } from '../support/cliIO';
import { type FakeDataverse, startFakeDataverse } from '../support/fakeDataverse';
import { useOwnAzurite } from '../support/ownAzurite';
import { ReconcileWorld } from '../support/reconcileWorld';
import { useTempDirs } from '../support/tempDirs';
import { scopedTokens } from '../support/tokens';

/** `reconcile`, and what `register` and `status` say and do about change tracking. */

const handlers = registryOf([
  on({ name: 'account-sync', entity: 'account', message: ['Create', 'Update'], reconcile: { columns: ['name'] } }, () => undefined),
  on({ name: 'contact-sync', entity: 'contact', message: 'Delete', reconcile: true }, () => undefined),
]);

let fake: FakeDataverse;
const azurite = useOwnAzurite();
const tempDir = useTempDirs();
let dir: string;

beforeEach(async () => {
  fake = await startFakeDataverse();
  fake.changeTracking.clock = () => Date.UTC(2026, 4, 1, 9, 0, 0);
  fake.changeTracking.table('account');
  fake.changeTracking.table('contact', { enabled: false });
  dir = tempDir('reconcile-');
});
afterEach(() => fake.close());

const connection = () => {
  const tokens = scopedTokens({ [`${fake.url}/.default`]: fake.token });
  return { tokens: () => tokens, sleep: async () => {} };
};

async function reconcile(args: string[], env: NodeJS.ProcessEnv = {}) {
  const io = captureIO({ cwd: dir, env: { ...azurite.env(), DATAVERSE_URL: fake.url, ...env } });
  const code = await createReconcileCommand(connection(), handlers)(args, io);
  return { code, out: io.out(), err: io.err() };
}

describe('dataverse-webhooks reconcile', () => {
  it('--plan says what the next run asks, from storage and the handlers, without reading Dataverse', async () => {
    const { code, out } = await reconcile(['--plan'], { DATAVERSE_URL: '' });
    expect(code).toBe(0);
    expect(out).toContain('Reconciliation: 2 table(s), a run every 15 minute(s) (RECONCILE_INTERVAL)');
    expect(out).toContain('account: account-sync (Create, Update)');
    expect(out).toContain('  columns: createdon, modifiedon, createdby, modifiedby, name, and the primary key');
    expect(out).toContain('  next run: its first run: pages through the ids to take a token, and replays nothing');
    expect(out).toContain('contact: contact-sync (Delete)\n  columns: every column');
    expect(out).toContain('Dataverse was not read');
    expect(fake.requests).toEqual([]);
  });

  it('runs one now: the first takes a token; the next queues what changed; a table without tracking fails it', async () => {
    const first = await reconcile([]);
    expect(first.out).toContain('account: first run: a token was taken, nothing was replayed');
    expect(first.out).toContain(
      'contact: change tracking is off for contact: turn it on with "dataverse-webhooks register --enable-change-tracking"',
    );
    expect(first.code).toBe(1);
    fake.changeTracking.create('account', { name: 'Contoso' });
    fake.changeTracking.enable('contact');
    const second = await reconcile(['--json']);
    expect(second.code).toBe(0);
    expect(JSON.parse(second.out)).toMatchObject({
      status: 'ran',
      tables: [
        { table: 'account', status: 'complete', changed: 1 },
        { table: 'contact', status: 'token-taken' },
      ],
    });
    // The page waits on the reconcile queue for the app's queueReconciledChanges.
    const storage = azurite.storage();
    expect((await storage.reconcileQueue.getProperties()).approximateMessagesCount).toBe(1);
    const world = new ReconcileWorld(fake, storage);
    expect(await world.fanOut(handlers)).toEqual([expect.objectContaining({ queued: { Create: 1, Update: 0, Delete: 0 } })]);

    const plan = await reconcile(['--plan']);
    expect(plan.out).toMatch(
      /next run: the changes since the token taken 2026-05-01T09:00:00.000Z\n {4}GET accounts\?\$select=accountid,createdon,modifiedon,_createdby_value,_modifiedby_value,name&\$deltatoken=/,
    );
  });

  it('--since replays from a time; a time it cannot read is a usage mistake', async () => {
    const bad = captureIO({ cwd: dir, env: { ...azurite.env(), DATAVERSE_URL: fake.url } });
    expect(await main(['reconcile', '--since', 'yesterday'], bad)).toBe(2);
    expect(bad.err()).toContain('--since takes an ISO 8601 time such as 2026-05-01T14:00:00Z, not "yesterday"');
    const io = captureIO({ cwd: dir, env: { ...azurite.env(), DATAVERSE_URL: fake.url } });
    expect(await main(['reconcile', '--plan', '--since', '2026-05-01T00:00:00Z'], io)).toBe(2);
    expect(io.err()).toContain('Pass --plan (what the next run asks) or --since (run one now), not both');
    fake.changeTracking.enable('contact');
    fake.changeTracking.create('account', { name: 'Earlier' });
    const replay = await reconcile(['--since', '2026-04-30T00:00:00Z']);
    expect(replay).toMatchObject({ code: 0, out: expect.stringContaining('account: 1 changed and 0 deleted row(s) queued for the app') });
  });
});

describe('register and status about change tracking', () => {
  function writeRegistration(): void {
    writeFileSync(
      path.join(dir, 'registration.json'),
      JSON.stringify({
        endpoint: { name: 'dataverse-webhooks', url: webhookUrl('https://func.azurewebsites.net'), auth: { type: 'WebhookKey' } },
      }),
    );
  }

  async function register(args: string[]) {
    const io = captureIO({ cwd: dir, env: { DATAVERSE_URL: fake.url } });
    const code = await createRegisterCommand(connection(), handlers)(['--file', 'registration.json', '--key', 'k', ...args], io);
    return { code, out: io.out(), err: io.err() };
  }

  it('says which reconciled tables lack change tracking, and turns it on only when asked', async () => {
    fake.seedMessages(['Create', 'Update', 'Delete'], ['account', 'contact']);
    writeRegistration();
    const told = await register([]);
    expect(told.code).toBe(0);
    expect(told.out).toContain(
      'change tracking is off for contact, which contact-sync reconcile(s): nothing is reconciled there; pass --enable-change-tracking to turn it on (it cannot be turned off again)',
    );
    expect(fake.changeTracking.isTracked('contact')).toBe(false);

    const io = captureIO({ cwd: dir, env: { DATAVERSE_URL: fake.url } });
    expect(await createStatusCommand(connection(), handlers)(['--file', 'registration.json'], io)).toBe(0);
    expect(io.out()).toContain('Reconciliation:\n  change tracking is off for contact, which contact-sync reconcile(s)');

    const dry = await register(['--enable-change-tracking', '--dry-run']);
    expect(dry.out).toContain('Dry run: change tracking would be turned on for contact (PUT of its definition, then PublishXml).');
    expect(fake.changeTracking.isTracked('contact')).toBe(false);

    const done = await register(['--enable-change-tracking']);
    expect(done.out).toContain('Change tracking turned on for contact (its definition was updated and published).');
    expect(fake.changeTracking.isTracked('contact')).toBe(true);
    expect(fake.violations).toEqual([]);
    const again = await register(['--enable-change-tracking']);
    expect(again.out).not.toContain('Change tracking');
  });
});
