import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { describeFailure, main } from '../../src/cli/main';
import { createRegisterCommand } from '../../src/cli/register';
import { webhookUrl } from '../../src/functionNames';
import type { HandlerDefinition, HandlerOptions } from '../../src/handlerApi';
import { allow, decide, on } from '../../src/handlerApi';
import { registryOf } from '../../src/handlerApi/load';
import type { HandlerRegistry } from '../../src/pipeline/handlerRegistry';
import { captureIO } from '../support/cliIO';
import { type FakeArm, startFakeArm } from '../support/fakeArm';
import { type FakeDataverse, type Row, startFakeDataverse } from '../support/fakeDataverse';
import { scopedTokens } from '../support/tokens';

const KEY = 'function-key-from-the-command-line==';
const SITE = '/subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.Web/sites/func-test';
const WEBHOOK_URL = webhookUrl('https://func-test.azurewebsites.net');
const CREATE_STEP = 'dataverse-webhooks: Create of account (PostOperation, Asynchronous)';
const UPDATE_STEP = 'dataverse-webhooks: Update of account (PostOperation, Asynchronous)';
const DELETE_STEP = 'dataverse-webhooks: Delete of contact (PreOperation, Synchronous)';

let dataverse: FakeDataverse;
let arm: FakeArm;
let dir: string;

