import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  ApiError,
  createAzureTokenProvider,
  createDataverseClient,
  type DataverseClient,
  parseOrganizationUrl,
  TokenError,
} from '../../src/dataverseApi';
import { type FakeDataverse, startFakeDataverse } from '../support/fakeDataverse';
import { scopedTokens } from '../support/tokens';

let dataverse: FakeDataverse;
let client: DataverseClient;
let tokens: ReturnType<typeof scopedTokens>;
const sleeps: number[] = [];

beforeAll(async () => {
  dataverse = await startFakeDataverse();
});
afterAll(() => dataverse.close());
beforeEach(() => {
  dataverse.reset();
  sleeps.length = 0;
  tokens = scopedTokens({ [`${dataverse.url}/.default`]: dataverse.token });
  client = createDataverseClient(`${dataverse.url}/some/path/`, {
    tokens,
    sleep: async (ms) => {
      sleeps.push(ms);
    },
  });
});

const named = z.object({ sdkmessageid: z.string(), name: z.string() });

describe('the Dataverse Web API client', () => {
  it('sends the OData headers and a bearer token for <org>/.default, under /api/data/v9.2/', async () => {
    dataverse.insert('sdkmessages', { name: 'Create' });
    expect(client.serviceRoot).toBe(`${dataverse.url}/api/data/v9.2/`);
    const rows = await client.list("sdkmessages?$select=sdkmessageid,name&$filter=name eq 'Create'", named);
    expect(rows.map((row) => row.name)).toEqual(['Create']);
    expect(tokens.scopes).toEqual([`${dataverse.url}/.default`]);
    const [request] = dataverse.requests;
    expect(request?.headers['odata-maxversion']).toBe('4.0');
    expect(request?.headers['odata-version']).toBe('4.0');
    expect(request?.headers.accept).toBe('application/json');
    expect(request?.headers.authorization).toBe(`Bearer ${dataverse.token}`);
    expect(dataverse.violations).toEqual([]);
  });

  it('creates a row and returns the id from OData-EntityId; updates with If-Match: *; deletes', async () => {
    const endpointId = await client.create('serviceendpoints', {
      name: 'hook',
      contract: 8,
      url: 'https://example.test/api/x',
      authtype: 4,
      authvalue: 'k',
    });
    expect(dataverse.row('serviceendpoints', endpointId)?.name).toBe('hook');
    await client.update('serviceendpoints', endpointId, { url: 'https://example.test/api/y' });
    expect(dataverse.row('serviceendpoints', endpointId)?.url).toBe('https://example.test/api/y');
    expect(dataverse.requests[1]?.headers['if-match']).toBe('*');
    expect(dataverse.requests[1]?.headers['content-type']).toBe('application/json; charset=utf-8');
    await client.delete('serviceendpoints', endpointId);
    expect(dataverse.row('serviceendpoints', endpointId)).toBeUndefined();
    expect(dataverse.violations).toEqual([]);
  });

  it('names the request and Dataverse’s code and message when a request fails, and never the token', async () => {
    const missing = '11111111-2222-3333-4444-555555555555';
    const error = await client.update('serviceendpoints', missing, { url: 'https://example.test' }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ status: 404, code: '0x80040217', request: `PATCH serviceendpoints(${missing})` });
    expect(String(error)).toContain(
      `PATCH serviceendpoints(${missing}) failed: HTTP 404 0x80040217: serviceendpoint With Id = ${missing} Does Not Exist`,
    );
    expect(String(error)).not.toContain(dataverse.token);

    const unknownColumn = await client
      .create('serviceendpoints', { name: 'x', contract: 8, nosuchcolumn: 1 })
      .catch((caught: unknown) => caught);
    expect(String(unknownColumn)).toContain(
      "POST serviceendpoints failed: HTTP 400 0x80060888: The property 'nosuchcolumn' does not exist",
    );
  });

  it('reports a token Dataverse refuses as a 401, without the token', async () => {
    const refused = createDataverseClient(dataverse.url, {
      tokens: scopedTokens({ [`${dataverse.url}/.default`]: 'a-token-for-another-tenant' }),
    });
    const error = await refused.list('sdkmessages', named).catch((caught: unknown) => caught);
    expect(error).toMatchObject({ status: 401, request: 'GET sdkmessages' });
    expect(String(error)).not.toContain('a-token-for-another-tenant');
  });

  it('does not echo a body that is not a JSON error', async () => {
    dataverse.fail({ path: 'sdkmessages', status: 500, body: 'secret-looking text', headers: { 'Content-Type': 'text/plain' } });
    const error = await client.list('sdkmessages', named).catch((caught: unknown) => caught);
    expect(String(error)).toBe('ApiError: GET sdkmessages failed: HTTP 500');
  });

  it('waits Retry-After and tries again when throttled (429), even a create', async () => {
    dataverse.fail({
      method: 'POST',
      path: 'serviceendpoints',
      status: 429,
      headers: { 'Retry-After': '2' },
      body: { error: { code: '0x80072322', message: 'Number of requests exceeded the limit' } },
      times: 2,
    });
    const id = await client.create('serviceendpoints', { name: 'throttled', contract: 8 });
    expect(dataverse.row('serviceendpoints', id)?.name).toBe('throttled');
    expect(sleeps).toEqual([2000, 2000]);
    expect(dataverse.writes()).toHaveLength(3);
  });

  it('repeats a GET after a gateway error but never a write, which may have happened', async () => {
    dataverse.fail({ method: 'GET', path: 'sdkmessages', status: 503, times: 1 });
    await expect(client.list('sdkmessages', named)).resolves.toEqual(expect.any(Array));
    expect(sleeps).toEqual([1000]);

    const id = dataverse.insert('serviceendpoints', { name: 'e', contract: 8 });
    dataverse.fail({ method: 'PATCH', path: 'serviceendpoints', status: 503, times: 1 });
    await expect(client.update('serviceendpoints', id, { url: 'https://example.test' })).rejects.toMatchObject({ status: 503 });
    expect(dataverse.writes()).toHaveLength(1);
  });

  it('gives up after the last attempt', async () => {
    dataverse.fail({ path: 'sdkmessages', status: 429, headers: { 'Retry-After': '0' }, times: 10 });
    await expect(client.list('sdkmessages', named)).rejects.toMatchObject({ status: 429 });
    expect(dataverse.requests).toHaveLength(4);
  });

  it('follows @odata.nextLink to the last page', async () => {
    for (const name of ['A', 'B', 'C', 'D', 'E']) dataverse.insert('sdkmessages', { name: `Paged${name}` });
    dataverse.pageSize = 2;
    const rows = await client.list('sdkmessages?$select=sdkmessageid,name&$orderby=name asc', named);
    expect(rows.filter((row) => row.name.startsWith('Paged')).map((row) => row.name)).toEqual([
      'PagedA',
      'PagedB',
      'PagedC',
      'PagedD',
      'PagedE',
    ]);
    expect(dataverse.requests.length).toBeGreaterThan(2);
  });

  it('refuses a next page outside the organization, so the token never leaves it', async () => {
    dataverse.fail({
      path: 'sdkmessages',
      status: 200,
      body: { value: [], '@odata.nextLink': 'https://elsewhere.example/api/data/v9.2/sdkmessages?$skiptoken=1' },
    });
    await expect(client.list('sdkmessages', named)).rejects.toThrow('the next page link points outside the organization');
    expect(dataverse.requests).toHaveLength(1);
  });

  it('says which answer had an unexpected shape', async () => {
    dataverse.fail({ path: 'sdkmessages', status: 200, body: { value: [{ sdkmessageid: 7 }] } });
    await expect(client.list('sdkmessages', named)).rejects.toThrow(
      /GET sdkmessages failed: HTTP 200 UnexpectedResponse: row 0 .*sdkmessageid/,
    );
  });

  it('reports a server that does not answer', async () => {
    const closed = createDataverseClient('http://127.0.0.1:9', { tokens: scopedTokens({ 'http://127.0.0.1:9/.default': 't' }) });
    await expect(closed.list('sdkmessages', named)).rejects.toMatchObject({ status: 0, request: 'GET sdkmessages' });
  });
});

