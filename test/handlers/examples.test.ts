import { randomUUID } from 'node:crypto';
import { beforeEach, describe, expect, it } from 'vitest';
import { largeCreateMultiple, rawEntity, rawEntityReference, rawExecutionContext } from '../../src/dataverse/samplePayloads';
import { handlers } from '../../src/handlers';
import { newAccountSink, type NewAccount } from '../../src/handlers/accountCreated';
import { contactChangeSink, type ContactChangeSummary } from '../../src/handlers/contactChanges';
import type { StorageClients } from '../../src/storage/clients';
import { fixture } from '../support/fixtures';
import { ingest, processor } from '../support/processing';
import { isolatedStorage } from '../support/storage';

describe('the example handlers, through the whole path', () => {
  let storage: StorageClients;
  const contactChanges: ContactChangeSummary[] = [];
  const accounts: NewAccount[] = [];
  beforeEach(async () => {
    storage = await isolatedStorage();
    contactChanges.length = 0;
    accounts.length = 0;
    contactChangeSink.publish = async (summary) => void contactChanges.push(summary);
    newAccountSink.publish = async (account) => void accounts.push(account);
  });

  it('contact-changes reports each followed column an Update changed, from the pre-image to the new value', async () => {
    const id = randomUUID();
    const accountId = randomUUID();
    const body = JSON.stringify(
      rawExecutionContext({
        messageName: 'Update',
        entityName: 'contact',
        entityId: id,
        mode: 1,
        inputParameters: {
          Target: rawEntity('contact', id, { contactid: id, lastname: 'Glynn-Smith', firstname: 'James', parentcustomerid: rawEntityReference('account', accountId), modifiedon: '/Date(1506384247000)/' }),
        },
        preEntityImages: { PreImage: rawEntity('contact', id, { firstname: 'James', lastname: 'Glynn', parentcustomerid: null }) },
      }),
    );
    await ingest(storage, body);
    await processor(storage, handlers).drain();
    expect(contactChanges).toEqual([
      {
        contactId: id,
        changed: [
          { attribute: 'lastname', from: 'Glynn', to: 'Glynn-Smith' },
          { attribute: 'parentcustomerid', from: '(empty)', to: `account:${accountId}` },
        ],
      },
    ]);
  });

  it('contact-changes without a pre-image (the docs sample) reports the new values', async () => {
    await ingest(storage, fixture('use-webhooks.md').body);
    await processor(storage, handlers).drain();
    expect(contactChanges).toEqual([{ contactId: '6d81597f-0f9f-e711-8122-000d3aa2331c', changed: [{ attribute: 'firstname', from: '(not in the pre-image)', to: 'James' }] }]);
  });

  it('account-created publishes a real Create once, with its owner', async () => {
    await ingest(storage, fixture('06-').body);
    await ingest(storage, fixture('06-').body);
    await processor(storage, handlers).drain();
    expect(accounts).toEqual([{ accountId: '53c52f26-a89d-ef11-8a69-000d3a30b0c1', ownerId: expect.stringMatching(/^[0-9a-f-]{36}$/) }]);
  });

  it('account-created publishes each record of a CreateMultiple', async () => {
    await ingest(storage, largeCreateMultiple(60 * 1024));
    await processor(storage, handlers).drain();
    expect(accounts.length).toBeGreaterThan(10);
    expect(new Set(accounts.map((account) => account.accountId)).size).toBe(accounts.length);
    expect(accounts[0]).toEqual({ accountId: '00000000-0000-4000-8000-000000000000', ownerId: '3570e963-e69c-ef11-8a6b-000d3a318589' });
  });
});
