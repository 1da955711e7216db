import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createDataverseClient, createRecordReader } from '../../src/dataverseApi';
import { createMultipleOfAccounts, rawEntity, rawEntityReference, rawExecutionContext, withoutTruncatedProperties } from '../../src/dataverse/samplePayloads';
import { handlers } from '../../src/handlers';
import { newAccountSink, type NewAccount } from '../../src/handlers/accountCreated';
import { checkCreditLimit, creditLimitMaximum, DEFAULT_CREDIT_LIMIT_MAX } from '../../src/handlers/creditLimit';
import { contactChangeSink, type ContactChangeSummary } from '../../src/handlers/contactChanges';
import type { StorageClients } from '../../src/storage/clients';
import { startFakeDataverse, type FakeDataverse } from '../support/fakeDataverse';
import { fixture } from '../support/fixtures';
import { ingest, processor } from '../support/processing';
import { dataverseHeaders } from '../support/requests';
import { isolatedStorage } from '../support/storage';
import { scopedTokens } from '../support/tokens';

describe('the example handlers, through the whole path', () => {
  let storage: StorageClients;
  let dataverse: FakeDataverse;
  const contactChanges: ContactChangeSummary[] = [];
  const accounts: NewAccount[] = [];
  beforeAll(async () => {
    dataverse = await startFakeDataverse();
  });
  afterAll(() => dataverse.close());
  beforeEach(async () => {
    storage = await isolatedStorage();
    contactChanges.length = 0;
    accounts.length = 0;
    contactChangeSink.publish = async (summary) => void contactChanges.push(summary);
    newAccountSink.publish = async (account) => void accounts.push(account);
  });

  const reader = () => createRecordReader(createDataverseClient(dataverse.url, { tokens: scopedTokens({ [`${dataverse.url}/.default`]: dataverse.token }), sleep: async () => {} }));

  it('contact-changes reports each followed column an Update changed, from its pre-image "pre" to the new value', async () => {
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
        preEntityImages: { pre: rawEntity('contact', id, { firstname: 'James', lastname: 'Glynn', parentcustomerid: null }) },
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

  it('contact-changes without its pre-image (the docs sample, registered by hand) reports the new values', async () => {
    await ingest(storage, fixture('use-webhooks.md').body);
    await processor(storage, handlers).drain();
    expect(contactChanges).toEqual([{ contactId: '6d81597f-0f9f-e711-8122-000d3aa2331c', changed: [{ attribute: 'firstname', from: '(not in the pre-image)', to: 'James' }] }]);
  });

  it('account-created publishes a real Create once, with its owner, from a step of either mode', async () => {
    const captured = JSON.parse(fixture('06-').body.toString('utf8')) as Record<string, unknown>;
    // The capture came from a synchronous step; the example registers the asynchronous one and,
    // leaving its mode out, takes both. All three copies are one delivery: one effect.
    const asynchronous = JSON.stringify({ ...captured, Mode: 1 });
    await ingest(storage, asynchronous);
    await ingest(storage, asynchronous);
    await ingest(storage, fixture('06-').body);
    const run = processor(storage, handlers);
    await run.drain();
    expect(accounts).toEqual([{ accountId: '53c52f26-a89d-ef11-8a69-000d3a30b0c1', ownerId: expect.stringMatching(/^[0-9a-f-]{36}$/) }]);
    expect(run.outcomes.filter((outcome) => outcome.status === 'unhandled')).toHaveLength(0);
    expect(handlers.steps.filter((step) => step.handlers.includes('account-created'))).toEqual([expect.objectContaining({ message: 'Create', stage: 'PostOperation', mode: 'Asynchronous' })]);
  });

  it('account-created sees a CreateMultiple as the Create of each record, and does not handle the CreateMultiple itself', async () => {
    const bulk = createMultipleOfAccounts(3);
    await ingest(storage, JSON.stringify({ ...bulk, Mode: 1 }));
    // What Dataverse raises for each record of it: a Create with that record as the Target.
    const ids = ['00000000-0000-4000-8000-000000000000', '00000000-0000-4000-8000-000000000001', '00000000-0000-4000-8000-000000000002'];
    for (const id of ids) {
      await ingest(storage, JSON.stringify(rawExecutionContext({ messageName: 'Create', entityName: 'account', entityId: id, mode: 1, inputParameters: { Target: rawEntity('account', id, { accountid: id }) }, outputParameters: { id } })));
    }
    const run = processor(storage, handlers);
    await run.drain();
    expect(accounts.map((account) => account.accountId).sort()).toEqual(ids);
    expect(run.outcomes.filter((outcome) => outcome.status === 'unhandled')).toHaveLength(1);
  });

  it('account-created reads the owner of a truncated Create again from Dataverse', async () => {
    const ownerId = randomUUID();
    const accountId = dataverse.insert('accounts', { name: 'Big account', _ownerid_value: ownerId });
    const context = rawExecutionContext({ messageName: 'Create', entityName: 'account', entityId: accountId, mode: 1, inputParameters: { Target: rawEntity('account', accountId, {}) }, outputParameters: { id: accountId } });
    await ingest(storage, JSON.stringify(withoutTruncatedProperties(context)), dataverseHeaders({ 'x-ms-dynamics-msg-size-exceeded': 'true' }));
    await processor(storage, handlers, { recordReader: reader() }).drain();
    expect(accounts).toEqual([{ accountId, ownerId }]);
    expect(dataverse.requests.map((request) => request.path)).toContain(`accounts(${accountId})?$select=_ownerid_value`);
    expect(dataverse.violations).toEqual([]);
  });
});

describe('the credit-limit example decides', () => {
  it('refuses a credit limit above the configured amount with a reason for the person and a code for the logs; allows one at or below it, or none', () => {
    expect(checkCreditLimit({ $type: 'Money', value: 2_500_000 }, 1_000_000)).toEqual({
      outcome: 'reject',
      reason: 'A credit limit above 1,000,000 needs approval from Finance: ask them to raise it, or save a lower limit.',
      code: 'credit-limit-exceeded',
    });
    expect(checkCreditLimit({ $type: 'Money', value: 1_000_000 }, 1_000_000)).toEqual({ outcome: 'allow' });
    expect(checkCreditLimit(null, 1_000_000)).toEqual({ outcome: 'allow' });
    expect(checkCreditLimit(undefined, 1_000_000)).toEqual({ outcome: 'allow' });
  });

  it('reads its amount from ACCOUNT_CREDIT_LIMIT_MAX: empty is the default, and a value that is not an amount fails the decision, closed', () => {
    expect(creditLimitMaximum(undefined)).toBe(DEFAULT_CREDIT_LIMIT_MAX);
    expect(creditLimitMaximum('  ')).toBe(DEFAULT_CREDIT_LIMIT_MAX);
    expect(creditLimitMaximum('250000')).toBe(250_000);
    expect(() => creditLimitMaximum('lots')).toThrow('ACCOUNT_CREDIT_LIMIT_MAX must be a positive amount, such as 250000');
    expect(() => creditLimitMaximum('-5')).toThrow('ACCOUNT_CREDIT_LIMIT_MAX must be a positive amount');
  });
});
