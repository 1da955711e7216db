import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main';
import { createDataverseClient, createRecordReader } from '../../src/dataverseApi';
import { handlers } from '../../src/handlers';
import { newAccountSink, type NewAccount } from '../../src/handlers/accountCreated';
import { creditLimitPolicy } from '../../src/handlers/creditLimit';
import { contactChangeSink, type ContactChangeSummary } from '../../src/handlers/contactChanges';
import type { StorageClients } from '../../src/storage/clients';
import { captureIO } from '../support/cliIO';
import { startFakeDataverse, type FakeDataverse } from '../support/fakeDataverse';
import { startIngestServer, type IngestServer } from '../support/ingestServer';
import { processor } from '../support/processing';
import { drainQueue, isolatedStorage } from '../support/storage';
import { scopedTokens } from '../support/tokens';

/**
 * Each example handler driven as a developer drives it locally: `send` posts what the handler's
 * registered step would send (its images, a bulk operation, a truncated event) to the app's
 * webhook pipeline, and the processor runs the shipped handlers to their effect.
 */
describe('every example handler, driven by send to its effect', () => {
  let storage: StorageClients;
  let app: IngestServer;
  let dataverse: FakeDataverse;
  const contactChanges: ContactChangeSummary[] = [];
  const accounts: NewAccount[] = [];
  beforeAll(async () => {
    dataverse = await startFakeDataverse();
  });
  afterAll(() => dataverse.close());
  beforeEach(async () => {
    await app?.close();
    storage = await isolatedStorage();
    // The app's handlers decide synchronous events inside the request, as in the app.
    app = await startIngestServer(storage, {}, handlers);
    contactChanges.length = 0;
    accounts.length = 0;
    contactChangeSink.publish = async (summary) => void contactChanges.push(summary);
    newAccountSink.publish = async (account) => void accounts.push(account);
  });
  afterAll(() => app?.close());

  async function send(...args: string[]) {
    const io = captureIO();
    expect(await main(['send', '--url', app.url, ...args], io), io.err()).toBe(0);
    return io;
  }
  const run = () => {
    const reader = createRecordReader(createDataverseClient(dataverse.url, { tokens: scopedTokens({ [`${dataverse.url}/.default`]: dataverse.token }), sleep: async () => {} }));
    return processor(storage, handlers, { recordReader: reader });
  };

  it('contact-changes: an Update with the pre-image "pre" its step registers', async () => {
    const id = randomUUID();
    const accountId = randomUUID();
    await send(
      '--entity', 'contact', '--message', 'Update', '--id', id,
      '--attribute', 'firstname=James', '--attribute', 'lastname=Glynn-Smith', '--attribute', `parentcustomerid:lookup=account/${accountId}`,
      '--pre-image', 'pre:firstname=James', '--pre-image', 'pre:lastname=Glynn',
    );
    // An Update of a column the step does not filter on: Dataverse would not send it, nor does the handler take it.
    await send('--entity', 'contact', '--message', 'Update', '--attribute', 'telephone1=555 0100', '--pre-image', 'pre:firstname=James');
    const processing = run();
    await processing.drain();
    expect(contactChanges).toEqual([
      {
        contactId: id,
        changed: [
          { attribute: 'lastname', from: 'Glynn', to: 'Glynn-Smith' },
          { attribute: 'parentcustomerid', from: '(not in the pre-image)', to: `account:${accountId}` },
        ],
      },
    ]);
    expect(processing.outcomes.map((outcome) => outcome.status).sort()).toEqual(['processed', 'unhandled']);
  });

  it('account-created: a Create with its owner, once per record of a bulk create, and not the CreateMultiple itself', async () => {
    const ownerId = randomUUID();
    const id = randomUUID();
    await send('--entity', 'account', '--message', 'Create', '--id', id, '--attribute', 'name=Contoso', '--attribute', `ownerid:lookup=systemuser/${ownerId}`);
    // What a CreateMultiple of two accounts raises: the CreateMultiple event, and a Create for each record.
    const bulk = [randomUUID(), randomUUID()];
    await send('--entity', 'account', '--message', 'CreateMultiple', '--id', bulk[0]!, '--id', bulk[1]!, '--attribute', 'name=Bulk');
    for (const record of bulk) await send('--entity', 'account', '--message', 'Create', '--id', record, '--attribute', 'name=Bulk');
    const processing = run();
    await processing.drain();
    expect(accounts.sort((a, b) => a.accountId.localeCompare(b.accountId))).toEqual(
      [{ accountId: id, ownerId }, ...bulk.map((accountId) => ({ accountId, ownerId: null }))].sort((a, b) => a.accountId.localeCompare(b.accountId)),
    );
    expect(processing.outcomes.filter((outcome) => outcome.status === 'unhandled')).toHaveLength(1);
  });

  it('account-created: a truncated Create has its owner read again from Dataverse', async () => {
    const ownerId = randomUUID();
    const id = dataverse.insert('accounts', { name: 'A very large account', _ownerid_value: ownerId });
    await send('--entity', 'account', '--message', 'Create', '--id', id, '--truncated');
    await run().drain();
    expect(accounts).toEqual([{ accountId: id, ownerId }]);
    expect(dataverse.violations).toEqual([]);
  });

  it('credit-limit: a synchronous PreValidation step is decided before the answer; above the limit the save is refused with the reason', async () => {
    const maximum = creditLimitPolicy.maximum;
    creditLimitPolicy.maximum = () => 1_000_000;
    try {
      const refused = captureIO();
      expect(await main(['send', '--url', app.url, '--entity', 'account', '--message', 'Create', '--stage', '10', '--attribute', 'name=Contoso', '--attribute', 'creditlimit:money=2500000'], refused)).toBe(1);
      expect(refused.err()).toMatch(/^422 Unprocessable Entity {2}eventId [0-9a-f-]{36} {2}latency \d+ ms\n/);
      expect(refused.err()).toContain('rejected by credit-limit-on-create (credit-limit-exceeded): A credit limit above 1,000,000 needs approval from Finance');

      const allowed = await send('--entity', 'account', '--message', 'Create', '--stage', '10', '--attribute', 'name=Contoso', '--attribute', 'creditlimit:money=250000');
      expect(allowed.out()).toMatch(/^202 Accepted {2}eventId [0-9a-f-]{36} {2}latency \d+ ms {2}allowed by credit-limit-on-create\n$/);

      const raised = captureIO();
      expect(await main(['send', '--url', app.url, '--entity', 'account', '--message', 'Update', '--stage', '10', '--attribute', 'creditlimit:money=5000000'], raised)).toBe(1);
      expect(raised.err()).toContain('rejected by credit-limit-on-update (credit-limit-exceeded)');
      // An Update of another column: its step filters on creditlimit, so Dataverse would not ask, nor does the app.
      const renamed = await send('--entity', 'account', '--message', 'Update', '--stage', '10', '--attribute', 'name=Fabrikam');
      expect(renamed.out()).not.toContain('allowed by');

      // What was allowed went on to the queue; what was refused did not.
      expect(await drainQueue(storage.eventsQueue)).toHaveLength(2);
    } finally {
      creditLimitPolicy.maximum = maximum;
    }
  });
});
