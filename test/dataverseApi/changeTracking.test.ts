import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createDataverseClient, type DataverseClient } from '../../src/dataverseApi';
import {
  type ChangePage,
  type ChangeRequest,
  ChangeTokenRefusedError,
  ChangeTrackingOffError,
  changedRow,
  changePages,
  changeTrackingOf,
  enableChangeTracking,
  readTrackedTable,
  rowVersionOf,
  type TrackedTable,
  whoAmIOf,
} from '../../src/dataverseApi/changeTracking';
import { type FakeDataverse, startFakeDataverse } from '../support/fakeDataverse';
import { scopedTokens } from '../support/tokens';

/**
 * The Web API side of reconciliation against the Dataverse stand-in, whose change tracking follows
 * "Use change tracking to synchronize data with external systems" (test/support/fakeChangeTracking.ts).
 */

let fake: FakeDataverse;
let client: DataverseClient;
const START = Date.UTC(2026, 4, 1, 9, 0, 0);

beforeEach(async () => {
  fake = await startFakeDataverse();
  client = createDataverseClient(fake.url, {
    tokens: scopedTokens({ [`${fake.url}/.default`]: fake.token }),
    sleep: async () => undefined,
  });
  fake.changeTracking.clock = () => START;
});
afterEach(async () => {
  await fake.close();
});

async function all(table: TrackedTable, request: Parameters<typeof changePages>[2], maxPageSize?: number): Promise<ChangePage[]> {
  const pages: ChangePage[] = [];
  for await (const page of changePages(client, table, request, maxPageSize ? { maxPageSize } : {})) pages.push(page);
  return pages;
}

