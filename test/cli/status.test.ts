import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main';
import { createRegisterCommand } from '../../src/cli/register';
import { createStatusCommand } from '../../src/cli/status';
import { webhookUrl } from '../../src/functionNames';
import { allow, decide, on } from '../../src/handlerApi';
import { registryOf } from '../../src/handlerApi/load';
import { captureIO } from '../support/cliIO';
import { type FakeDataverse, startFakeDataverse } from '../support/fakeDataverse';
import { freePorts } from '../support/ports';
import { useTempDirs } from '../support/tempDirs';
import { scopedTokens } from '../support/tokens';

/** Handlers declared like the examples, here: the engine's tests never depend on which handlers src/handlers holds. */
const followed = ['firstname', 'lastname', 'emailaddress1', 'parentcustomerid'] as const;
const shippedHandlers = registryOf([
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
    () => undefined,
  ),
  on({ name: 'account-created', entity: 'account', message: 'Create', stage: 'PostOperation', perRecord: true }, () => undefined),
  decide({ name: 'credit-limit-on-create', entity: 'account', message: 'Create', stage: 'PreValidation' }, () => allow()),
  decide(
    { name: 'credit-limit-on-update', entity: 'account', message: 'Update', stage: 'PreValidation', filteringAttributes: ['creditlimit'] },
    () => allow(),
  ),
]);

let dataverse: FakeDataverse;
const tempDir = useTempDirs();
/** A folder without a registration file: status lists, and does not compare. */
let elsewhere: string;

beforeEach(async () => {
  dataverse = await startFakeDataverse();
  elsewhere = tempDir('status-');
});
afterEach(() => dataverse.close());

const connection = () => {
  const tokens = scopedTokens({ [`${dataverse.url}/.default`]: dataverse.token });
  return { tokens: () => tokens, sleep: async () => {} };
};

async function status(args: string[], cwd = elsewhere) {
  const io = captureIO({ env: { DATAVERSE_URL: dataverse.url }, cwd });
  const code = await createStatusCommand(connection(), shippedHandlers)(args, io);
  return { code, out: io.out() };
}

function seed() {
  dataverse.seedMessages(['Update'], ['account']);
  const updateId = String(dataverse.rows('sdkmessages')[0]?.sdkmessageid);
  const hook = dataverse.insert('serviceendpoints', {
    name: 'dataverse-webhooks',
    contract: 8,
    url: webhookUrl('https://func.azurewebsites.net'),
    authtype: 4,
    authvalue: 'never-shown',
  });
  const other = dataverse.insert('serviceendpoints', { name: 'another hook', contract: 8, url: 'https://other.example/hook', authtype: 5 });
  dataverse.insert('serviceendpoints', { name: 'a queue', contract: 2, url: null });
  const step = dataverse.insert('sdkmessageprocessingsteps', {
    name: 'dataverse-webhooks: Update of account',
    stage: 40,
    mode: 1,
    rank: 1,
    asyncautodelete: true,
    filteringattributes: 'name,accountnumber',
    statecode: 0,
    _eventhandler_value: hook,
    _sdkmessageid_value: updateId,
  });
  const disabled = dataverse.insert('sdkmessageprocessingsteps', {
    name: 'sync step',
    stage: 20,
    mode: 0,
    rank: 2,
    statecode: 1,
    _eventhandler_value: other,
    _sdkmessageid_value: updateId,
  });
  dataverse.insert('sdkmessageprocessingstepimages', {
    name: 'pre',
    entityalias: 'pre',
    imagetype: 0,
    attributes: 'name',
    messagepropertyname: 'Target',
    _sdkmessageprocessingstepid_value: step,
  });
  dataverse.insert('asyncoperations', {
    name: 'older failure',
    statuscode: 31,
    errorcode: -2147204723,
    friendlymessage: 'The webhook call failed\nbecause of HTTP 503',
    completedon: '2026-11-24T10:00:00Z',
    _owningextensionid_value: step,
  });
  dataverse.insert('asyncoperations', {
    name: 'newer failure',
    statuscode: 31,
    errorcode: -2147204723,
    message: 'HTTP 401',
    completedon: '2026-11-25T09:00:00Z',
    _owningextensionid_value: step,
  });
  dataverse.insert('asyncoperations', {
    name: 'succeeded',
    statuscode: 30,
    completedon: '2026-11-25T09:30:00Z',
    _owningextensionid_value: step,
  });
  dataverse.insert('asyncoperations', {
    name: 'failure of another step',
    statuscode: 31,
    completedon: '2026-11-25T09:30:00Z',
    _owningextensionid_value: disabled,
  });
  return { hook, step };
}

