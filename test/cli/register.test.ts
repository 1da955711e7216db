import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createRegisterCommand } from '../../src/cli/register';
import { captureIO } from '../support/cliIO';
import { startFakeArm, type FakeArm } from '../support/fakeArm';
import { startFakeDataverse, type FakeDataverse, type Row } from '../support/fakeDataverse';
import { scopedTokens } from '../support/tokens';

const KEY = 'function-key-from-the-command-line==';
const SITE = '/subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.Web/sites/func-test';
const WEBHOOK_URL = 'https://func-test.azurewebsites.net/api/dataverse/webhook';

let dataverse: FakeDataverse;
let arm: FakeArm;
let dir: string;

beforeEach(async () => {
  dataverse = await startFakeDataverse();
  dataverse.seedMessages(['Create', 'Update', 'Delete'], ['account', 'contact']);
  arm = await startFakeArm({
    site: SITE,
    functionKeys: { dataverseWebhook: { default: 'arm-function-key-default', rotation: 'arm-function-key-second' } },
    hostFunctionKeys: { default: 'arm-host-key-default' },
  });
  dir = mkdtempSync(path.join(tmpdir(), 'register-'));
});
afterEach(async () => {
  await dataverse.close();
  await arm.close();
});

function baseRegistration() {
  return {
    endpoint: { name: 'dataverse-webhooks', url: WEBHOOK_URL, auth: { type: 'WebhookKey' } as Record<string, unknown> },
    steps: [
      { table: 'account', message: 'Create', asyncAutoDelete: true, images: [{ type: 'PostImage', alias: 'post', attributes: ['name'] }] },
      {
        table: 'account',
        message: 'Update',
        filteringAttributes: ['name', 'accountnumber'],
        images: [
          { type: 'PreImage', alias: 'pre', attributes: ['name'] },
          { type: 'PostImage', alias: 'post' },
        ],
      },
      { name: 'contact deletes', table: 'contact', message: 'Delete', mode: 'Synchronous', stage: 'PreOperation', rank: 5, images: [{ type: 'PreImage', alias: 'pre' }] },
    ] as Record<string, unknown>[],
  };
}

function writeRegistration(registration: unknown): void {
  writeFileSync(path.join(dir, 'registration.json'), JSON.stringify(registration));
}

async function register(args: string[], env: NodeJS.ProcessEnv = {}) {
  const io = captureIO({ cwd: dir, env: { DATAVERSE_URL: dataverse.url, ...env } });
  const tokens = scopedTokens({ [`${dataverse.url}/.default`]: dataverse.token, [`${arm.url}/.default`]: arm.token });
  const command = createRegisterCommand({ tokens: () => tokens, armUrl: arm.url, sleep: async () => {} });
  const code = await command(['--file', 'registration.json', ...args], io);
  return { code, out: io.out(), err: io.err() };
}

const messageId = (name: string) => String(dataverse.rows('sdkmessages').find((row) => row.name === name)?.sdkmessageid);
const filterId = (message: string, table: string) =>
  String(dataverse.rows('sdkmessagefilters').find((row) => row._sdkmessageid_value === messageId(message) && row.primaryobjecttypecode === table)?.sdkmessagefilterid);
const endpoint = () => dataverse.rows('serviceendpoints')[0] as Row;
const step = (name: string) => dataverse.rows('sdkmessageprocessingsteps').find((row) => row.name === name) as Row;
const imagesOf = (stepRow: Row) => dataverse.rows('sdkmessageprocessingstepimages').filter((row) => row._sdkmessageprocessingstepid_value === stepRow.sdkmessageprocessingstepid);
const writeLines = () => dataverse.writes().map((request) => `${request.method} ${request.path.replace(/\([0-9a-f-]{36}\)/, '(id)')}`);