describe('change tracking through the Web API', () => {
  it("reads a table's definition: its entity set, primary key, tracking and the kinds of its columns", async () => {
    fake.changeTracking.table('contact');
    const table = await readTrackedTable(client, 'contact');
    expect(table).toMatchObject({
      logicalName: 'contact',
      entitySetName: 'contacts',
      primaryIdAttribute: 'contactid',
      changeTrackingEnabled: true,
    });
    expect(table.columns.get('lastname')).toBe('text');
    expect(table.columns.get('parentcustomerid')).toBe('lookup');
    expect(table.columns.get('statecode')).toBe('choice');
    expect(table.columns.get('creditlimit')).toBe('money');
    expect(table.columns.get('modifiedon')).toBe('date');
    // A lookup's name column belongs to the lookup; an image is not read through change tracking.
    expect(table.columns.has('parentcustomeridname')).toBe(false);
    expect(table.columns.has('entityimage')).toBe(false);
    expect(fake.violations).toEqual([]);
  });

  it('a full sync answers every row and a delta link; the link answers what changed since, then what was deleted', async () => {
    fake.changeTracking.table('account');
    const table = await readTrackedTable(client, 'account');
    const a = fake.changeTracking.create('account', { name: 'A' });
    const b = fake.changeTracking.create('account', { name: 'B' });
    const select = ['accountid', 'name', 'modifiedon'];
    const initial = await all(table, { kind: 'initial', select });
    expect(initial).toHaveLength(1);
    expect(initial[0]!.rows.map((row) => changedRow(table, row))).toEqual([
      { kind: 'changed', id: a, row: expect.objectContaining({ name: 'A', modifiedon: '2026-05-01T09:00:00Z' }) },
      { kind: 'changed', id: b, row: expect.objectContaining({ name: 'B' }) },
    ]);
    expect(initial[0]!.deltaToken).toMatch(/^\d+!05\/01\/2026 09:00:00$/);
    expect(initial[0]!.servedAt).toBe(START);

    fake.changeTracking.update('account', a, { name: 'A2' });
    fake.changeTracking.delete('account', b);
    // Created and deleted between two requests: reported deleted all the same.
    fake.changeTracking.delete('account', fake.changeTracking.create('account', { name: 'Brief' }));
    const delta = await all(table, { kind: 'delta', select, token: initial[0]!.deltaToken! });
    const rows = delta.flatMap((page) => page.rows.map((row) => changedRow(table, row)));
    expect(rows).toEqual([
      { kind: 'changed', id: a, row: expect.objectContaining({ name: 'A2' }) },
      { kind: 'deleted', id: b },
      { kind: 'deleted', id: expect.any(String) },
    ]);
    expect(rowVersionOf((rows[0] as { row: Record<string, unknown> }).row)).toMatch(/^\d+$/);
    const [request] = fake.requests.filter((candidate) => candidate.path.includes('$deltatoken'));
    expect(request?.headers.prefer).toContain('odata.track-changes');
    expect(fake.violations).toEqual([]);
  });

  it('pages at odata.maxpagesize, the delta link on the last page only', async () => {
    fake.changeTracking.table('account');
    const table = await readTrackedTable(client, 'account');
    for (let i = 0; i < 7; i++) fake.changeTracking.create('account', { name: `Account ${i}` });
    const pages = await all(table, { kind: 'initial', select: ['accountid'] }, 3);
    expect(pages.map((page) => [page.rows.length, page.nextLink !== null, page.deltaLink !== null])).toEqual([
      [3, true, false],
      [3, true, false],
      [1, false, true],
    ]);
  });

  it('an expired token is refused as ExpiredVersionStamp; an unreadable one too', async () => {
    fake.changeTracking.table('account');
    const table = await readTrackedTable(client, 'account');
    const [page] = await all(table, { kind: 'initial', select: ['accountid'] });
    fake.changeTracking.clock = () => START + 8 * 24 * 60 * 60 * 1000;
    const expired = await all(table, { kind: 'delta', select: ['accountid'], token: page!.deltaToken! }).catch((error: unknown) => error);
    expect(expired).toBeInstanceOf(ChangeTokenRefusedError);
    expect(expired).toMatchObject({ status: 400, code: '0x80044352', expired: true, pageLink: false });
    const unreadable = await all(table, { kind: 'delta', select: ['accountid'], token: 'nonsense' }).catch((error: unknown) => error);
    expect(unreadable).toMatchObject({ name: 'ChangeTokenRefusedError', expired: false });
  });

  it('a table without change tracking answers no delta link: an error that says so', async () => {
    fake.changeTracking.table('account', { enabled: false });
    const table = await readTrackedTable(client, 'account');
    expect(table.changeTrackingEnabled).toBe(false);
    const request: ChangeRequest = { kind: 'initial', select: ['accountid'] };
    await expect(all(table, request)).rejects.toBeInstanceOf(ChangeTrackingOffError);
  });

  it('the stand-in refuses what Dataverse refuses with change tracking: $filter, $top, and unknown columns', async () => {
    fake.changeTracking.table('account');
    const prefer = { Prefer: 'odata.track-changes' };
    for (const query of ["$filter=name eq 'A'", '$top=1', '$orderby=name asc']) {
      const error = await client.send('GET', `accounts?$select=name&${query}`, { headers: prefer }).catch((caught: unknown) => caught);
      expect(error).toMatchObject({
        status: 400,
        serviceMessage: expect.stringMatching(/query parameter isn't supported when Change Tracking is enabled/),
      });
    }
    await expect(client.send('GET', 'accounts?$select=ownerid', { headers: prefer })).rejects.toMatchObject({ status: 400 });
    expect(fake.violations).toHaveLength(4);
  });

  it('turns change tracking on with a PUT of the whole definition and PublishXml', async () => {
    fake.changeTracking.table('contact', { enabled: false });
    expect(await changeTrackingOf(client, ['contact'])).toEqual(new Map([['contact', false]]));
    expect(await enableChangeTracking(client, 'contact')).toBe(true);
    expect(await changeTrackingOf(client, ['contact'])).toEqual(new Map([['contact', true]]));
    expect(fake.writes().map((request) => `${request.method} ${request.path}`)).toEqual([
      expect.stringMatching(/^PUT EntityDefinitions\([0-9a-f-]{36}\)$/),
      'POST PublishXml',
    ]);
    expect(fake.writes()[0]!.headers['mscrm.mergelabels']).toBe('true');
    expect(fake.violations).toEqual([]);
    // On already: nothing is written.
    fake.reset();
    expect(await enableChangeTracking(client, 'contact')).toBe(false);
    expect(fake.writes()).toEqual([]);
  });

  it('WhoAmI names the organization and the identity', async () => {
    expect(await whoAmIOf(client)).toEqual({ organizationId: fake.changeTracking.organizationId, userId: fake.changeTracking.userId });
  });
});
