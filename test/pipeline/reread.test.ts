import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { rawEntity, rawExecutionContext, withoutTruncatedProperties } from '../../src/dataverse/samplePayloads';
import type { DataverseRow } from '../../src/dataverseApi';
import { createDataverseClient, createRecordReader, type RecordReader } from '../../src/dataverseApi';
import { on } from '../../src/handlerApi';
import { registryOf } from '../../src/handlerApi/load';
import { failureStore } from '../../src/pipeline/failures';
import type { StorageClients } from '../../src/storage/clients';
import { type FakeDataverse, startFakeDataverse } from '../support/fakeDataverse';
import { ingest, processor } from '../support/processing';
import { dataverseHeaders } from '../support/requests';
import { isolatedStorage } from '../support/storage';
import { scopedTokens } from '../support/tokens';

const TRUNCATED = dataverseHeaders({ 'x-ms-dynamics-msg-size-exceeded': 'true' });

function accountUpdate(id: string, options: { truncated: boolean }): string {
  const context = rawExecutionContext({
    messageName: 'Update',
    entityName: 'account',
    entityId: id,
    inputParameters: { Target: rawEntity('account', id, { accountid: id, name: 'Contoso' }) },
  });
  return JSON.stringify(options.truncated ? withoutTruncatedProperties(context) : context);
}

describe('re-reading the record of a truncated event', () => {
  let dataverse: FakeDataverse;
  let reader: RecordReader;
  let storage: StorageClients;
  let accountId: string;
  beforeAll(async () => {
    dataverse = await startFakeDataverse();
    accountId = dataverse.insert('accounts', { name: 'Contoso Pharmaceuticals', accountnumber: 'A-7', revenue: 5000, statecode: 0 });
  });
  afterAll(() => dataverse.close());
  beforeEach(async () => {
    dataverse.reset();
    storage = await isolatedStorage();
    reader = createRecordReader(
      createDataverseClient(dataverse.url, {
        tokens: scopedTokens({ [`${dataverse.url}/.default`]: dataverse.token }),
        sleep: async () => {},
        maxAttempts: 1,
      }),
    );
  });

  function rereadingRegistry(seen: Array<{ truncated: boolean; row: DataverseRow | null }>) {
    return registryOf([
      on({ name: 'needs-the-record', entity: 'account', message: 'Update', rereadTruncated: ['name', 'accountnumber'] }, (event, ctx) => {
        seen.push({ truncated: event.truncated, row: ctx.rereadRecord });
      }),
    ]);
  }

  it('a handler that asks gets the row, read with the columns it named; a whole event is not re-read', async () => {
    const seen: Array<{ truncated: boolean; row: DataverseRow | null }> = [];
    const registry = rereadingRegistry(seen);
    await ingest(storage, accountUpdate(accountId, { truncated: true }), TRUNCATED);
    await ingest(storage, accountUpdate(accountId, { truncated: false }));
    await processor(storage, registry, { recordReader: reader }).drain();
    expect(seen).toEqual(
      expect.arrayContaining([
        { truncated: true, row: expect.objectContaining({ accountid: accountId, name: 'Contoso Pharmaceuticals', accountnumber: 'A-7' }) },
        { truncated: false, row: null },
      ]),
    );
    expect(dataverse.requests.map((request) => request.path)).toContain(`accounts(${accountId})?$select=name,accountnumber`);
    expect(dataverse.requests.filter((request) => request.path.startsWith('accounts('))).toHaveLength(1);
    expect(dataverse.violations).toEqual([]);
  });

  it('a failed re-read is retried like a handler failure, and succeeds when Dataverse answers again', async () => {
    const seen: Array<{ truncated: boolean; row: DataverseRow | null }> = [];
    dataverse.fail({ path: 'accounts(', status: 503, times: 2 });
    await ingest(storage, accountUpdate(accountId, { truncated: true }), TRUNCATED);
    const result = await processor(storage, rereadingRegistry(seen), { recordReader: reader }).drain();
    expect(result).toEqual({ succeeded: 1, failed: 2, poisoned: 0 });
    expect(seen).toHaveLength(1);
    expect(seen[0]?.row).toMatchObject({ name: 'Contoso Pharmaceuticals' });
  });

  it('without DATAVERSE_URL the event fails and is poisoned with a reason that says so', async () => {
    const seen: Array<{ truncated: boolean; row: DataverseRow | null }> = [];
    const eventId = await ingest(storage, accountUpdate(accountId, { truncated: true }), TRUNCATED);
    await processor(storage, rereadingRegistry(seen), { recordReader: null }).drain();
    expect(seen).toEqual([]);
    expect(await failureStore(storage).get(eventId)).toMatchObject({
      state: 'poisoned',
      error: expect.stringContaining('DATAVERSE_URL is not set'),
    });
  });
});
