import { beforeEach, describe, expect, it } from 'vitest';
import { generatedEvent, runHandler, sampleEvent } from '../handlerApi/testing';
import { accountCreated, type NewAccount, newAccountSink } from './accountCreated';

describe('account-created', () => {
  const published: NewAccount[] = [];
  beforeEach(() => {
    published.length = 0;
    newAccountSink.publish = async (account) => void published.push(account);
  });

  it('publishes a real Create (a capture of a synchronous step) with its owner', async () => {
    const run = await runHandler(accountCreated, sampleEvent('samples/06-account-create-sync-postop-webhooksite-unicode.json'));
    expect(run.calls).toEqual([expect.objectContaining({ recordId: '53c52f26-a89d-ef11-8a69-000d3a30b0c1', error: null })]);
    expect(published).toEqual([{ accountId: '53c52f26-a89d-ef11-8a69-000d3a30b0c1', ownerId: expect.stringMatching(/^[0-9a-f-]{36}$/) }]);
    expect(run.log).toEqual([
      expect.objectContaining({
        message: 'Account created',
        properties: expect.objectContaining({ accountId: '53c52f26-a89d-ef11-8a69-000d3a30b0c1' }),
      }),
    ]);
  });

  it('does not handle a CreateMultiple itself: Dataverse raises a Create for each of its records', async () => {
    expect(
      (
        await runHandler(
          accountCreated,
          generatedEvent({ entity: 'account', message: 'CreateMultiple', records: 3, attributes: ['name=Contoso'] }),
        )
      ).matched,
    ).toBe(false);
  });

  it('reads the owner of a truncated Create again from Dataverse (the row the kit is given)', async () => {
    const event = generatedEvent({ entity: 'account', message: 'Create', ids: ['0f6b3b1e-7d4c-4a49-9a57-0e1a2b3c4d5e'], truncated: true });
    await runHandler(accountCreated, event, { rereadRecord: { _ownerid_value: '11111111-2222-4333-8444-555555555555' } });
    expect(published).toEqual([{ accountId: '0f6b3b1e-7d4c-4a49-9a57-0e1a2b3c4d5e', ownerId: '11111111-2222-4333-8444-555555555555' }]);
  });
});
