import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startAzurite } from '../../devhost/azurite';
import { parseDataverseWebhookOrThrow } from '../../src/dataverse';
import { largeCreateMultiple } from '../../src/dataverse/samplePayloads';
import type { EventLog, LogProperties } from '../../src/observability/log';
import { type AcceptDependencies, acceptWebhook, type IncomingWebhook } from '../../src/pipeline/accept';
import { parseEnvelope } from '../../src/pipeline/envelope';
import { loadEvent } from '../../src/pipeline/loadEvent';
import { type IngestSettings, readIngestSettings, SettingsError } from '../../src/settings';
import { createStorageClients, type StorageClients } from '../../src/storage/clients';
import { allRealPayloads, fixture, truncatedDocsSample } from '../support/fixtures';
import { dataverseHeaders, FUNCTION_URL } from '../support/requests';
import { blobNames, drainQueue, isolatedStorage } from '../support/storage';

function incoming(
  body: Buffer | string,
  options: { method?: string; headers?: Record<string, string>; query?: string } = {},
): IncomingWebhook {
  const headers = new Headers(options.headers ?? dataverseHeaders());
  if (!headers.has('content-length')) headers.set('content-length', String(Buffer.byteLength(body)));
  return {
    method: options.method ?? 'POST',
    url: `${FUNCTION_URL}${options.query ?? '?code=function-key'}`,
    headers,
    body: async () => Buffer.from(body),
  };
}

interface RecordingLog extends EventLog {
  lines: Array<{ level: string; message: string; properties?: LogProperties }>;
  text(): string;
}

function recordingLog(): RecordingLog {
  const lines: RecordingLog['lines'] = [];
  const record = (level: string) => (message: string, properties?: LogProperties) =>
    lines.push({ level, message, ...(properties ? { properties } : {}) });
  return { lines, info: record('info'), warn: record('warn'), error: record('error'), text: () => JSON.stringify(lines) };
}

function deps(
  storage: StorageClients,
  settings: Partial<IngestSettings> = {},
  log = recordingLog(),
): AcceptDependencies & { log: RecordingLog } {
  return { settings: { ...readIngestSettings({}), ...settings }, storage, log };
}

