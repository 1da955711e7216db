import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main';
import { createSendCommand } from '../../src/cli/send';
import { fileWebhookRequest, generatedWebhookRequest, truncated } from '../../src/cli/webhookRequest';
import { type Entity, parseDataverseWebhookOrThrow, TRUNCATED_PROPERTIES } from '../../src/dataverse';
import { webhookUrl } from '../../src/functionNames';
import { on } from '../../src/handlerApi';
import { HandlerLoadError, registryOf } from '../../src/handlerApi/load';
import { type EventEnvelope, parseEnvelope } from '../../src/pipeline/envelope';
import type { StorageClients } from '../../src/storage/clients';
import { captureIO } from '../support/cliIO';
import { capturedFixtures, fixture, SAMPLES_DIR } from '../support/fixtures';
import { type IngestServer, startIngestServer } from '../support/ingestServer';
import { drainQueue, isolatedStorage } from '../support/storage';

function parse(request: { body: string; headers: Record<string, string> }) {
  return parseDataverseWebhookOrThrow({ body: request.body, headers: request.headers });
}

describe('generated webhook requests parse exactly like real ones', () => {
  it('a synchronous PreOperation Create with a column of every supported type', () => {
    const id = randomUUID();
    const ownerId = randomUUID();
    const request = generatedWebhookRequest({
      entity: 'contact',
      message: 'Create',
      ids: [id],
      stage: 'PreOperation',
      mode: 'sync',
      organization: 'fabrikam.crm4.dynamics.com',
      attributes: [
        'firstname=Ann=Marie',
        'numberofchildren:int=2',
        'creditlimit:money=1500.5',
        'exchangerate:decimal=1.25',
        'donotemail:bool=true',
        'gendercode:choice=2',
        'birthdate:date=1990-05-17T00:00:00Z',
        `parentcustomerid:lookup=account/${ownerId}`,
        'description:null=',
      ],
    });
    const event = parse(request);
    expect(event).toMatchObject({
      messageName: 'Create',
      primaryEntityName: 'contact',
      primaryEntityId: id,
      stage: 20,
      stageName: 'PreOperation',
      mode: 'Synchronous',
      depth: 1,
      organizationName: 'fabrikam',
      truncated: false,
      removedProperties: [],
      headers: { organization: 'fabrikam.crm4.dynamics.com', entityName: 'contact', requestName: 'Create' },
    });
    expect(event.headers.correlationRequestId).toMatch(/^[0-9a-f-]{36}$/);
    // The create has not happened yet in PreOperation: no output.
    expect(event.outputParameters).toEqual({});
    const target = event.target as Entity;
    expect(target.$type).toBe('Entity');
    expect({ ...target.attributes }).toEqual({
      contactid: id,
      firstname: 'Ann=Marie',
      numberofchildren: 2,
      creditlimit: { $type: 'Money', value: 1500.5 },
      exchangerate: 1.25,
      donotemail: true,
      gendercode: { $type: 'OptionSetValue', value: 2 },
      birthdate: new Date('1990-05-17T00:00:00Z'),
      parentcustomerid: { $type: 'EntityReference', logicalName: 'account', id: ownerId, name: null, keyAttributes: {}, rowVersion: null },
      description: null,
    });
    expect(request.headers['content-type']).toBe('application/json');
  });

  it('an asynchronous Update by default, and a Delete whose Target is a reference', () => {
    const update = parse(generatedWebhookRequest({ entity: 'account', message: 'Update' }));
    expect(update).toMatchObject({
      stage: 40,
      mode: 'Asynchronous',
      headers: { organization: 'contoso.crm.dynamics.com', requestName: 'Update' },
    });
    const id = randomUUID();
    const deleted = parse(generatedWebhookRequest({ entity: 'account', message: 'Delete', ids: [id] }));
    expect(deleted.target).toMatchObject({ $type: 'EntityReference', logicalName: 'account', id });
  });

  it('a mode that follows the stage: synchronous before PostOperation, asynchronous in it', () => {
    expect(parse(generatedWebhookRequest({ entity: 'account', message: 'Update', stage: '20' }))).toMatchObject({
      stage: 20,
      mode: 'Synchronous',
    });
    expect(parse(generatedWebhookRequest({ entity: 'account', message: 'Update', stage: 'PreValidation' }))).toMatchObject({
      stage: 10,
      mode: 'Synchronous',
    });
    expect(parse(generatedWebhookRequest({ entity: 'account', message: 'Update', stage: '40', mode: 'sync' }))).toMatchObject({
      stage: 40,
      mode: 'Synchronous',
    });
  });

  it('pre- and post-images under the aliases given, with typed columns', () => {
    const id = randomUUID();
    const event = parse(
      generatedWebhookRequest({
        entity: 'contact',
        message: 'Update',
        ids: [id],
        attributes: ['lastname=Glynn-Smith'],
        preImages: ['pre:lastname=Glynn', 'pre:creditlimit:money=10', 'names:firstname=James'],
        postImages: ['post:lastname=Glynn-Smith'],
      }),
    );
    expect(Object.keys(event.preEntityImages).sort()).toEqual(['names', 'pre']);
    expect({ ...event.preEntityImages['pre']?.attributes }).toEqual({ lastname: 'Glynn', creditlimit: { $type: 'Money', value: 10 } });
    expect(event.preEntityImages['pre']).toMatchObject({ logicalName: 'contact', id });
    expect({ ...event.postEntityImages['post']?.attributes }).toEqual({ lastname: 'Glynn-Smith' });
  });

  it('a CreateMultiple with Targets as an EntityCollection and the created Ids in its output; an UpdateMultiple without', () => {
    const ids = [randomUUID(), randomUUID(), randomUUID()];
    const created = parse(generatedWebhookRequest({ entity: 'account', message: 'CreateMultiple', ids, attributes: ['name=Contoso'] }));
    const targets = created.inputParameters['Targets'];
    expect(targets).toMatchObject({ $type: 'EntityCollection', entityName: 'account', moreRecords: false });
    expect(
      (targets as { entities: Entity[] }).entities.map((entity) => [
        entity.logicalName,
        entity.id,
        entity.attributes['name'],
        entity.attributes['accountid'],
      ]),
    ).toEqual(ids.map((id) => ['account', id, 'Contoso', id]));
    expect(created.outputParameters).toEqual({ Ids: ids });
    expect(created.target).toBeNull();
    const updated = parse(generatedWebhookRequest({ entity: 'account', message: 'UpdateMultiple', records: 4 }));
    expect((updated.inputParameters['Targets'] as { entities: Entity[] }).entities).toHaveLength(4);
    expect(updated.outputParameters).toEqual({});
  });

  it('a truncated one lacks the four properties and says so, as above 256 KB', () => {
    const event = parse(truncated(generatedWebhookRequest({ entity: 'account', message: 'Update', attributes: ['name=Contoso'] })));
    expect(event.truncated).toBe(true);
    expect([...event.removedProperties].sort()).toEqual([...TRUNCATED_PROPERTIES].sort());
    expect(event.target).toBeNull();
  });

  it('a fixture file keeps its bytes and gets headers from its own fields', () => {
    for (const fixture of capturedFixtures()) {
      const request = fileWebhookRequest(fixture.body);
      expect(request.body).toBe(fixture.body.toString('utf8'));
      const event = parse(request);
      expect(event.headers.entityName).toBe(event.primaryEntityName);
      expect(event.headers.requestName).toBe(event.messageName);
    }
  });

  it('refuses what Dataverse would never send, on one line, before sending anything', async () => {
    for (const args of [
      ['--mode', 'async', '--stage', '20'],
      ['--stage', '30'],
      ['--id', 'not-a-guid'],
      ['--attribute', 'age:int=old'],
      ['--attribute', 'x:color=red'],
      ['--message', 'Delete', '--attribute', 'name=x'],
      ['--message', 'Create', '--pre-image', 'pre:name=x'],
      ['--message', 'Delete', '--post-image', 'post:name=x'],
      ['--message', 'Update', '--stage', '20', '--post-image', 'post:name=x'],
      ['--message', 'CreateMultiple', '--post-image', 'post:name=x'],
      ['--message', 'Update', '--pre-image', 'name=x'],
      ['--message', 'Update', '--records', '3'],
      ['--message', 'Update', '--id', randomUUID(), '--id', randomUUID()],
      ['--message', 'CreateMultiple', '--records', 'many'],
      [path.join(SAMPLES_DIR, '03-shko_allfields-create-sync-postop-alltypes.json'), '--entity', 'account'],
    ]) {
      const io = captureIO();
      expect(await main(['send', '--url', 'http://127.0.0.1:9/unused', ...args], io), args.join(' ')).toBe(2);
      expect(io.err(), args.join(' ')).toMatch(/^[^\n]+ \(see "dataverse-webhooks send --help"\)\n$/);
    }
  });

  it('refuses a URL with a user name or password, and never prints it', async () => {
    for (const url of [webhookUrl('http://user:hunter2@localhost:7071'), 'not a url hunter2']) {
      const io = captureIO();
      expect(await main(['send', '--url', url], io)).toBe(2);
      expect(io.err()).not.toContain('hunter2');
      expect(io.err().split('\n')).toHaveLength(2);
    }
  });
});

