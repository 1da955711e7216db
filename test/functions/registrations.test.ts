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

  it('other methods on the route also need the key, and only they reach the 405 answer', () => {
    const other = host.trigger('dataverseWebhookOtherMethods');
    expect(other).toMatchObject({ type: 'httpTrigger', authLevel: 'function', route: 'dataverse/webhook' });
    expect(other.methods).not.toContain('POST');
    expect(other.methods).toEqual(expect.arrayContaining(['GET', 'PUT', 'PATCH', 'DELETE']));
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

  it('no function declares an output binding the handlers would have to set', () => {
    for (const fn of host.functions) {
      const outputs = Object.values(fn.bindings).filter((binding) => binding.direction === 'out' && binding.type !== 'http');
      expect(outputs, fn.name).toEqual([]);
    }
  });
});