describe('accepting a webhook', () => {
  let storage: StorageClients;
  beforeAll(async () => {
    storage = await isolatedStorage();
  });

  it.each(allRealPayloads().map((payload) => [payload.name, payload] as const))(
    '%s: 202 with an eventId, once the envelope is on the queue, and it rebuilds the same event',
    async (_, payload) => {
      const result = await acceptWebhook(incoming(payload.body), deps(storage));
      expect(result.response.status).toBe(202);
      expect(result.response.jsonBody).toEqual({ eventId: result.eventId, status: 'accepted' });

      const [message, ...rest] = await drainQueue(storage.eventsQueue);
      expect(rest).toEqual([]);
      const envelope = parseEnvelope(message);
      expect(envelope.eventId).toBe(result.eventId);
      expect('inline' in envelope.body).toBe(true);
      expect(envelope.headers['x-ms-dynamics-organization']).toBe('contoso.crm.dynamics.com');
      expect(envelope.headers['content-type']).toBeUndefined();
      const original = parseDataverseWebhookOrThrow({ body: payload.body, headers: new Headers(dataverseHeaders()) });
      expect(envelope.summary).toMatchObject({
        messageName: original.messageName,
        primaryEntityId: original.primaryEntityId,
        correlationId: original.correlationId,
      });
      const rebuilt = await loadEvent(envelope, storage.payloads);
      expect(JSON.stringify(rebuilt)).toBe(JSON.stringify(original));
    },
  );

  it('puts a 300 KB body in Blob storage and enqueues a claim check that rebuilds it', async () => {
    const body = Buffer.from(largeCreateMultiple(300 * 1024));
    const result = await acceptWebhook(incoming(body), deps(storage));
    expect(result.response.status).toBe(202);
    const [message] = await drainQueue(storage.eventsQueue);
    const envelope = parseEnvelope(message);
    expect('blob' in envelope.body && envelope.body.blob).toMatchObject({ container: storage.payloads.containerName, size: body.length });
    expect(await blobNames(storage.payloads)).toContain(`${result.eventId}.json`);
    const rebuilt = await loadEvent(envelope, storage.payloads);
    expect(JSON.stringify(rebuilt)).toBe(JSON.stringify(parseDataverseWebhookOrThrow({ body, headers: new Headers(dataverseHeaders()) })));
  });

  it('a large body that is refused leaves no claim-check blob behind, and the rejected copy is kept', async () => {
    const valid = JSON.parse(largeCreateMultiple(300 * 1024)) as Record<string, unknown>;
    delete valid.MessageName;
    const body = Buffer.from(JSON.stringify(valid));
    const result = await acceptWebhook(incoming(body), deps(storage));
    expect(result.response.status).toBe(400);
    expect((await blobNames(storage.rejected)).some((name) => name.endsWith(`${result.eventId}.json`))).toBe(true);
    await vi.waitFor(async () => expect(await blobNames(storage.payloads)).not.toContain(`${result.eventId}.json`), { timeout: 5_000 });
    expect(await drainQueue(storage.eventsQueue)).toEqual([]);
  });

  it('flags a truncated event and keeps the header for the processor', async () => {
    const result = await acceptWebhook(
      incoming(truncatedDocsSample(), { headers: dataverseHeaders({ 'x-ms-dynamics-msg-size-exceeded': 'true' }) }),
      deps(storage),
    );
    expect(result.response.status).toBe(202);
    const envelope = parseEnvelope((await drainQueue(storage.eventsQueue))[0]);
    expect(envelope.truncated).toBe(true);
    expect((await loadEvent(envelope, storage.payloads)).truncated).toBe(true);
  });

  it('logs identifiers, never payload values', async () => {
    const log = recordingLog();
    const result = await acceptWebhook(incoming(fixture('use-webhooks.md').body), deps(storage, {}, log));
    await drainQueue(storage.eventsQueue);
    expect(log.lines).toHaveLength(1);
    expect(log.lines[0]).toMatchObject({
      level: 'info',
      message: 'Webhook accepted',
      properties: { eventId: result.eventId, correlationId: 'b374239d-4233-41a9-8b17-a86cb4f737b5', table: 'contact', message: 'Update' },
    });
    expect(log.text()).not.toContain('James');
  });
});