describe('dataverse-webhooks register', () => {
  it('creates the endpoint, its steps and their images the first time, bound by @odata.bind', async () => {
    writeRegistration(baseRegistration());
    const result = await register(['--key', KEY]);
    expect(result.code).toBe(0);
    expect(dataverse.violations).toEqual([]);

    expect(writeLines()).toEqual([
      'POST serviceendpoints',
      'POST sdkmessageprocessingsteps',
      'POST sdkmessageprocessingstepimages',
      'POST sdkmessageprocessingsteps',
      'POST sdkmessageprocessingstepimages',
      'POST sdkmessageprocessingstepimages',
      'POST sdkmessageprocessingsteps',
      'POST sdkmessageprocessingstepimages',
    ]);
    expect(dataverse.writes()[0]?.body).toEqual({ name: 'dataverse-webhooks', contract: 8, url: WEBHOOK_URL, authtype: 4, messageformat: 2, authvalue: KEY });
    const endpointId = String(endpoint().serviceendpointid);

    expect(dataverse.writes()[3]?.body).toEqual({
      name: 'dataverse-webhooks: Update of account',
      stage: 40,
      mode: 1,
      rank: 1,
      asyncautodelete: false,
      filteringattributes: 'accountnumber,name',
      supporteddeployment: 0,
      'eventhandler_serviceendpoint@odata.bind': `/serviceendpoints(${endpointId})`,
      'sdkmessageid@odata.bind': `/sdkmessages(${messageId('Update')})`,
      'sdkmessagefilterid@odata.bind': `/sdkmessagefilters(${filterId('Update', 'account')})`,
    });

    const create = step('dataverse-webhooks: Create of account');
    expect(create).toMatchObject({ stage: 40, mode: 1, asyncautodelete: true, _eventhandler_value: endpointId, _sdkmessagefilterid_value: filterId('Create', 'account') });
    expect(imagesOf(create)).toEqual([expect.objectContaining({ entityalias: 'post', name: 'post', imagetype: 1, attributes: 'name', messagepropertyname: 'Id' })]);

    const update = step('dataverse-webhooks: Update of account');
    expect(imagesOf(update).map((image) => [image.entityalias, image.imagetype, image.attributes, image.messagepropertyname])).toEqual([
      ['pre', 0, 'name', 'Target'],
      ['post', 1, null, 'Target'],
    ]);
    expect(dataverse.writes()[4]?.body?.['sdkmessageprocessingstepid@odata.bind']).toBe(`/sdkmessageprocessingsteps(${String(update.sdkmessageprocessingstepid)})`);

    expect(step('contact deletes')).toMatchObject({ stage: 20, mode: 0, rank: 5, _sdkmessagefilterid_value: filterId('Delete', 'contact') });
    expect(result.out).toContain('endpoint "dataverse-webhooks": created');
    expect(result.out).toContain('step "contact deletes": created');
    expect(result.out).toContain('8 write(s) sent.');
    expect(result.out).not.toContain(KEY);
  });

  it('writes nothing on a second run with the same file', async () => {
    writeRegistration(baseRegistration());
    await register(['--key', KEY]);
    dataverse.reset();
    const again = await register([]);
    expect(again.code).toBe(0);
    expect(dataverse.writes()).toEqual([]);
    expect(again.out).toContain('endpoint "dataverse-webhooks": unchanged');
    expect(again.out).toContain('step "dataverse-webhooks: Update of account": unchanged');
    expect(again.out).toContain('Nothing to write: Dataverse already matches the file.');
  });

  it('updates only what changed: a step’s columns, an image’s attributes, a removed image, the URL', async () => {
    writeRegistration(baseRegistration());
    await register(['--key', KEY]);
    const update = step('dataverse-webhooks: Update of account');
    const [pre, post] = imagesOf(update);
    dataverse.reset();

    const changed = baseRegistration();
    changed.endpoint.url = `${WEBHOOK_URL}2`;
    changed.steps[1] = { ...changed.steps[1], rank: 2, filteringAttributes: ['telephone1', 'name', 'accountnumber'], images: [{ type: 'PreImage', alias: 'pre', attributes: ['name', 'telephone1'] }] };
    writeRegistration(changed);
    const second = await register([]);

    expect(second.code).toBe(0);
    expect(dataverse.writes().map((request) => [request.method, request.path, request.body])).toEqual([
      ['PATCH', `serviceendpoints(${String(endpoint().serviceendpointid)})`, { url: `${WEBHOOK_URL}2` }],
      ['PATCH', `sdkmessageprocessingsteps(${String(update.sdkmessageprocessingstepid)})`, { rank: 2, filteringattributes: 'accountnumber,name,telephone1' }],
      ['PATCH', `sdkmessageprocessingstepimages(${String(pre?.sdkmessageprocessingstepimageid)})`, { attributes: 'name,telephone1' }],
      ['DELETE', `sdkmessageprocessingstepimages(${String(post?.sdkmessageprocessingstepimageid)})`, undefined],
    ]);
    expect(second.out).toContain('step "dataverse-webhooks: Update of account": updated (rank 1 → 2; filteringattributes "accountnumber,name" → "accountnumber,name,telephone1"; image "pre": attributes; image "post" removed)');
    expect(dataverse.violations).toEqual([]);
  });

  it('keeps steps the file no longer lists, and deletes only this endpoint’s with --prune', async () => {
    writeRegistration(baseRegistration());
    await register(['--key', KEY]);
    const endpointId = String(endpoint().serviceendpointid);
    const otherEndpointId = dataverse.insert('serviceendpoints', { name: 'someone else', contract: 8, url: 'https://other.example/hook', authtype: 4 });
    const stale = dataverse.insert('sdkmessageprocessingsteps', { name: 'an old step', stage: 40, mode: 1, rank: 1, _eventhandler_value: endpointId, _sdkmessageid_value: messageId('Create') });
    const foreign = dataverse.insert('sdkmessageprocessingsteps', { name: 'an old step', stage: 40, mode: 1, rank: 1, _eventhandler_value: otherEndpointId, _sdkmessageid_value: messageId('Create') });
    dataverse.reset();

    const kept = await register([]);
    expect(dataverse.writes()).toEqual([]);
    expect(kept.out).toContain('step "an old step": kept (not in the file; --prune deletes it)');

    const pruned = await register(['--prune']);
    expect(pruned.out).toContain('step "an old step": deleted');
    expect(writeLines()).toEqual(['DELETE sdkmessageprocessingsteps(id)']);
    expect(dataverse.writes()[0]?.path).toBe(`sdkmessageprocessingsteps(${stale})`);
    expect(dataverse.row('sdkmessageprocessingsteps', foreign)).toBeDefined();
    expect(dataverse.rows('sdkmessageprocessingsteps')).toHaveLength(4);
  });

  it('with --dry-run reads Dataverse, prints every write with the key masked, and sends none', async () => {
    writeRegistration(baseRegistration());
    const result = await register(['--dry-run', '--key', KEY]);
    expect(result.code).toBe(0);
    expect(dataverse.writes()).toEqual([]);
    expect(dataverse.rows('serviceendpoints')).toEqual([]);
    expect(result.out).not.toContain(KEY);
    expect(result.out).toContain('Dry run: nothing was written. 8 request(s) would be sent:');
    expect(result.out).toContain(`POST ${dataverse.url}/api/data/v9.2/serviceendpoints\n  {"name":"dataverse-webhooks","contract":8,"url":"${WEBHOOK_URL}","authtype":4,"messageformat":2,"authvalue":"***"}`);
    expect(result.out).toContain('"eventhandler_serviceendpoint@odata.bind":"/serviceendpoints(<id of the new serviceendpoint \\"dataverse-webhooks\\">)"');
    expect(result.out).toContain('"sdkmessageprocessingstepid@odata.bind":"/sdkmessageprocessingsteps(<id of the new step \\"contact deletes\\">)"');
    expect(result.out).toContain('endpoint "dataverse-webhooks": would be created');
    expect(result.out).toContain(`Dry run: read Dataverse with ${dataverse.requests.length} request(s):\nGET ${dataverse.url}/api/data/v9.2/serviceendpoints?$select=`);
    expect(dataverse.requests.every((request) => request.method === 'GET')).toBe(true);

    const fromAzure = await register(['--dry-run', '--key-from-azure', '--subscription', 'sub-1', '--resource-group', 'rg-1', '--app', 'func-test']);
    expect(fromAzure.out).toContain('"authvalue":"***"');
    expect(arm.requests).toEqual([]);
    expect(dataverse.writes()).toEqual([]);

    await register(['--key', KEY]);
    dataverse.reset();
    const rotate = await register(['--dry-run', '--rotate-key', '--key', 'next-key-value']);
    expect(dataverse.writes()).toEqual([]);
    expect(rotate.out).toContain('"authvalue":"***"');
    expect(rotate.out).not.toContain('next-key-value');
  });

  it('reads the function key from Azure Resource Manager, and rotates to a second key', async () => {
    writeRegistration(baseRegistration());
    const result = await register(['--key-from-azure', '--subscription', 'sub-1', '--resource-group', 'rg-1', '--app', 'func-test']);
    expect(result.code).toBe(0);
    expect(endpoint().authvalue).toBe('arm-function-key-default');
    expect(arm.requests).toEqual([{ method: 'POST', path: `${SITE}/functions/dataverseWebhook/listkeys`, apiVersion: '2024-04-01', authorization: `Bearer ${arm.token}` }]);
    expect(result.out).not.toContain('arm-function-key-default');

    dataverse.reset();
    const unchanged = await register(['--key-from-azure', '--subscription', 'sub-1', '--resource-group', 'rg-1', '--app', 'func-test']);
    expect(unchanged.code).toBe(0);
    expect(dataverse.writes()).toEqual([]);
    expect(arm.requests).toHaveLength(1);

    const rotated = await register(['--rotate-key', '--key-from-azure', '--key-name', 'rotation'], { AZURE_SUBSCRIPTION_ID: 'sub-1', AZURE_RESOURCE_GROUP: 'rg-1', AZURE_FUNCTION_APP_NAME: 'func-test' });
    expect(rotated.code).toBe(0);
    expect(dataverse.writes().map((request) => request.body)).toEqual([{ authvalue: 'arm-function-key-second' }]);
    expect(endpoint().authvalue).toBe('arm-function-key-second');
    expect(rotated.out).toContain('endpoint "dataverse-webhooks": updated (authvalue (rewritten))');

    await register(['--rotate-key', '--key-from-azure', '--host-key', '--subscription', 'sub-1', '--resource-group', 'rg-1', '--app', 'func-test']);
    expect(endpoint().authvalue).toBe('arm-host-key-default');
    expect(arm.requests.at(-1)?.path).toBe(`${SITE}/host/default/listkeys`);
  });

  it('names the keys the function has, not their values, when the key asked for is missing', async () => {
    writeRegistration(baseRegistration());
    const attempt = register(['--key-from-azure', '--key-name', 'nope', '--subscription', 'sub-1', '--resource-group', 'rg-1', '--app', 'func-test']);
    await expect(attempt).rejects.toThrow('the function dataverseWebhook of func-test has no key named "nope" (it has: default, rotation)');
    const error = await register(['--key-from-azure', '--key-name', 'nope', '--subscription', 'sub-1', '--resource-group', 'rg-1', '--app', 'func-test']).catch(String);
    expect(error).not.toContain('arm-function-key');
    expect(dataverse.writes()).toEqual([]);

    await expect(register(['--key-from-azure', '--subscription', 'sub-1', '--resource-group', 'rg-1', '--app', 'no-such-app'])).rejects.toThrow(/POST .*no-such-app\/functions\/dataverseWebhook\/listkeys failed: HTTP 404 ResourceNotFound/);
  });

  it('registers HttpHeader settings from the environment variables the file names', async () => {
    const registration = baseRegistration();
    writeRegistration(registration);
    await register(['--key', KEY]);
    dataverse.reset();

    registration.endpoint.auth = { type: 'HttpHeader', settings: [{ name: 'x-webhook-key', valueFromEnv: 'WEBHOOK_HEADER_KEY' }] };
    writeRegistration(registration);
    await expect(register([])).rejects.toThrow('HttpHeader registration: set WEBHOOK_HEADER_KEY (the value of "x-webhook-key")');
    expect(dataverse.writes()).toEqual([]);

    const result = await register([], { WEBHOOK_HEADER_KEY: 'va"l<ue&' });
    expect(result.code).toBe(0);
    expect(dataverse.writes().map((request) => request.body)).toEqual([{ authtype: 5, authvalue: '<settings><setting name="x-webhook-key" value="va&quot;l&lt;ue&amp;" /></settings>' }]);
    expect(result.out).not.toContain('va"l<ue&');

    dataverse.reset();
    await register([], { WEBHOOK_HEADER_KEY: 'va"l<ue&' });
    expect(dataverse.writes()).toEqual([]);
  });

  it('fails before any write when a table or message does not exist, or the name belongs to another kind of endpoint', async () => {
    const registration = baseRegistration();
    registration.steps.push({ table: 'nosuchtable', message: 'Update' });
    writeRegistration(registration);
    await expect(register(['--key', KEY])).rejects.toThrow('Dataverse has no "Update" message for the table "nosuchtable": check the table\'s logical name');
    registration.steps[3] = { table: 'account', message: 'Frobnicate' };
    writeRegistration(registration);
    await expect(register(['--key', KEY])).rejects.toThrow('Dataverse has no SDK message named "Frobnicate"');
    expect(dataverse.writes()).toEqual([]);

    writeRegistration(baseRegistration());
    dataverse.insert('serviceendpoints', { name: 'dataverse-webhooks', contract: 7 });
    await expect(register(['--key', KEY])).rejects.toThrow('The service endpoint "dataverse-webhooks" is not a webhook (contract 7); it is left alone');
    expect(dataverse.writes()).toEqual([]);
  });

  it('asks for the key only when it must write it', async () => {
    writeRegistration(baseRegistration());
    await expect(register([])).rejects.toThrow('The endpoint needs its function key (new endpoint, new auth type, or --rotate-key): pass --key-from-azure, or --key');
    await expect(register(['--key-from-azure', '--subscription', 'sub-1'])).rejects.toThrow('--key-from-azure needs --resource-group (or AZURE_RESOURCE_GROUP)');
    await expect(register(['--key', 'a', '--key-from-azure'])).rejects.toThrow('Pass --key or --key-from-azure, not both');
    expect(dataverse.writes()).toEqual([]);
  });

  it('creates a disabled step switched off, and recovers from a failure half-way on the next run', async () => {
    const registration = baseRegistration();
    registration.steps[0] = { ...registration.steps[0], enabled: false };
    writeRegistration(registration);
    dataverse.fail({ method: 'POST', path: 'sdkmessageprocessingstepimages', status: 400, body: { error: { code: '0x80040203', message: 'Invalid image attributes' } } });
    await expect(register(['--key', KEY])).rejects.toThrow('POST sdkmessageprocessingstepimages failed: HTTP 400 0x80040203: Invalid image attributes');
    expect(step('dataverse-webhooks: Create of account')).toMatchObject({ statecode: 1, statuscode: 2 });
    expect(dataverse.rows('sdkmessageprocessingstepimages')).toEqual([]);

    dataverse.reset();
    const resumed = await register([]);
    expect(resumed.code).toBe(0);
    expect(writeLines()).toEqual([
      'POST sdkmessageprocessingstepimages',
      'POST sdkmessageprocessingsteps',
      'POST sdkmessageprocessingstepimages',
      'POST sdkmessageprocessingstepimages',
      'POST sdkmessageprocessingsteps',
      'POST sdkmessageprocessingstepimages',
    ]);
    dataverse.reset();
    await register([]);
    expect(dataverse.writes()).toEqual([]);
    expect(dataverse.violations).toEqual([]);
  });

  it('prints the result as JSON with --json', async () => {
    writeRegistration(baseRegistration());
    const result = await register(['--key', KEY, '--json']);
    const parsed = JSON.parse(result.out);
    expect(parsed.endpoint).toMatchObject({ name: 'dataverse-webhooks', action: 'created', id: String(endpoint().serviceendpointid) });
    expect(parsed.steps.map((outcome: { action: string }) => outcome.action)).toEqual(['created', 'created', 'created']);
    expect(parsed.writes[0].body.authvalue).toBe('***');
    expect(result.out).not.toContain(KEY);
  });
});