describe('dataverse-webhooks send', () => {
  let storage: StorageClients;
  let app: IngestServer;
  beforeAll(async () => {
    storage = await isolatedStorage();
    app = await startIngestServer(storage, {
      requiredHeaders: [{ name: 'x-webhook-key', values: ['header-secret'] }],
      requiredQuery: [{ name: 'tenant', values: ['contoso'] }],
    });
  });
  afterAll(async () => {
    await app?.close();
  });

  const credentials = ['--header', 'x-webhook-key: header-secret', '--query', 'tenant=contoso'];
  // send reads the app's handlers to say what became of an event; these tests declare their own.
  const takesAll = registryOf([{ all: on({ name: 'all', entity: '*', message: '*' }, () => undefined) }], []);
  const contactUpdates = registryOf([{ changes: on({ name: 'changes', entity: 'contact', message: 'Update' }, () => undefined) }], []);

  async function sendAndDequeue(args: string[]): Promise<{ envelope: EventEnvelope; out: string }> {
    const io = captureIO();
    const code = await createSendCommand(takesAll)(['--url', app.url, ...credentials, ...args], io);
    expect(code, io.err()).toBe(0);
    const [message, ...rest] = await drainQueue(storage.eventsQueue);
    expect(rest).toEqual([]);
    const envelope = parseEnvelope(message);
    expect(io.out()).toMatch(new RegExp(`^202 Accepted  eventId ${envelope.eventId}  latency \\d+ ms\\n$`));
    return { envelope, out: io.out() };
  }

  it('posts a fixture file as it is, with the Dataverse headers, and the event lands on the queue', async () => {
    const file = path.join(SAMPLES_DIR, '08-account-update-sync-postop-2018-legacy.json');
    const { envelope } = await sendAndDequeue([file, '--code', 'function-key']);
    const { body } = fixture('08-');
    const original = parseDataverseWebhookOrThrow({ body, headers: {} });
    expect(envelope.body).toEqual({ inline: body.toString('utf8') });
    expect(envelope.summary).toMatchObject({
      primaryEntityId: original.primaryEntityId,
      messageName: 'Update',
      primaryEntityName: 'account',
    });
    expect(envelope.headers).toMatchObject({ 'x-ms-dynamics-entity-name': 'account', 'x-ms-dynamics-request-name': 'Update' });
    expect(envelope.headers['x-ms-correlation-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(envelope.headers['x-webhook-key']).toBeUndefined();
    expect(app.urls.at(-1)?.searchParams.get('code')).toBe('function-key');
  });

  it('posts a generated, truncated event that the app sees as truncated', async () => {
    const id = randomUUID();
    const { envelope } = await sendAndDequeue(['--entity', 'contact', '--message', 'Create', '--id', id, '--mode', 'sync', '--truncated']);
    expect(envelope.truncated).toBe(true);
    expect(envelope.summary).toMatchObject({
      primaryEntityName: 'contact',
      primaryEntityId: id,
      messageName: 'Create',
      mode: 'Synchronous',
    });
    expect(envelope.headers['x-ms-dynamics-msg-size-exceeded']).toBe('true');
  });

  it('exits 1 and says why on a non-2xx: missing credentials, a body that is not a context', async () => {
    const noCredentials = captureIO();
    expect(await main(['send', '--url', app.url], noCredentials)).toBe(1);
    expect(noCredentials.err()).toMatch(/^401 Unauthorized {2}eventId [0-9a-f-]{36} {2}latency \d+ ms\nunauthorized: /);
    expect(noCredentials.out()).toBe('');

    const invalid = captureIO({ stdin: '{"MessageName": 42, "secret": "do-not-print"}' });
    expect(await main(['send', '-', '--url', app.url, ...credentials], invalid)).toBe(1);
    expect(invalid.err()).toMatch(/^400 Bad Request/);
    expect(invalid.err()).toContain('$.MessageName');
    expect(invalid.err()).not.toContain('do-not-print');
    expect(await drainQueue(storage.eventsQueue)).toEqual([]);
  });

  it('says in one line when no handler took the event, naming the closest table or message the handlers take', async () => {
    const send = createSendCommand(contactUpdates);
    const plan = '(register --plan lists the steps the handlers take)';
    for (const [args, hint] of [
      [
        ['--entity', 'contcat', '--message', 'Update'],
        `Update of contcat (PostOperation, Asynchronous): the app acknowledged it and ran nothing. Did you mean --entity contact? ${plan}`,
      ],
      [
        ['--entity', 'contact', '--message', 'Updte'],
        `Updte of contact (PostOperation, Asynchronous): the app acknowledged it and ran nothing. Did you mean --message Update? ${plan}`,
      ],
      [
        ['--entity', 'contact', '--message', 'Create'],
        `Create of contact (PostOperation, Asynchronous): the app acknowledged it and ran nothing. Its handlers take another table, message, stage, mode or column: register --plan lists the steps the handlers take`,
      ],
    ] as const) {
      const io = captureIO();
      expect(await send(['--url', app.url, ...credentials, ...args], io), io.err()).toBe(0);
      expect(io.out()).toMatch(
        new RegExp(
          `^202 Accepted {2}eventId [0-9a-f-]{36} {2}latency \\d+ ms\\nNo handler takes ${hint.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\n$`,
        ),
      );
    }
    const taken = captureIO();
    expect(await send(['--url', app.url, ...credentials, '--entity', 'contact', '--message', 'Update'], taken)).toBe(0);
    expect(taken.out()).toMatch(/^202 Accepted {2}eventId [0-9a-f-]{36} {2}latency \d+ ms\n$/);
    await drainQueue(storage.eventsQueue);
  });

  it('prints the headline and each issue of a 400 once, as the app said them', async () => {
    for (const [stdin, issue] of [
      ['{"MessageName": "Update",', '$: unexpected input at character 25'],
      ['{"MessageName": oops}', '$: a character JSON does not allow there (the parser names no position)'],
    ]) {
      const io = captureIO({ stdin });
      expect(await createSendCommand(takesAll)(['-', '--url', app.url, ...credentials], io)).toBe(1);
      expect(io.err()).toMatch(/^400 Bad Request {2}eventId [0-9a-f-]{36} {2}latency \d+ ms\n/);
      expect(io.err().split('\n').slice(1)).toEqual(['invalid-json: The body is not valid JSON', `  ${issue}`, '']);
    }
  });

  it('exits 1 with a clear message when nothing listens at the URL, and never prints the key', async () => {
    const closed = await startIngestServer(storage, {});
    await closed.close();
    const io = captureIO();
    expect(await main(['send', '--url', closed.url, '--code', 'very-secret-key'], io)).toBe(1);
    expect(io.err()).toBe(`Could not reach ${closed.url}: connection refused\nIs the app running? Start it with "npm start".\n`);
  });

  it('names the handler and the reason when the app answers 503 because its handlers do not load', async () => {
    // The answer of src/functions/dataverseWebhook.ts while the handlers do not load.
    const misconfigured = createServer((_request, response) => {
      response.writeHead(503, { 'content-type': 'application/json', 'retry-after': '10' });
      response.end(JSON.stringify({ error: 'handlers-invalid', message: 'The receiver is misconfigured; try again later' }));
    });
    await new Promise<void>((resolve) => misconfigured.listen(0, '127.0.0.1', resolve));
    const url = webhookUrl(`http://127.0.0.1:${(misconfigured.address() as AddressInfo).port}`);
    const line =
      "The app's handlers do not load: src/handlers/early.ts: handler early-async: Dataverse runs asynchronous steps only in PostOperation";
    try {
      const io = captureIO();
      const send = createSendCommand(() => {
        throw new HandlerLoadError(line);
      });
      expect(await send(['--url', url], io)).toBe(1);
      expect(io.err()).toMatch(
        new RegExp(`^503 Service Unavailable {2}eventId - {2}latency \\d+ ms\\n${line.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\n$`),
      );
    } finally {
      await new Promise<void>((resolve) => misconfigured.close(() => resolve()));
    }
  });

  it("reports an answer that is not the app's JSON, and gives up after --timeout", async () => {
    const sockets = new Set<import('node:net').Socket>();
    const other = createServer((request, response) => {
      if (request.url?.startsWith('/slow')) return; // never answers
      response.writeHead(500, { 'content-type': 'text/plain' });
      response.end('Internal error with no JSON');
    });
    other.on('connection', (socket) => sockets.add(socket));
    await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(other.address() as AddressInfo).port}`;
    try {
      const failed = captureIO();
      expect(await main(['send', '--url', `${base}/api`], failed)).toBe(1);
      expect(failed.err()).toMatch(/^500 Internal Server Error {2}eventId - {2}latency \d+ ms\n$/);

      const slow = captureIO();
      expect(await main(['send', '--url', `${base}/slow`, '--timeout', '0.2'], slow)).toBe(1);
      expect(slow.err()).toBe(`Could not reach ${base}/slow: no answer within 0.2 s\nIs the app running? Start it with "npm start".\n`);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => other.close(() => resolve()));
    }
  });
});
