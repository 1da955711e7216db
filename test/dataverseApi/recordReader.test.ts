import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ApiError, createDataverseClient, createRecordReader, type RecordReader } from '../../src/dataverseApi';
import { type FakeDataverse, startFakeDataverse } from '../support/fakeDataverse';
import { scopedTokens } from '../support/tokens';

let dataverse: FakeDataverse;
let reader: RecordReader;
let accountId: string;
let customRowId: string;

beforeAll(async () => {
  dataverse = await startFakeDataverse();
  accountId = dataverse.insert('accounts', { name: 'Contoso', accountnumber: 'A-1', revenue: 1000, statecode: 0 });
  customRowId = dataverse.insert('shko_allfieldses', { shko_name: 'all the fields' });
});
afterAll(() => dataverse.close());
beforeEach(() => {
  dataverse.reset();
  reader = createRecordReader(
    createDataverseClient(dataverse.url, {
      tokens: scopedTokens({ [`${dataverse.url}/.default`]: dataverse.token }),
      sleep: async () => {},
    }),
  );
});

const metadataReads = () => dataverse.requests.filter((request) => request.path.startsWith('EntityDefinitions'));

describe('the record reader for truncated events', () => {
  it('finds the entity set in the table metadata and reads the row with the asked columns', async () => {
    const row = await reader.retrieve('account', accountId, ['name', 'accountnumber']);
    expect(row).toMatchObject({ accountid: accountId, name: 'Contoso', accountnumber: 'A-1' });
    expect(row).not.toHaveProperty('revenue');
    expect(dataverse.requests.map((request) => `${request.method} ${request.path}`)).toEqual([
      "GET EntityDefinitions(LogicalName='account')?$select=EntitySetName",
      `GET accounts(${accountId})?$select=name,accountnumber`,
    ]);
    expect(dataverse.violations).toEqual([]);
  });

  it('reads every column without a column list', async () => {
    expect(await reader.retrieve('account', accountId)).toMatchObject({ name: 'Contoso', revenue: 1000, statecode: 0 });
    expect(dataverse.requests.at(-1)?.path).toBe(`accounts(${accountId})`);
  });

  it('uses the entity set name from the metadata, which is not always the logical name plus "s"', async () => {
    expect(await reader.retrieve('shko_allfields', customRowId, ['shko_name'])).toMatchObject({ shko_name: 'all the fields' });
    expect(dataverse.requests.at(-1)?.path).toBe(`shko_allfieldses(${customRowId})?$select=shko_name`);
  });

  it('reads the metadata of a table once, also for calls made at the same time', async () => {
    await Promise.all([reader.retrieve('account', accountId), reader.retrieve('Account', accountId, ['name'])]);
    await reader.retrieve('account', accountId, ['accountnumber']);
    await reader.retrieve('shko_allfields', customRowId);
    expect(metadataReads().map((request) => request.path)).toEqual([
      "EntityDefinitions(LogicalName='account')?$select=EntitySetName",
      "EntityDefinitions(LogicalName='shko_allfields')?$select=EntitySetName",
    ]);
  });

  it('throws for a row that is gone (404), for the processor to retry like any handler failure', async () => {
    const gone = 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee';
    const error = await reader.retrieve('account', gone).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ status: 404, code: '0x80040217', request: `GET accounts(${gone})` });
  });

  it('does not cache a failed metadata read', async () => {
    dataverse.fail({
      path: 'EntityDefinitions',
      status: 500,
      body: { error: { code: '0x80040216', message: 'An unexpected error occurred.' } },
    });
    await expect(reader.retrieve('account', accountId)).rejects.toMatchObject({ status: 500, code: '0x80040216' });
    await expect(reader.retrieve('account', accountId)).resolves.toMatchObject({ name: 'Contoso' });
    expect(metadataReads()).toHaveLength(2);
  });

  it('reports an unknown table as Dataverse does', async () => {
    await expect(reader.retrieve('nosuchtable', accountId)).rejects.toThrow(
      "GET EntityDefinitions(LogicalName='nosuchtable')?$select=EntitySetName failed: HTTP 404 0x80040217",
    );
  });

  it('refuses an id or a name that could change the URL, before sending anything', async () => {
    await expect(reader.retrieve('account', `${accountId})/x`)).rejects.toThrow('Not a GUID');
    await expect(reader.retrieve("account')?$x=1&('", accountId)).rejects.toThrow('Not a valid Dataverse name');
    await expect(reader.retrieve('account', accountId, ['name,revenue'])).rejects.toThrow('Not a valid Dataverse name');
    expect(dataverse.requests.filter((request) => !request.path.startsWith('EntityDefinitions'))).toEqual([]);
  });
});