describe('requests that are not ours to take', () => {
  let storage: StorageClients;
  beforeAll(async () => {
    storage = await isolatedStorage();
  });

  async function expectNothingStored(): Promise<void> {
    expect(await drainQueue(storage.eventsQueue)).toEqual([]);
    expect(await blobNames(storage.rejected)).toEqual([]);
  }

  it('405 with Allow: POST for other methods', async () => {
    const result = await acceptWebhook(incoming('', { method: 'GET' }), deps(storage));
    expect(result.response).toMatchObject({ status: 405, headers: { Allow: 'POST' } });
    await expectNothingStored();
  });

  it('invalid app settings: 503 with Retry-After, so Dataverse tries again, and nothing is read or stored', async () => {
    let read = false;
    const request = {
      ...incoming(fixture('08-').body),
      body: async () => {
        read = true;
        return Buffer.alloc(0);
      },
    };
    const invalid = new SettingsError(['WEBHOOK_MAX_BODY_BYTES: Invalid input: expected number, received NaN']);
    const result = await acceptWebhook(request, { ...deps(storage), settings: invalid });
    expect(result.response).toMatchObject({ status: 503, headers: { 'Retry-After': '1' }, jsonBody: { error: 'settings-invalid' } });
    // The answer names no setting and no value: the full report is in the start-up log.
    expect(JSON.stringify(result.response)).not.toContain('WEBHOOK_MAX_BODY_BYTES');
    expect(read).toBe(false);
    await expectNothingStored();
  });

  it('HttpHeader registration: 401 without the header or with a wrong value; either rotated value passes', async () => {
    const settings = readIngestSettings({ WEBHOOK_REQUIRED_HEADERS: '{"x-webhook-key": ["old-secret", "new-secret"]}' });
    const body = fixture('08-').body;
    expect((await acceptWebhook(incoming(body), deps(storage, settings))).response.status).toBe(401);
    expect(
      (await acceptWebhook(incoming(body, { headers: dataverseHeaders({ 'x-webhook-key': 'guess' }) }), deps(storage, settings))).response
        .status,
    ).toBe(401);
    await expectNothingStored();
    for (const secret of ['old-secret', 'new-secret']) {
      const accepted = await acceptWebhook(
        incoming(body, { headers: dataverseHeaders({ 'X-Webhook-Key': secret }) }),
        deps(storage, settings),
      );
      expect(accepted.response.status).toBe(202);
    }
    const envelopes = (await drainQueue(storage.eventsQueue)).map(parseEnvelope);
    expect(envelopes).toHaveLength(2);
    expect(envelopes.every((envelope) => !('x-webhook-key' in envelope.headers))).toBe(true);
  });

  it('HttpQueryString registration: 401 unless every configured parameter matches', async () => {
    const settings = readIngestSettings({ WEBHOOK_REQUIRED_QUERY: '{"tenant": "contoso", "key": ["k1", "k2"]}' });
    const body = fixture('08-').body;
    expect((await acceptWebhook(incoming(body, { query: '?tenant=contoso' }), deps(storage, settings))).response.status).toBe(401);
    expect((await acceptWebhook(incoming(body, { query: '?tenant=fabrikam&key=k1' }), deps(storage, settings))).response.status).toBe(401);
    await expectNothingStored();
    expect((await acceptWebhook(incoming(body, { query: '?tenant=contoso&key=k2' }), deps(storage, settings))).response.status).toBe(202);
    expect(await drainQueue(storage.eventsQueue)).toHaveLength(1);
  });

  it('403 for an organization outside the allow-list, by header, id or name', async () => {
    const body = fixture('08-').body; // OrganizationId b0714265-…, OrganizationName org94971a24
    const refused = await acceptWebhook(
      incoming(body),
      deps(storage, readIngestSettings({ WEBHOOK_ALLOWED_ORGANIZATIONS: 'fabrikam.crm.dynamics.com' })),
    );
    expect(refused.response.status).toBe(403);
    await expectNothingStored();
    for (const allowed of ['Contoso.crm.dynamics.com', 'b0714265-8e72-4d3b-8239-ecf0970a3da6', 'org94971a24']) {
      const settings = readIngestSettings({ WEBHOOK_ALLOWED_ORGANIZATIONS: `fabrikam.crm.dynamics.com, ${allowed}` });
      expect((await acceptWebhook(incoming(body), deps(storage, settings))).response.status).toBe(202);
    }
    expect(await drainQueue(storage.eventsQueue)).toHaveLength(3);
  });

  it('413 above the maximum body size, by Content-Length or by the bytes read', async () => {
    const settings = { maxBodyBytes: 1000 };
    const body = fixture('08-').body;
    expect((await acceptWebhook(incoming(body), deps(storage, settings))).response.status).toBe(413);
    const lying = incoming(body, { headers: dataverseHeaders({ 'content-length': '10' }) });
    expect((await acceptWebhook(lying, deps(storage, settings))).response.status).toBe(413);
    await expectNothingStored();
  });
});