describe('dataverse-webhooks status', () => {
  it('lists the webhook endpoints, their steps and images, and each step’s failed jobs, newest first', async () => {
    const { hook, step } = seed();
    const result = await status([]);
    expect(result.code).toBe(0);
    expect(dataverse.violations).toEqual([]);
    expect(result.out).toBe(
      [
        `Webhook endpoints in ${dataverse.url}:`,
        '',
        `another hook  (HttpHeader, id ${dataverse.rows('serviceendpoints')[1]?.serviceendpointid})`,
        '  url: https://other.example/hook',
        `  step "sync step" (disabled): PreOperation, Synchronous, rank 2`,
        `    id ${dataverse.rows('sdkmessageprocessingsteps')[1]?.sdkmessageprocessingstepid}`,
        '    failed jobs: 1',
        '      2026-11-25T09:30:00Z  error ?',
        '',
        `dataverse-webhooks  (WebhookKey, id ${hook})`,
        `  url: ${webhookUrl('https://func.azurewebsites.net')}`,
        '  step "dataverse-webhooks: Update of account": PostOperation, Asynchronous, rank 1, deletes succeeded jobs',
        `    id ${step}; filtering attributes: name,accountnumber`,
        '    image "pre": PreImage, attributes name',
        '    failed jobs: 2',
        '      2026-11-25T09:00:00Z  error -2147204723  HTTP 401',
        '      2026-11-24T10:00:00Z  error -2147204723  The webhook call failed because of HTTP 503',
        '',
        "Drift not checked: no registration/webhook.json here (run status in the app's folder, or pass --file).",
        '',
        'Backlog not read: No storage connection: set AzureWebJobsStorage, or run this in the app folder (local.settings.json)',
        '',
      ].join('\n'),
    );
    expect(result.out).not.toContain('never-shown');
    expect(result.out).not.toContain('a queue');
    const jobQueries = dataverse.requests.filter((request) => request.path.startsWith('asyncoperations'));
    expect(jobQueries.map((request) => request.path)).toContain(
      `asyncoperations?$select=asyncoperationid,name,errorcode,friendlymessage,message,completedon&$filter=statuscode eq 31 and _owningextensionid_value eq ${step}&$orderby=completedon desc&$top=5`,
    );
  });

  it('narrows to one endpoint with --name, limits the failed jobs with --failed, and prints JSON with --json', async () => {
    const { hook } = seed();
    const result = await status(['--name', 'dataverse-webhooks', '--failed', '1', '--json']);
    const parsed = JSON.parse(result.out);
    expect(parsed.endpoints).toHaveLength(1);
    expect(parsed.endpoints[0]).toMatchObject({ id: hook, name: 'dataverse-webhooks', authType: 'WebhookKey' });
    expect(parsed.endpoints[0].steps[0].failedJobs.map((job: { name: string }) => job.name)).toEqual(['newer failure']);
    expect(parsed.endpoints[0].steps[0].images).toEqual([{ alias: 'pre', type: 'PreImage', attributes: 'name' }]);
    expect(parsed.drift).toBeNull();
  });

  it('says so when there is no webhook', async () => {
    const result = await status([]);
    expect(result.out.split('\n')[0]).toBe(`No webhook endpoints (serviceendpoints with contract 8) in ${dataverse.url}.`);
  });

  it("reports the drift between the handlers and the app's endpoint, and none once registered", async () => {
    const app = tempDir('status-app-');
    mkdirSync(path.join(app, 'registration'));
    writeFileSync(
      path.join(app, 'registration', 'webhook.json'),
      JSON.stringify({ endpoint: { name: 'dataverse-webhooks', auth: { type: 'WebhookKey' } } }),
    );
    dataverse.seedMessages(['Create', 'Update', 'Delete'], ['account', 'contact']);

    expect((await status([], app)).out).toContain(
      'Drift between the handlers and the endpoint "dataverse-webhooks":\n  the endpoint does not exist: "register" creates it',
    );

    const register = await createRegisterCommand(connection(), shippedHandlers)(
      ['--url', webhookUrl('https://func.example'), '--key', 'k'],
      captureIO({ env: { DATAVERSE_URL: dataverse.url }, cwd: app }),
    );
    expect(register).toBe(0);
    expect((await status(['--failed', '0'], app)).out).toContain(
      'Drift between the handlers and the endpoint "dataverse-webhooks":\n  none: every step the handlers declare is registered as declared, and no other\n',
    );

    // Someone deletes the account step and the contact step's image, and adds a step by hand.
    const steps = dataverse.rows('sdkmessageprocessingsteps');
    const accountStep = steps.find((row) => String(row.name).includes('Create of account'))!;
    const contactStep = steps.find((row) => String(row.name).includes('Update of contact'))!;
    await fetch(`${dataverse.url}/api/data/v9.2/sdkmessageprocessingsteps(${String(accountStep.sdkmessageprocessingstepid)})`, {
      method: 'DELETE',
      headers: {
        Authorization: `Bearer ${dataverse.token}`,
        'OData-MaxVersion': '4.0',
        'OData-Version': '4.0',
        Accept: 'application/json',
      },
    });
    const image = dataverse.rows('sdkmessageprocessingstepimages')[0]!;
    await fetch(`${dataverse.url}/api/data/v9.2/sdkmessageprocessingstepimages(${String(image.sdkmessageprocessingstepimageid)})`, {
      method: 'DELETE',
      headers: {
        Authorization: `Bearer ${dataverse.token}`,
        'OData-MaxVersion': '4.0',
        'OData-Version': '4.0',
        Accept: 'application/json',
      },
    });
    dataverse.insert('sdkmessageprocessingsteps', {
      ...contactStep,
      sdkmessageprocessingstepid: undefined,
      name: 'added by hand',
      stage: 20,
      mode: 0,
    });

    const drift = await status(['--failed', '0'], app);
    expect(drift.out).toContain(
      [
        'Drift between the handlers and the endpoint "dataverse-webhooks":',
        '  step "dataverse-webhooks: Update of contact (PostOperation, Asynchronous)" for contact-changes: not as declared; "register" would update it (image "pre" added)',
        '  handler account-created: no step registered ("register" creates "dataverse-webhooks: Create of account (PostOperation, Asynchronous)")',
        '  step "added by hand": no handler declares it ("register --prune" deletes it)',
        '',
      ].join('\n'),
    );
    const json = JSON.parse((await status(['--json', '--failed', '0'], app)).out);
    expect(json.drift.differences.map((difference: { action: string; name: string }) => difference.action)).toEqual([
      'update',
      'create',
      'keep',
    ]);
  });

  it('is wired into the CLI: usage errors exit 2 before any credential is used', async () => {
    // Without an organization, status is the backlog alone: when it cannot be read, it says why
    // (here: no storage connection) and exits 1, rather than ask for an organization.
    const noOrg = captureIO({ env: {}, cwd: tempDir('no-settings-') });
    expect(await main(['status'], noOrg)).toBe(1);
    expect(noOrg.out()).toBe('');
    expect(noOrg.err()).toMatch(/^Backlog not read: [^\n]+\n$/);
    expect(noOrg.err()).not.toContain('organization');
    // Azurite stopped: nothing listens at the connection string's ports.
    const [closed] = await freePorts(1);
    const stopped = captureIO({
      env: {
        AzureWebJobsStorage: `DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:${closed}/devstoreaccount1;QueueEndpoint=http://127.0.0.1:${closed}/devstoreaccount1;TableEndpoint=http://127.0.0.1:${closed}/devstoreaccount1;`,
      },
      cwd: tempDir('no-settings-'),
    });
    expect(await main(['status'], stopped)).toBe(1);
    expect(stopped.err()).toMatch(/^Backlog not read: [^\n]+\n$/);
    expect(stopped.err()).not.toContain('organization');
    const bareName = captureIO({ env: { DATAVERSE_URL: 'contoso' } });
    expect(await main(['status'], bareName)).toBe(2);
    expect(bareName.err()).toBe(
      'DATAVERSE_URL: The organization "contoso" is not a host name: give it as https://<org>.crm.dynamics.com (Power Apps: Settings > Session details > Instance url) (see "dataverse-webhooks status --help")\n',
    );
    const badCount = captureIO({ env: {} });
    expect(await main(['status', '--failed', 'many'], badCount)).toBe(2);
    const repositoryFile = captureIO({ cwd: path.resolve(__dirname, '..', '..'), env: {} });
    expect(await main(['register'], repositoryFile)).toBe(2);
    expect(repositoryFile.err()).toContain('The webhook URL is neither in');
    const help = captureIO();
    expect(await main(['register', '--help'], help)).toBe(0);
    expect(help.out()).toContain('--key-from-azure');
    const list = captureIO();
    expect(await main([], list)).toBe(2);
    expect(list.out()).toMatch(/register\s+Creates or updates the Dataverse webhook/);
    expect(list.out()).toMatch(/status\s+Lists the webhook endpoints/);
  });
});
