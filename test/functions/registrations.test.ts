import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FunctionsWorker, type RpcBindingInfo } from '../../src/local/functionsCore';

const ROOT = path.join(__dirname, '..', '..');

interface RegisteredFunction {
  name: string;
  bindings: Array<RpcBindingInfo & { name: string; type: string }>;
}

/**
 * The registrations as the Functions host receives them: the built app loaded the way the Node
 * worker loads it (package.json main, through the local host's real @azure/functions-core), and
 * each function's `rawBindings`, which is what the host reads. The host, not our code, enforces
 * the auth level and reads the queue names, so a typo here would pass every handler test.
 */
describe('function registrations', () => {
  const worker = new FunctionsWorker({ log: () => undefined });
  let functions: RegisteredFunction[];
  let names: typeof import('../../src/storage/names');
  let webhook: typeof import('../../src/functions/dataverseWebhook');
  const host = {
    byName(name: string): RegisteredFunction {
      const found = functions.find((candidate) => candidate.name === name);
      if (!found) throw new Error(`no function registered as ${name}; registered: ${functions.map((f) => f.name).join(', ')}`);
      return found;
    },
    trigger(name: string): RpcBindingInfo & { name: string; type: string } {
      const found = this.byName(name).bindings.find((binding) => binding.direction === 'in' && binding.type.endsWith('Trigger'));
      if (!found) throw new Error(`${name} has no trigger binding`);
      return found;
    },
  };

  beforeAll(async () => {
    worker.install();
    await worker.startApp(ROOT);
    functions = (await worker.indexFunctions()).functions.map((fn) => ({
      name: fn.name,
      bindings: fn.rawBindings.map((raw) => JSON.parse(raw) as RpcBindingInfo & { name: string; type: string }),
    }));
    // The module the worker loaded (importing the source again would register its functions twice).
    webhook = createRequire(__filename)(path.join(ROOT, 'dist', 'src', 'functions', 'dataverseWebhook.js')) as typeof webhook;
    names = await import('../../src/storage/names');
  });
  afterAll(() => worker.uninstall());

  it('package.json main loads every function file, and nothing else registers one', () => {
    expect(functions.map((fn) => fn.name).sort()).toEqual(['dataverseWebhook', 'dataverseWebhookOtherMethods', 'processDataverseEvent', 'recordPoisonedEvent']);
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
    for (const fn of functions) {
      const outputs = fn.bindings.filter((binding) => binding.direction === 'out' && binding.type !== 'http');
      expect(outputs, fn.name).toEqual([]);
    }
  });
});
