import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main';
import { createDataverseClient, createRecordReader } from '../../src/dataverseApi';
import { handlers } from '../../src/handlers';
import { newAccountSink, type NewAccount } from '../../src/handlers/accountCreated';
import { contactChangeSink, type ContactChangeSummary } from '../../src/handlers/contactChanges';
import type { StorageClients } from '../../src/storage/clients';
import { captureIO } from '../support/cliIO';
import { startFakeDataverse, type FakeDataverse } from '../support/fakeDataverse';
import { startIngestServer, type IngestServer } from '../support/ingestServer';
import { processor } from '../support/processing';
import { isolatedStorage } from '../support/storage';
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
    app = await startIngestServer(storage);
    contactChanges.length = 0;
    accounts.length = 0;
    contactChangeSink.publish = async (summary) => void contactChanges.push(summary);
    newAccountSink.publish = async (account) => void accounts.push(account);
  });
  afterAll(() => app?.close());

  async function send(...args: string[]) {
    const io = captureIO();
    expect(await main(['send', '--url', app.url, ...args], io), io.err()).toBe(0);
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
});