describe('organization URLs', () => {
  it('keeps the origin and accepts a bare host name', () => {
    expect(parseOrganizationUrl('https://contoso.crm.dynamics.com/main.aspx?x=1').href).toBe('https://contoso.crm.dynamics.com/');
    expect(parseOrganizationUrl('contoso.crm4.dynamics.com').href).toBe('https://contoso.crm4.dynamics.com/');
  });

  it('refuses plain http except on loopback, and credentials in the URL', () => {
    expect(() => parseOrganizationUrl('http://contoso.crm.dynamics.com')).toThrow('must be https');
    expect(parseOrganizationUrl('http://127.0.0.1:8080').href).toBe('http://127.0.0.1:8080/');
    expect(() => parseOrganizationUrl('https://user:pass@contoso.crm.dynamics.com')).toThrow('must not carry a user name or password');
    expect(() => parseOrganizationUrl('https://user:pass@contoso.crm.dynamics.com')).not.toThrow(/user:pass/);
  });

  it('refuses a bare name instead of sending a token to https://contoso', () => {
    expect(() => parseOrganizationUrl('contoso', { requireDomain: true })).toThrow(
      'The organization "contoso" is not a host name: give it as https://<org>.crm.dynamics.com',
    );
    expect(parseOrganizationUrl('http://localhost:8080', { requireDomain: true }).href).toBe('http://localhost:8080/');
  });
});