beforeEach(async () => {
  dataverse = await startFakeDataverse();
  dataverse.seedMessages(['Create', 'Update', 'Delete', 'CreateMultiple', 'UpdateMultiple'], ['account', 'contact']);
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

const noop = () => undefined;

/** Four handlers, three steps: two of them share the account Update step; and any declared after them. */
function appHandlers(changes: { numbers?: string[]; namesImages?: boolean } = {}, ...more: HandlerDefinition[]) {
  return registryOf([
    on({ name: 'new-accounts', entity: 'account', message: 'Create', images: { post: { type: 'PostImage', columns: ['name'] } } }, noop),
    on(
      {
        name: 'account-names',
        entity: 'account',
        message: 'Update',
        filteringAttributes: ['name'],
        images:
          changes.namesImages === false
            ? { pre: { type: 'PreImage', columns: ['name', 'telephone1'] } }
            : { pre: { type: 'PreImage', columns: ['name'] }, post: { type: 'PostImage' } },
      },
      noop,
    ),
    on(
      {
        name: 'account-numbers',
        entity: 'account',
        message: 'Update',
        filteringAttributes: changes.numbers ?? ['accountnumber'],
      } as HandlerOptions,
      noop,
    ),
    on(
      { name: 'contact-deletes', entity: 'contact', message: 'Delete', stage: 'PreOperation', images: { pre: { type: 'PreImage' } } },
      noop,
    ),
    on({ name: 'audit', entity: '*', message: '*' }, noop),
    ...more,
  ]);
}

function writeRegistration(endpoint: Record<string, unknown> = {}): void {
  writeFileSync(
    path.join(dir, 'registration.json'),
    JSON.stringify({ endpoint: { name: 'dataverse-webhooks', url: WEBHOOK_URL, auth: { type: 'WebhookKey' }, ...endpoint } }),
  );
}

const tokens = () => scopedTokens({ [`${dataverse.url}/.default`]: dataverse.token, [`${arm.url}/.default`]: arm.token });

async function register(args: string[], options: { env?: NodeJS.ProcessEnv; handlers?: HandlerRegistry } = {}) {
  const io = captureIO({ cwd: dir, env: { DATAVERSE_URL: dataverse.url, ...options.env } });
  const issued = tokens();
  const command = createRegisterCommand(
    { tokens: () => issued, armUrl: arm.url, sleep: async () => {} },
    options.handlers ?? appHandlers(),
  );
  const code = await command(['--file', 'registration.json', ...args], io);
  return { code, out: io.out(), err: io.err(), scopes: issued.scopes };
}

const messageId = (name: string) => String(dataverse.rows('sdkmessages').find((row) => row.name === name)?.sdkmessageid);
const filterId = (message: string, table: string) =>
  String(
    dataverse.rows('sdkmessagefilters').find((row) => row._sdkmessageid_value === messageId(message) && row.primaryobjecttypecode === table)
      ?.sdkmessagefilterid,
  );
const endpoint = () => dataverse.rows('serviceendpoints')[0] as Row;
const step = (name: string) => dataverse.rows('sdkmessageprocessingsteps').find((row) => row.name === name) as Row;
const imagesOf = (stepRow: Row) =>
  dataverse
    .rows('sdkmessageprocessingstepimages')
    .filter((row) => row._sdkmessageprocessingstepid_value === stepRow.sdkmessageprocessingstepid);
const writeLines = () => dataverse.writes().map((request) => `${request.method} ${request.path.replace(/\([0-9a-f-]{36}\)/, '(id)')}`);

describe('dataverse-webhooks register derives the steps from the handlers', () => {
  it('creates the endpoint, one step per table, message, stage and mode, and the images, bound by @odata.bind', async () => {
    writeRegistration();
    const result = await register(['--key', KEY]);
    expect(result.code, result.err).toBe(0);
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
    expect(dataverse.writes()[0]?.body).toEqual({
      name: 'dataverse-webhooks',
      contract: 8,
      url: WEBHOOK_URL,
      authtype: 4,
      messageformat: 2,
      authvalue: KEY,
    });
    const endpointId = String(endpoint().serviceendpointid);

    // The two Update handlers share one step: the union of their filtering attributes and images.
    expect(dataverse.writes()[3]?.body).toEqual({
      name: UPDATE_STEP,
      description: 'Feeds the dataverse-webhooks handlers: account-names, account-numbers',
      stage: 40,
      mode: 1,
      rank: 1,
      asyncautodelete: true,
      filteringattributes: 'accountnumber,name',
      supporteddeployment: 0,
      'eventhandler_serviceendpoint@odata.bind': `/serviceendpoints(${endpointId})`,
      'sdkmessageid@odata.bind': `/sdkmessages(${messageId('Update')})`,
      'sdkmessagefilterid@odata.bind': `/sdkmessagefilters(${filterId('Update', 'account')})`,
    });
    const update = step(UPDATE_STEP);
    expect(imagesOf(update).map((image) => [image.entityalias, image.imagetype, image.attributes, image.messagepropertyname])).toEqual([
      ['pre', 0, 'name', 'Target'],
      ['post', 1, null, 'Target'],
    ]);
    expect(dataverse.writes()[4]?.body?.['sdkmessageprocessingstepid@odata.bind']).toBe(
      `/sdkmessageprocessingsteps(${String(update.sdkmessageprocessingstepid)})`,
    );

    const create = step(CREATE_STEP);
    expect(create).toMatchObject({
      stage: 40,
      mode: 1,
      asyncautodelete: true,
      filteringattributes: null,
      _eventhandler_value: endpointId,
      _sdkmessagefilterid_value: filterId('Create', 'account'),
    });
    expect(imagesOf(create)).toEqual([
      expect.objectContaining({ entityalias: 'post', name: 'post', imagetype: 1, attributes: 'name', messagepropertyname: 'Id' }),
    ]);
    expect(step(DELETE_STEP)).toMatchObject({
      stage: 20,
      mode: 0,
      asyncautodelete: false,
      _sdkmessagefilterid_value: filterId('Delete', 'contact'),
    });
    expect(dataverse.rows('sdkmessageprocessingsteps')).toHaveLength(3);

    // The difference is printed before the writes are sent, and the key never.
    expect(result.out).toBe(
      [
        `${dataverse.url}:`,
        '  create endpoint "dataverse-webhooks"',
        `  create step "${CREATE_STEP}" for new-accounts (image "post")`,
        `  create step "${UPDATE_STEP}" for account-names, account-numbers (image "pre"; image "post")`,
        `  create step "${DELETE_STEP}" for contact-deletes (image "pre")`,
        '8 write(s) sent.',
        '',
      ].join('\n'),
    );
  });

  it('prints the difference before it sends the first write', async () => {
    writeRegistration();
    const io = captureIO({ cwd: dir, env: { DATAVERSE_URL: dataverse.url } });
    let printedBeforeFirstWrite: string | null = null;
    const issued = tokens();
    const command = createRegisterCommand(
      {
        tokens: () => issued,
        sleep: async () => {},
        fetch: (input, init) => {
          if (init.method !== 'GET' && printedBeforeFirstWrite === null) printedBeforeFirstWrite = io.out();
          return fetch(input, init);
        },
      },
      appHandlers(),
    );
    expect(await command(['--file', 'registration.json', '--key', KEY], io)).toBe(0);
    expect(printedBeforeFirstWrite).toContain(`  create step "${DELETE_STEP}" for contact-deletes (image "pre")`);
    expect(printedBeforeFirstWrite).not.toContain('write(s) sent');
  });

  it('writes nothing on a second run with the same handlers', async () => {
    writeRegistration();
    await register(['--key', KEY]);
    dataverse.reset();
    const again = await register([]);
    expect(again.code).toBe(0);
    expect(dataverse.writes()).toEqual([]);
    expect(again.out).toContain('  unchanged endpoint "dataverse-webhooks"');
    expect(again.out).toContain(`  unchanged step "${UPDATE_STEP}" for account-names, account-numbers`);
    expect(again.out).toContain('Nothing to write: Dataverse already matches the handlers.');
  });

  it('updates only what a handler changed, finds a step renamed by hand by what it is, and moves the URL', async () => {
    writeRegistration();
    await register(['--key', KEY]);
    const update = step(UPDATE_STEP);
    const [pre, post] = imagesOf(update);
    const create = step(CREATE_STEP);
    dataverse.reset();

    // Someone renamed the Create step and switched it off.
    const createRow = dataverse.row('sdkmessageprocessingsteps', String(create.sdkmessageprocessingstepid))!;
    createRow.name = 'renamed by hand';
    createRow.statecode = 1;
    writeRegistration({ url: `${WEBHOOK_URL}2` });
    const second = await register([], { handlers: appHandlers({ numbers: ['accountnumber', 'telephone1'], namesImages: false }) });

    expect(second.code, second.err).toBe(0);
    expect(dataverse.writes().map((request) => [request.method, request.path, request.body])).toEqual([
      ['PATCH', `serviceendpoints(${String(endpoint().serviceendpointid)})`, { url: `${WEBHOOK_URL}2` }],
      [
        'PATCH',
        `sdkmessageprocessingsteps(${String(create.sdkmessageprocessingstepid)})`,
        { name: CREATE_STEP, statecode: 0, statuscode: 1 },
      ],
      [
        'PATCH',
        `sdkmessageprocessingsteps(${String(update.sdkmessageprocessingstepid)})`,
        { filteringattributes: 'accountnumber,name,telephone1' },
      ],
      ['PATCH', `sdkmessageprocessingstepimages(${String(pre?.sdkmessageprocessingstepimageid)})`, { attributes: 'name,telephone1' }],
      ['DELETE', `sdkmessageprocessingstepimages(${String(post?.sdkmessageprocessingstepimageid)})`, undefined],
    ]);
    expect(second.out).toContain(
      `  update step "${UPDATE_STEP}" for account-names, account-numbers (filteringattributes "accountnumber,name" → "accountnumber,name,telephone1"; image "pre": attributes "name" → "name,telephone1"; image "post" removed)`,
    );
    expect(second.out).toContain(
      `  update step "${CREATE_STEP}" for new-accounts (name "renamed by hand" → "${CREATE_STEP}"; enabled (it was disabled))`,
    );
    expect(dataverse.violations).toEqual([]);
  });

  it('keeps steps no handler declares, and deletes only this endpoint’s with --prune, duplicates included', async () => {
    writeRegistration();
    await register(['--key', KEY]);
    const endpointId = String(endpoint().serviceendpointid);
    const otherEndpointId = dataverse.insert('serviceendpoints', {
      name: 'someone else',
      contract: 8,
      url: 'https://other.example/hook',
      authtype: 4,
    });
    const stale = dataverse.insert('sdkmessageprocessingsteps', {
      name: 'an old step',
      stage: 40,
      mode: 1,
      rank: 1,
      _eventhandler_value: endpointId,
      _sdkmessageid_value: messageId('Update'),
      _sdkmessagefilterid_value: filterId('Update', 'contact'),
    });
    // A second step that is exactly the handlers' Create step would deliver every create twice.
    const duplicate = dataverse.insert('sdkmessageprocessingsteps', {
      ...step(CREATE_STEP),
      sdkmessageprocessingstepid: undefined,
      name: 'a copy',
    });
    const foreign = dataverse.insert('sdkmessageprocessingsteps', {
      name: 'an old step',
      stage: 40,
      mode: 1,
      rank: 1,
      _eventhandler_value: otherEndpointId,
      _sdkmessageid_value: messageId('Create'),
    });
    dataverse.reset();

    const kept = await register([]);
    expect(dataverse.writes()).toEqual([]);
    expect(kept.out).toContain('  keep step "an old step": no handler declares it (--prune deletes it)');
    expect(kept.out).toContain('  keep step "a copy": no handler declares it (--prune deletes it)');

    const pruned = await register(['--prune']);
    expect(pruned.out).toContain('  delete step "an old step": no handler declares it');
    expect(
      dataverse
        .writes()
        .map((request) => request.path)
        .sort(),
    ).toEqual([`sdkmessageprocessingsteps(${duplicate})`, `sdkmessageprocessingsteps(${stale})`].sort());
    expect(dataverse.row('sdkmessageprocessingsteps', foreign)).toBeDefined();
    expect(dataverse.rows('sdkmessageprocessingsteps')).toHaveLength(4);
  });

  it('with --dry-run reads Dataverse, prints the difference and every write with the key masked, and sends none', async () => {
    writeRegistration();
    const result = await register(['--dry-run', '--key', KEY]);
    expect(result.code).toBe(0);
    expect(dataverse.writes()).toEqual([]);
    expect(dataverse.rows('serviceendpoints')).toEqual([]);
    expect(result.out).not.toContain(KEY);
    expect(result.out).toContain(`  create step "${UPDATE_STEP}" for account-names, account-numbers (image "pre"; image "post")`);
    expect(result.out).toContain('Dry run: nothing was written. 8 request(s) would be sent:');
    expect(result.out).toContain(
      `POST ${dataverse.url}/api/data/v9.2/serviceendpoints\n  {"name":"dataverse-webhooks","contract":8,"url":"${WEBHOOK_URL}","authtype":4,"messageformat":2,"authvalue":"***"}`,
    );
    expect(result.out).toContain(
      '"eventhandler_serviceendpoint@odata.bind":"/serviceendpoints(<id of the new serviceendpoint \\"dataverse-webhooks\\">)"',
    );
    expect(result.out).toContain(
      `"sdkmessageprocessingstepid@odata.bind":"/sdkmessageprocessingsteps(<id of the new step \\"${DELETE_STEP}\\">)"`,
    );
    expect(result.out).toContain(
      `Dry run: read Dataverse with ${dataverse.requests.length} request(s):\nGET ${dataverse.url}/api/data/v9.2/serviceendpoints?$select=`,
    );
    expect(dataverse.requests.every((request) => request.method === 'GET')).toBe(true);

    const fromAzure = await register([
      '--dry-run',
      '--key-from-azure',
      '--subscription',
      'sub-1',
      '--resource-group',
      'rg-1',
      '--app',
      'func-test',
    ]);
    expect(fromAzure.out).toContain('"authvalue":"***"');
    expect(arm.requests).toEqual([]);
    expect(dataverse.writes()).toEqual([]);
  });

  it('with --plan prints the handlers’ steps from the code alone: no sign-in, no request', async () => {
    writeRegistration({ url: undefined });
    const io = captureIO({ cwd: dir, env: {} });
    const requests: string[] = [];
    const command = createRegisterCommand(
      {
        tokens: () => {
          throw new Error('--plan must not sign in');
        },
        fetch: async (input) => {
          requests.push(input);
          throw new Error('--plan must not send a request');
        },
      },
      appHandlers(),
    );
    expect(await command(['--file', 'registration.json', '--plan'], io)).toBe(0);
    expect(requests).toEqual([]);
    expect(io.out()).toBe(
      [
        'Endpoint "dataverse-webhooks" (WebhookKey) at the URL given with --url',
        '3 step(s) from the handlers:',
        `  step "${CREATE_STEP}"`,
        '    account Create, PostOperation, Asynchronous, deletes its succeeded System Jobs',
        '    image "post": PostImage of name',
        '    handlers: new-accounts',
        `  step "${UPDATE_STEP}"`,
        '    account Update, PostOperation, Asynchronous, deletes its succeeded System Jobs',
        '    filtering attributes: accountnumber,name',
        '    image "pre": PreImage of name',
        '    image "post": PostImage of every column',
        '    handlers: account-names, account-numbers',
        '    note: image "post" holds every column: a larger payload, nearer the 256 KB Dataverse truncates at',
        `  step "${DELETE_STEP}"`,
        '    contact Delete, PreOperation, Synchronous',
        '    image "pre": PreImage of every column',
        '    handlers: contact-deletes',
        '    note: image "pre" holds every column: a larger payload, nearer the 256 KB Dataverse truncates at',
        '    warning: reacting handlers contact-deletes run from the queue, and this synchronous step runs inside the operation’s database transaction: a later step or plug-in can still fail the operation and roll it back, so they may react to a save that never happened. Unless they must block the save, declare them on an asynchronous PostOperation step, which Dataverse runs after the commit',
        'Handlers for "*" register no step; they receive the events of the steps above: audit',
        'Nothing was read or written. "register --dry-run" compares this with Dataverse.',
        'Columns not checked: there are no generated table types ("dataverse-webhooks types" writes them); "register" checks them against the organization.',
        '',
      ].join('\n'),
    );
    const json = captureIO({ cwd: dir, env: {} });
    expect(await command(['--file', 'registration.json', '--plan', '--json'], json)).toBe(0);
    expect(JSON.parse(json.out()).steps.map((planned: { name: string; handlers: string[] }) => [planned.name, planned.handlers])).toEqual([
      [CREATE_STEP, ['new-accounts']],
      [UPDATE_STEP, ['account-names', 'account-numbers']],
      [DELETE_STEP, ['contact-deletes']],
    ]);
  });

  it('with --plan marks inline handlers, says what waits for the app, and warns about reacting handlers on a synchronous step', async () => {
    writeRegistration({ url: undefined });
    const registry = registryOf([
      decide({ name: 'gate', entity: 'account', message: 'Update', stage: 'PreOperation', filteringAttributes: ['creditlimit'] }, () =>
        allow(),
      ),
      on({ name: 'erp-sync', entity: 'account', message: 'Update', stage: 'PreOperation', filteringAttributes: ['name'] }, noop),
      decide({ name: 'early-gate', entity: 'account', message: 'Create', stage: 'PreValidation' }, () => allow()),
    ]);
    const command = createRegisterCommand(
      {
        tokens: () => {
          throw new Error('--plan must not sign in');
        },
      },
      registry,
    );
    const io = captureIO({ cwd: dir, env: {} });
    expect(await command(['--file', 'registration.json', '--plan'], io)).toBe(0);
    expect(io.out()).toContain(
      [
        '  step "dataverse-webhooks: Update of account (PreOperation, Synchronous)"',
        '    account Update, PreOperation, Synchronous',
        '    filtering attributes: creditlimit,name',
        '    handlers: gate (inline), erp-sync',
        "    note: every Update of account that sets creditlimit or name waits for this app's answer (inline: gate); a rejection, a failure or a time-out fails the person's save",
        '    note: a rejection in PreOperation rolls the database transaction back; Microsoft recommends cancelling in PreValidation, before the transaction',
        '    warning: reacting handlers erp-sync run from the queue, and this synchronous step runs inside the operation’s database transaction: a later step or plug-in can still fail the operation and roll it back, so they may react to a save that never happened. Unless they must block the save, declare them on an asynchronous PostOperation step, which Dataverse runs after the commit',
        '  step "dataverse-webhooks: Create of account (PreValidation, Synchronous)"',
        '    account Create, PreValidation, Synchronous',
        '    handlers: early-gate (inline)',
        "    note: every Create of account waits for this app's answer (inline: early-gate); a rejection, a failure or a time-out fails the person's save",
        'Nothing was read or written.',
      ].join('\n'),
    );
    const json = captureIO({ cwd: dir, env: {} });
    expect(await command(['--file', 'registration.json', '--plan', '--json'], json)).toBe(0);
    expect(
      JSON.parse(json.out()).steps.map((planned: { inlineHandlers: string[]; warnings: string[] }) => [
        planned.inlineHandlers,
        planned.warnings.length,
      ]),
    ).toEqual([
      [['gate'], 1],
      [['early-gate'], 0],
    ]);
  });

  it('with --plan refuses an inline handler on a step Dataverse does not wait for, in one line, as the app would refuse to load', async () => {
    writeRegistration({ url: undefined });
    const command = createRegisterCommand(
      {
        tokens: () => {
          throw new Error('--plan must not sign in');
        },
      },
      () =>
        registryOf([
          decide({ name: 'async-gate', entity: 'account', message: 'Create', stage: 'PostOperation', mode: 'Asynchronous' } as never, () =>
            allow(),
          ),
        ]),
    );
    const io = captureIO({ cwd: dir, env: {} });
    const failure = await command(['--file', 'registration.json', '--plan'], io).then(
      () => null,
      (error: unknown) => error,
    );
    expect(io.out()).toBe('');
    expect(describeFailure(failure, 'register', io)).toEqual({
      // The declaring file first, as for the app's own handlers (src/handlers/…).
      line: 'test/cli/register.test.ts: handler async-gate: an inline handler decides whether the operation goes on, and Dataverse runs an asynchronous step after the operation completed, where no answer can stop it: declare a synchronous step, or react with on(…) instead',
      code: 1,
    });
  });

  it('registers an inline handler’s step as synchronous, which keeps its System Jobs setting off', async () => {
    writeRegistration();
    const registry = registryOf([decide({ name: 'gate', entity: 'account', message: 'Create', stage: 'PostOperation' }, () => allow())]);
    const result = await register(['--key', KEY], { handlers: registry });
    expect(result.code, result.err).toBe(0);
    expect(step('dataverse-webhooks: Create of account (PostOperation, Synchronous)')).toMatchObject({
      stage: 40,
      mode: 0,
      asyncautodelete: false,
    });
    expect(dataverse.violations).toEqual([]);
  });

  it('reads the function key from Azure Resource Manager, and rotates to a second key', async () => {
    writeRegistration();
    const result = await register(['--key-from-azure', '--subscription', 'sub-1', '--resource-group', 'rg-1', '--app', 'func-test']);
    expect(result.code).toBe(0);
    expect(endpoint().authvalue).toBe('arm-function-key-default');
    expect(arm.requests).toEqual([
      {
        method: 'POST',
        path: `${SITE}/functions/dataverseWebhook/listkeys`,
        apiVersion: '2024-04-01',
        authorization: `Bearer ${arm.token}`,
      },
    ]);
    expect(result.out).not.toContain('arm-function-key-default');

    dataverse.reset();
    const unchanged = await register(['--key-from-azure', '--subscription', 'sub-1', '--resource-group', 'rg-1', '--app', 'func-test']);
    expect(unchanged.code).toBe(0);
    expect(dataverse.writes()).toEqual([]);
    expect(arm.requests).toHaveLength(1);

    const rotated = await register(['--rotate-key', '--key-from-azure', '--key-name', 'rotation'], {
      env: { AZURE_SUBSCRIPTION_ID: 'sub-1', AZURE_RESOURCE_GROUP: 'rg-1', AZURE_FUNCTION_APP_NAME: 'func-test' },
    });
    expect(rotated.code).toBe(0);
    expect(dataverse.writes().map((request) => request.body)).toEqual([{ authvalue: 'arm-function-key-second' }]);
    expect(endpoint().authvalue).toBe('arm-function-key-second');
    expect(rotated.out).toContain('  update endpoint "dataverse-webhooks"');
    expect(rotated.out).toContain('(authvalue (rewritten))');

    await register([
      '--rotate-key',
      '--key-from-azure',
      '--host-key',
      '--subscription',
      'sub-1',
      '--resource-group',
      'rg-1',
      '--app',
      'func-test',
    ]);
    expect(endpoint().authvalue).toBe('arm-host-key-default');
    expect(arm.requests.at(-1)?.path).toBe(`${SITE}/host/default/listkeys`);
  });

  it('names the keys the function has, not their values, when the key asked for is missing', async () => {
    writeRegistration();
    const attempt = register([
      '--key-from-azure',
      '--key-name',
      'nope',
      '--subscription',
      'sub-1',
      '--resource-group',
      'rg-1',
      '--app',
      'func-test',
    ]);
    await expect(attempt).rejects.toThrow('the function dataverseWebhook of func-test has no key named "nope" (it has: default, rotation)');
    const error = await register([
      '--key-from-azure',
      '--key-name',
      'nope',
      '--subscription',
      'sub-1',
      '--resource-group',
      'rg-1',
      '--app',
      'func-test',
    ]).catch(String);
    expect(error).not.toContain('arm-function-key');
    expect(dataverse.writes()).toEqual([]);

    await expect(
      register(['--key-from-azure', '--subscription', 'sub-1', '--resource-group', 'rg-1', '--app', 'no-such-app']),
    ).rejects.toThrow(/POST .*no-such-app\/functions\/dataverseWebhook\/listkeys failed: HTTP 404 ResourceNotFound/);
  });

  it('registers HttpHeader settings from the environment variables the file names', async () => {
    writeRegistration();
    await register(['--key', KEY]);
    dataverse.reset();

    writeRegistration({ auth: { type: 'HttpHeader', settings: [{ name: 'x-webhook-key', valueFromEnv: 'WEBHOOK_HEADER_KEY' }] } });
    await expect(register([])).rejects.toThrow('HttpHeader registration: set WEBHOOK_HEADER_KEY (the value of "x-webhook-key")');
    expect(dataverse.writes()).toEqual([]);

    const result = await register([], { env: { WEBHOOK_HEADER_KEY: 'va"l<ue&' } });
    expect(result.code).toBe(0);
    expect(dataverse.writes().map((request) => request.body)).toEqual([
      { authtype: 5, authvalue: '<settings><setting name="x-webhook-key" value="va&quot;l&lt;ue&amp;" /></settings>' },
    ]);
    expect(result.out).not.toContain('va"l<ue&');

    dataverse.reset();
    await register([], { env: { WEBHOOK_HEADER_KEY: 'va"l<ue&' } });
    expect(dataverse.writes()).toEqual([]);
  });

  it('fails before any write when a table or message does not exist, or the name belongs to another kind of endpoint', async () => {
    writeRegistration();
    // Names the app cannot know are wrong (prefixed: a custom table, a custom API) that this organization does not have.
    const typo = appHandlers({}, on({ name: 'typo', entity: 'new_acount', message: 'Update' }, noop));
    await expect(register(['--key', KEY], { handlers: typo })).rejects.toThrow(
      'Dataverse has no "Update" message for the table "new_acount": check the table\'s logical name',
    );
    const unknown = appHandlers({}, on({ name: 'frobnicate', entity: 'account', message: 'new_Frobnicate' }, noop));
    await expect(register(['--key', KEY], { handlers: unknown })).rejects.toThrow('Dataverse has no SDK message named "new_Frobnicate"');
    expect(dataverse.writes()).toEqual([]);

    dataverse.insert('serviceendpoints', { name: 'dataverse-webhooks', contract: 7 });
    await expect(register(['--key', KEY])).rejects.toThrow(
      'The service endpoint "dataverse-webhooks" is not a webhook (contract 7); it is left alone',
    );
    expect(dataverse.writes()).toEqual([]);
  });

  it('checks its arguments before any sign-in or request, on one line, and never repeats a key', async () => {
    writeRegistration({ url: undefined });
    const run = async (args: string[], env: NodeJS.ProcessEnv = { DATAVERSE_URL: dataverse.url }) => {
      const io = captureIO({ cwd: dir, env });
      const issued = tokens();
      const code = await main(['register', '--file', 'registration.json', ...args], io);
      return { code, err: io.err(), scopes: issued.scopes };
    };
    const before = dataverse.requests.length;
    for (const [args, expected, env] of [
      [['--url', 'http://func.example/api/x?code=SECRET-KEY', '--key', KEY, '--dry-run'], '--url must be an https URL'],
      [['--url', 'https://func.example/api/x?code=SECRET-KEY', '--dry-run'], '--url must not carry ?code='],
      [['--url', 'https://user:SECRET-KEY@func.example/api/x'], '--url must not carry a user name or password'],
      [
        ['--url', WEBHOOK_URL, '--org', 'contoso'],
        '--org: The organization "contoso" is not a host name: give it as https://<org>.crm.dynamics.com',
      ],
      [
        ['--url', WEBHOOK_URL, '--key-from-azure', '--subscription', 'sub-1'],
        '--key-from-azure needs --resource-group (or AZURE_RESOURCE_GROUP)',
      ],
      [['--url', WEBHOOK_URL, '--rotate-key'], '--rotate-key writes the function key: pass --key-from-azure, or --key'],
      [['--url', WEBHOOK_URL, '--key', 'a', '--key-from-azure'], 'Pass --key or --key-from-azure, not both'],
      [['--url', WEBHOOK_URL], 'Which organization? Pass --org https://<org>.crm.dynamics.com or set DATAVERSE_URL', {}],
      [['--dry-run'], 'The webhook URL is neither in'],
    ] as Array<[string[], string, NodeJS.ProcessEnv?]>) {
      const result = await run(args, env);
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.err, args.join(' ')).toContain(expected);
      expect(result.err.trimEnd().split('\n'), args.join(' ')).toHaveLength(1);
      expect(result.err).not.toContain('SECRET-KEY');
    }
    expect(dataverse.requests.length).toBe(before);
    expect(arm.requests).toEqual([]);
  });

  it('asks for the key only when it must write it', async () => {
    writeRegistration();
    await expect(register([])).rejects.toThrow(
      'The endpoint needs its function key (new endpoint, new auth type, or --rotate-key): pass --key-from-azure, or --key',
    );
    expect(dataverse.writes()).toEqual([]);
  });

  it('recovers from a failure half-way on the next run', async () => {
    writeRegistration();
    dataverse.fail({
      method: 'POST',
      path: 'sdkmessageprocessingstepimages',
      status: 400,
      body: { error: { code: '0x80040203', message: 'Invalid image attributes' } },
    });
    await expect(register(['--key', KEY])).rejects.toThrow(
      'POST sdkmessageprocessingstepimages failed: HTTP 400 0x80040203: Invalid image attributes',
    );
    expect(step(CREATE_STEP)).toBeDefined();
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
    writeRegistration();
    const result = await register(['--key', KEY, '--json']);
    const parsed = JSON.parse(result.out);
    expect(parsed.endpoint).toMatchObject({ name: 'dataverse-webhooks', action: 'create', id: String(endpoint().serviceendpointid) });
    expect(parsed.steps.map((outcome: { action: string; handlers: string[] }) => [outcome.action, outcome.handlers])).toEqual([
      ['create', ['new-accounts']],
      ['create', ['account-names', 'account-numbers']],
      ['create', ['contact-deletes']],
    ]);
    expect(parsed.writes[0].body.authvalue).toBe('***');
    expect(result.out).not.toContain(KEY);
  });
});

describe('register refuses columns the tables do not have', () => {
  const misspelt = () =>
    registryOf([
      // Cast: with a generated module (src/handlers/tables.generated.ts) these would not compile, which
      // is the point of typed tables; here the columns are checked where Dataverse is asked.
      on({ name: 'numbers', entity: 'account', message: 'Update', filteringAttributes: ['acountnumber'] } as HandlerOptions, noop),
      on(
        {
          name: 'names',
          entity: 'contact',
          message: 'Update',
          filteringAttributes: ['firstname'],
          images: { pre: { type: 'PreImage', columns: ['parentcustomeridname'] } },
        } as HandlerOptions,
        noop,
      ),
    ]);

  it('against the organization’s table definitions, after reading and before the first write', async () => {
    writeRegistration();
    await expect(register(['--key', KEY], { handlers: misspelt() })).rejects.toThrow(
      `handler numbers: filtering attribute "acountnumber" is not a column of account (did you mean "accountnumber"?); handler names: image "pre" column "parentcustomeridname" is not a column of contact (did you mean "parentcustomerid"?) (the table definitions of ${dataverse.url}); nothing was written`,
    );
    expect(dataverse.writes()).toEqual([]);
    expect(dataverse.violations).toEqual([]);
    // One read of each table's columns, with the properties that decide what a column is.
    expect(dataverse.requests.filter((request) => request.path.startsWith('EntityDefinitions')).map((request) => request.path)).toEqual([
      "EntityDefinitions(LogicalName='account')?$select=LogicalName&$expand=Attributes($select=LogicalName,AttributeType,AttributeTypeName,AttributeOf)",
      "EntityDefinitions(LogicalName='contact')?$select=LogicalName&$expand=Attributes($select=LogicalName,AttributeType,AttributeTypeName,AttributeOf)",
    ]);
    // A dry run refuses them too; and through main the error is one line and exit code 1.
    await expect(register(['--key', KEY, '--dry-run'], { handlers: misspelt() })).rejects.toThrow(/is not a column of account/);
    const { describeFailure } = await import('../../src/cli/main');
    const error = await register(['--key', KEY], { handlers: misspelt() }).catch((caught: unknown) => caught);
    expect(describeFailure(error, 'register', captureIO())).toEqual({
      line: expect.stringMatching(
        /^handler numbers: filtering attribute "acountnumber" is not a column of account .*; nothing was written$/,
      ),
      code: 1,
    });
  });

  it('with --plan, against the generated table module when there is one, still without a request', async () => {
    writeRegistration();
    const catalog = {
      account: {
        schemaName: 'Account',
        entitySetName: 'accounts',
        primaryIdAttribute: 'accountid',
        primaryNameAttribute: 'name',
        columns: { accountnumber: { type: 'String' as const } },
      },
      contact: {
        schemaName: 'Contact',
        entitySetName: 'contacts',
        primaryIdAttribute: 'contactid',
        primaryNameAttribute: 'fullname',
        columns: { firstname: { type: 'String' as const } },
      },
    };
    const io = captureIO({ cwd: dir, env: {} });
    const noNetwork = {
      tokens: () => {
        throw new Error('--plan must not sign in');
      },
    };
    const withModule = createRegisterCommand(noNetwork, misspelt(), () => ({
      tables: catalog,
      source: 'src/handlers/tables.generated.ts',
    }));
    await expect(withModule(['--file', 'registration.json', '--plan'], io)).rejects.toThrow(
      'handler numbers: filtering attribute "acountnumber" is not a column of account (did you mean "accountnumber"?); handler names: image "pre" column "parentcustomeridname" is not a column of contact (src/handlers/tables.generated.ts); nothing was written',
    );
    const correct = registryOf([
      on({ name: 'numbers', entity: 'account', message: 'Update', filteringAttributes: ['accountnumber'] }, noop),
    ]);
    expect(
      await createRegisterCommand(noNetwork, correct, () => ({ tables: catalog, source: 'src/handlers/tables.generated.ts' }))(
        ['--file', 'registration.json', '--plan'],
        io,
      ),
    ).toBe(0);
    expect(io.out()).toContain('Columns checked against src/handlers/tables.generated.ts.\n');
  });
});

/**
 * The declarations of the example handlers, written here: the engine's tests never depend on which
 * handlers src/handlers holds (a user deletes the examples; test/boundary.test.ts proves it).
 */
function exampleLikeHandlers() {
  const followed = ['firstname', 'lastname', 'emailaddress1', 'parentcustomerid'] as const;
  return registryOf([
    on(
      {
        name: 'contact-changes',
        entity: 'contact',
        message: 'Update',
        stage: 'PostOperation',
        mode: 'Asynchronous',
        filteringAttributes: followed,
        images: { pre: { type: 'PreImage', columns: followed } },
      },
      noop,
    ),
    on(
      {
        name: 'account-created',
        entity: 'account',
        message: 'Create',
        stage: 'PostOperation',
        perRecord: true,
        rereadTruncated: ['_ownerid_value'],
      },
      noop,
    ),
    decide({ name: 'credit-limit-on-create', entity: 'account', message: 'Create', stage: 'PreValidation' }, () => allow()),
    decide(
      {
        name: 'credit-limit-on-update',
        entity: 'account',
        message: 'Update',
        stage: 'PreValidation',
        filteringAttributes: ['creditlimit'],
      },
      () => allow(),
    ),
  ]);
}

describe('handlers like the examples', () => {
  it('are registered as declared: each gets the step and image aliases it reads, and nothing else', async () => {
    writeRegistration();
    const shippedHandlers = exampleLikeHandlers();
    const result = await register(['--key', KEY], { handlers: shippedHandlers });
    expect(result.code, result.err).toBe(0);
    expect(dataverse.violations).toEqual([]);

    const steps = dataverse.rows('sdkmessageprocessingsteps');
    expect(steps.map((row) => row.name).sort()).toEqual([
      'dataverse-webhooks: Create of account (PostOperation, Asynchronous)',
      'dataverse-webhooks: Create of account (PreValidation, Synchronous)',
      'dataverse-webhooks: Update of account (PreValidation, Synchronous)',
      'dataverse-webhooks: Update of contact (PostOperation, Asynchronous)',
    ]);
    // The credit-limit example decides inline: synchronous PreValidation steps, the Update one filtered on creditlimit.
    expect(steps.find((row) => row.name === 'dataverse-webhooks: Create of account (PreValidation, Synchronous)')).toMatchObject({
      stage: 10,
      mode: 0,
      description: expect.stringContaining('credit-limit-on-create'),
    });
    expect(steps.find((row) => row.name === 'dataverse-webhooks: Update of account (PreValidation, Synchronous)')).toMatchObject({
      stage: 10,
      mode: 0,
      filteringattributes: 'creditlimit',
    });
    for (const handler of shippedHandlers.all) {
      const { entity, messages, images } = handler.declaration;
      const [message] = messages;
      const registered = steps.find((row) => row._sdkmessagefilterid_value === filterId(message!, entity));
      expect(registered, handler.name).toBeDefined();
      expect(registered?.description).toContain(handler.name);
      // Every alias the handler reads (its declaration is what types ctx.preImage/ctx.changes) exists, with its columns.
      expect(
        imagesOf(registered!).map((image) => [image.entityalias, image.attributes]),
        handler.name,
      ).toEqual(images.map((image) => [image.alias, image.columns ? [...image.columns].sort().join(',') : null]));
    }
    const contactStep = steps.find((row) => row._sdkmessagefilterid_value === filterId('Update', 'contact'))!;
    expect(contactStep).toMatchObject({ stage: 40, mode: 1, filteringattributes: 'emailaddress1,firstname,lastname,parentcustomerid' });
    expect(imagesOf(contactStep).map((image) => [image.entityalias, image.imagetype])).toEqual([['pre', 0]]);
    expect(dataverse.rows('sdkmessageprocessingstepimages')).toHaveLength(1);
    // account-created declares Create alone: no CreateMultiple step, which would publish every account twice.
    expect(steps.some((row) => row._sdkmessageid_value === messageId('CreateMultiple'))).toBe(false);
  });
});