describe('a body that is not a usable execution context', () => {
  it('400 with the failing paths, and the body is kept (bounded) for inspection', async () => {
    const storage = await isolatedStorage();
    const body = JSON.stringify({ MessageName: 'Update', Secret: 'Jane Doe', padding: 'x'.repeat(5000) });
    const result = await acceptWebhook(incoming(body), deps(storage, { rejectedMaxBytes: 1024 }));
    expect(result.response.status).toBe(400);
    expect(result.response.jsonBody).toMatchObject({
      eventId: result.eventId,
      error: 'invalid-context',
      issues: expect.arrayContaining([{ path: '$.PrimaryEntityName', message: expect.any(String) }]),
    });
    expect(JSON.stringify(result.response.jsonBody)).not.toContain('Jane Doe');
    expect(await drainQueue(storage.eventsQueue)).toEqual([]);
    const kept = (await blobNames(storage.rejected)).find((name) => name.endsWith(`${result.eventId}.json`));
    expect(kept).toBeDefined();
    const stored = await storage.rejected.getBlobClient(kept!).downloadToBuffer();
    expect(stored.length).toBe(1024);
    expect(stored.toString()).toBe(body.slice(0, 1024));
  });
});

describe('on a storage account where nothing exists yet', () => {
  it('the first requests, all at once, are accepted: the queue, the containers are created as they are needed', async () => {
    const storage = await isolatedStorage();
    const bodies = [
      ...allRealPayloads().map((payload) => payload.body),
      Buffer.from(largeCreateMultiple(300 * 1024)),
      Buffer.from('{"not":"a context"}'),
    ];
    const results = await Promise.all(bodies.map((body) => acceptWebhook(incoming(body), deps(storage))));
    expect(results.map((result) => result.response.status)).toEqual([202, 202, 202, 202, 202, 202, 400]);
    expect(await drainQueue(storage.eventsQueue)).toHaveLength(6);
    expect(await blobNames(storage.payloads)).toHaveLength(1);
    expect(await blobNames(storage.rejected)).toHaveLength(1);
  });
});

describe('when storage cannot be written', () => {
  it('503 within the deadline when Azurite is down, for accepted and rejected bodies alike', async () => {
    const azurite = await startAzurite();
    const storage = createStorageClients(azurite.connectionString, { retry: { maxTries: 1, tryTimeoutMs: 1000 } });
    await azurite.stop();
    for (const body of [fixture('08-').body, Buffer.from('{"not":"a context"}')]) {
      const started = Date.now();
      const result = await acceptWebhook(incoming(body), deps(storage, { storageDeadlineMs: 2000 }));
      expect(result.response.status).toBe(503);
      expect(result.response.headers).toEqual({ 'Retry-After': '1' });
      expect(Date.now() - started).toBeLessThan(2500);
    }
  });

  describe('a storage endpoint that accepts connections and never answers', () => {
    let hung: Server;
    let port: number;
    const sockets = new Set<Socket>();
    beforeAll(async () => {
      hung = createServer((socket) => sockets.add(socket));
      await new Promise<void>((resolve) => hung.listen(0, '127.0.0.1', resolve));
      port = (hung.address() as { port: number }).port;
    });
    afterAll(
      () =>
        new Promise<void>((resolve) => {
          for (const socket of sockets) socket.destroy();
          hung.close(() => resolve());
        }),
    );

    it('becomes a 503 at the deadline, not a Dataverse timeout', async () => {
      const connectionString = `DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=${Buffer.from('k').toString('base64')};QueueEndpoint=http://127.0.0.1:${port}/devstoreaccount1;BlobEndpoint=http://127.0.0.1:${port}/devstoreaccount1;TableEndpoint=http://127.0.0.1:${port}/devstoreaccount1`;
      const storage = createStorageClients(connectionString);
      const log = recordingLog();
      const started = Date.now();
      const result = await acceptWebhook(incoming(fixture('08-').body), deps(storage, { storageDeadlineMs: 1500 }, log));
      const elapsed = Date.now() - started;
      expect(result.response.status).toBe(503);
      expect(elapsed).toBeGreaterThanOrEqual(1400);
      expect(elapsed).toBeLessThan(3000);
      expect(log.lines.at(-1)).toMatchObject({ level: 'error', properties: { reason: expect.stringMatching(/Deadline/) } });
    });
  });
});
