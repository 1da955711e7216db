import { readFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { installFakeFunctionsHost, type FakeFunctionsHost } from '../support/functionsHost';

/**
 * The registrations as the Functions host receives them. The host, not our code, enforces the
 * auth level and reads the queue names, so a typo here would pass every handler test.
 */
describe('function registrations', () => {
  let host: FakeFunctionsHost;
  let names: typeof import('../../src/storage/names');
  let webhook: typeof import('../../src/functions/dataverseWebhook');

  beforeAll(async () => {
    host = installFakeFunctionsHost();
    await import('../../src/index');
    webhook = await import('../../src/functions/dataverseWebhook');
    await import('../../src/functions/processDataverseEvent');
    await import('../../src/functions/recordPoisonedEvent');
    names = await import('../../src/storage/names');
  });

  it('the webhook is POST-only behind a function key, on the documented route', () => {
    expect(host.trigger('dataverseWebhook')).toMatchObject({
      type: 'httpTrigger',
      authLevel: 'function',
      methods: ['POST'],
      route: 'dataverse/webhook',
    });
    expect(webhook.WEBHOOK_ROUTE).toBe('dataverse/webhook');
  });

  it('every other method on the route reaches the 405 answer without a key (the host would answer its own empty 401 first)', () => {
    const other = host.trigger('dataverseWebhookOtherMethods');
    expect(other).toMatchObject({ type: 'httpTrigger', authLevel: 'anonymous', route: 'dataverse/webhook' });
    expect(other.methods).not.toContain('POST');
    // Every method @azure/functions lets a function register (its HttpMethod type), but POST, and
    // but TRACE and CONNECT, which its HttpRequest cannot represent (undici refuses them).
    expect([...(other.methods as string[]), 'POST', 'TRACE', 'CONNECT'].sort()).toEqual(['CONNECT', 'DELETE', 'GET', 'HEAD', 'OPTIONS', 'PATCH', 'POST', 'PUT', 'TRACE']);
  });

  it('the processor reads the queue the webhook writes, on the host storage connection', () => {
    expect(host.trigger('processDataverseEvent')).toMatchObject({
      type: 'queueTrigger',
      queueName: names.EVENTS_QUEUE,
      connection: 'AzureWebJobsStorage',
    });
    expect(names.DEFAULT_STORAGE_NAMES.eventsQueue).toBe(names.EVENTS_QUEUE);
  });

  it('the poison recorder reads the queue the host moves failed messages to', () => {
    expect(host.trigger('recordPoisonedEvent')).toMatchObject({ type: 'queueTrigger', queueName: `${names.EVENTS_QUEUE}-poison`, connection: 'AzureWebJobsStorage' });
    expect(names.POISON_QUEUE).toBe(`${names.EVENTS_QUEUE}-poison`);
  });

  it('host.json decodes queue messages the way the app encodes them (a mismatch poisons every message)', async () => {
    const hostJson = JSON.parse(readFileSync(path.join(__dirname, '..', '..', 'host.json'), 'utf8')) as { extensions: { queues: { messageEncoding: string } } };
    const { QUEUE_MESSAGE_ENCODING, encodeQueueMessage } = await import('../../src/storage/queueMessages');
    expect(hostJson.extensions.queues.messageEncoding).toBe(QUEUE_MESSAGE_ENCODING);
    expect(Buffer.from(encodeQueueMessage({ a: 1 }), QUEUE_MESSAGE_ENCODING as BufferEncoding).toString('utf8')).toBe('{"a":1}');
  });

  it('host.json functionTimeout is the one the processor keeps within, and the ledger lease outlasts it', async () => {
    const hostJson = JSON.parse(readFileSync(path.join(__dirname, '..', '..', 'host.json'), 'utf8')) as { functionTimeout: string };
    const [hours, minutes, seconds] = hostJson.functionTimeout.split(':').map(Number);
    const functionTimeoutMs = ((hours! * 60 + minutes!) * 60 + seconds!) * 1000;
    const { FUNCTION_TIMEOUT_MS, INVOCATION_BUDGET_MS } = await import('../../src/hostConfig');
    const { readProcessSettings } = await import('../../src/settings');
    expect(FUNCTION_TIMEOUT_MS).toBe(functionTimeoutMs);
    expect(INVOCATION_BUDGET_MS).toBeLessThan(functionTimeoutMs);
    // The lease a unit holds outlasts the longest invocation, so no other processor can take over a unit that is still running.
    expect(readProcessSettings({}).leaseMs).toBeGreaterThanOrEqual(functionTimeoutMs);
  });

  it('the app checks its settings once as it starts, naming each bad one and never its value', async () => {
    expect(host.hooks['appStart']).toHaveLength(1);
    expect(host.hooks['appTerminate']).toHaveLength(1);
    const { reportSettingProblems } = await import('../../src/index');
    const lines: string[] = [];
    expect(reportSettingProblems({ PROCESSOR_LEASE_SECONDS: 'ten-minutes', DATAVERSE_URL: '' }, (line) => lines.push(line))).toHaveLength(1);
    expect(lines).toEqual([expect.stringMatching(/^dataverse-webhooks: invalid app setting PROCESSOR_LEASE_SECONDS: /)]);
    expect(lines.join()).not.toContain('ten-minutes');
    expect(reportSettingProblems({}, (line) => lines.push(line))).toEqual([]);
  });

  it('no function declares an output binding the handlers would have to set', () => {
    for (const fn of host.functions) {
      const outputs = Object.values(fn.bindings).filter((binding) => binding.direction === 'out' && binding.type !== 'http');
      expect(outputs, fn.name).toEqual([]);
    }
  });
});