describe('the @azure/identity token provider', () => {
  const credential = (results: Array<{ token: string; expiresOnTimestamp: number } | null | Error>) => {
    const scopes: string[] = [];
    return {
      scopes,
      getToken: async (scope: string | string[]) => {
        scopes.push(String(scope));
        const next = results.shift();
        if (next instanceof Error) throw next;
        return next ?? null;
      },
    };
  };

  it('caches a token per scope until two minutes before it expires', async () => {
    let now = 1_000_000;
    const fake = credential([
      { token: 'first', expiresOnTimestamp: now + 10 * 60_000 },
      { token: 'other-scope', expiresOnTimestamp: now + 10 * 60_000 },
      { token: 'second', expiresOnTimestamp: now + 20 * 60_000 },
    ]);
    const provider = createAzureTokenProvider(fake, () => now);
    expect(await provider.getToken('https://a/.default')).toBe('first');
    expect(await provider.getToken('https://a/.default')).toBe('first');
    expect(await provider.getToken('https://b/.default')).toBe('other-scope');
    now += 8 * 60_000 + 1;
    expect(await provider.getToken('https://a/.default')).toBe('second');
    expect(fake.scopes).toEqual(['https://a/.default', 'https://b/.default', 'https://a/.default']);
  });

  it('turns a missing token or a credential failure into one line that says how to sign in', async () => {
    await expect(createAzureTokenProvider(credential([null])).getToken('https://a/.default')).rejects.toThrow(TokenError);
    await expect(
      createAzureTokenProvider(credential([new Error('AADSTS700082: The refresh token has expired\nTrace ID: 1')])).getToken(
        'https://a/.default',
      ),
    ).rejects.toThrow(/^Could not get a token for https:\/\/a \(AADSTS700082: The refresh token has expired\): run "az login"/);
    // What DefaultAzureCredential throws when no credential is available: one error per credential, one per line.
    const unavailable = (message: string) => Object.assign(new Error(message), { name: 'CredentialUnavailableError' });
    const aggregate = Object.assign(
      new Error('ChainedTokenCredential authentication failed.\nCredentialUnavailableError: EnvironmentCredential is unavailable.'),
      {
        name: 'AggregateAuthenticationError',
        errors: [unavailable('EnvironmentCredential is unavailable.'), unavailable('Azure CLI could not be found.')],
      },
    );
    const error = await createAzureTokenProvider(credential([aggregate]))
      .getToken('https://contoso.crm.dynamics.com/.default')
      .catch((caught: unknown) => caught);
    expect(String((error as Error).message)).toBe(
      'Not signed in to Azure: run "az login" (or set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET for a service principal) to get a token for https://contoso.crm.dynamics.com',
    );
  });
});
