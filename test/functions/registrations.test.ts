import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FunctionsWorker, type RpcBindingInfo } from '../../devhost/functionsCore';
import { readHostJson } from '../../devhost/hostJson';
import { FUNCTION_NAMES, HTTP_ROUTE_PREFIX, WEBHOOK_ROUTE } from '../../src/functionNames';

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

  /** What the app wrote to stderr while the worker started it, with one setting made invalid. */
  const startupErrors: string[] = [];

  beforeAll(async () => {
    worker.install();
    // Started as the worker starts it (entry points, then the appStart hooks), with a bad setting.
    const write = process.stderr.write;
    process.env.PROCESSOR_LEASE_SECONDS = 'ten-minutes';
    process.stderr.write = ((chunk: string | Uint8Array) => startupErrors.push(String(chunk)) > 0) as typeof process.stderr.write;
    try {
      await worker.startApp(ROOT);
    } finally {
      process.stderr.write = write;
      delete process.env.PROCESSOR_LEASE_SECONDS;
    }
    functions = (await worker.indexFunctions()).functions.map((fn) => ({
      name: fn.name,
      bindings: fn.rawBindings.map((raw) => JSON.parse(raw) as RpcBindingInfo & { name: string; type: string }),
    }));
    names = await import('../../src/storage/names');
  });
  afterAll(() => worker.uninstall());

  it('package.json main loads every function file, and nothing else registers one', () => {
    expect(functions.map((fn) => fn.name).sort()).toEqual(Object.values(FUNCTION_NAMES).sort());
  });

  it('reconciliation looks every minute (a run is due RECONCILE_INTERVAL after the last) and its pages are read from the queue the run writes', () => {
    expect(host.trigger(FUNCTION_NAMES.reconcile)).toMatchObject({
      type: 'timerTrigger',
      schedule: '0 * * * * *',
      runOnStartup: false,
      useMonitor: true,
    });
    expect(host.trigger(FUNCTION_NAMES.queueReconciledChanges)).toMatchObject({
      type: 'queueTrigger',
      queueName: names.RECONCILE_QUEUE,
      connection: names.STORAGE_CONNECTION,
    });
    expect(names.DEFAULT_STORAGE_NAMES.reconcileQueue).toBe(names.RECONCILE_QUEUE);
  });

  it('retention runs hourly and the backlog every minute, on timers the host schedules (NCRONTAB with seconds) and keeps a status for', async () => {
    expect(host.trigger(FUNCTION_NAMES.applyRetention)).toMatchObject({
      type: 'timerTrigger',
      schedule: '0 17 * * * *',
      runOnStartup: false,
      useMonitor: true,
    });
    expect(host.trigger(FUNCTION_NAMES.monitorBacklog)).toMatchObject({
      type: 'timerTrigger',
      schedule: '0 * * * * *',
      runOnStartup: false,
      useMonitor: true,
    });
    // The schedules the local host runs are the ones registered (devhost/timerSchedule.ts reads them as the host does).
    const { parseSchedule } = await import('../../devhost/timerSchedule');
    const at = new Date(2026, 11, 4, 18, 16, 59, 500);
    expect(parseSchedule('0 17 * * * *').next(at)).toEqual(new Date(2026, 11, 4, 18, 17, 0));
    expect(parseSchedule('0 * * * * *').next(at)).toEqual(new Date(2026, 11, 4, 18, 17, 0));
  });

  it('the webhook is POST-only behind a function key, on the documented route', () => {
    expect(host.trigger(FUNCTION_NAMES.webhook)).toMatchObject({
      type: 'httpTrigger',
      authLevel: 'function',
      methods: ['POST'],
      route: WEBHOOK_ROUTE,
    });
    // The route prefix the app's URLs assume is the one the host applies to this host.json.
    expect(readHostJson(ROOT).routePrefix).toBe(HTTP_ROUTE_PREFIX);
  });

  it('every other method on the route reaches the 405 answer without a key (the host would answer its own empty 401 first)', () => {
    const other = host.trigger(FUNCTION_NAMES.webhookOtherMethods);
    expect(other).toMatchObject({ type: 'httpTrigger', authLevel: 'anonymous', route: WEBHOOK_ROUTE });
    expect(other.methods).not.toContain('POST');
    // Every method @azure/functions lets a function register (its HttpMethod type), but POST, and
    // but TRACE and CONNECT, which its HttpRequest cannot represent (undici refuses them).
    expect([...(other.methods as string[]), 'POST', 'TRACE', 'CONNECT'].sort()).toEqual([
      'CONNECT',
      'DELETE',
      'GET',
      'HEAD',
      'OPTIONS',
      'PATCH',
      'POST',
      'PUT',
      'TRACE',
    ]);
  });

  it('the processor reads the queue the webhook writes, on the host storage connection', () => {
    expect(host.trigger(FUNCTION_NAMES.processEvent)).toMatchObject({
      type: 'queueTrigger',
      queueName: names.EVENTS_QUEUE,
      connection: names.STORAGE_CONNECTION,
    });
    expect(names.DEFAULT_STORAGE_NAMES.eventsQueue).toBe(names.EVENTS_QUEUE);
    // The host's own storage setting: what it keeps its leases and keys in, and what the Bicep writes.
    expect(names.STORAGE_CONNECTION).toBe('AzureWebJobsStorage');
  });

  it('the poison recorder reads the queue the host moves failed messages to', () => {
    expect(host.trigger(FUNCTION_NAMES.recordPoisonedEvent)).toMatchObject({
      type: 'queueTrigger',
      queueName: `${names.EVENTS_QUEUE}-poison`,
      connection: names.STORAGE_CONNECTION,
    });
    expect(names.POISON_QUEUE).toBe(`${names.EVENTS_QUEUE}-poison`);
  });

  it('host.json decodes queue messages the way the app encodes them (a mismatch poisons every message)', async () => {
    const hostJson = JSON.parse(readFileSync(path.join(__dirname, '..', '..', 'host.json'), 'utf8')) as {
      extensions: { queues: { messageEncoding: string } };
    };
    const { QUEUE_MESSAGE_ENCODING, encodeQueueMessage } = await import('../../src/storage/queueMessages');
    expect(hostJson.extensions.queues.messageEncoding).toBe(QUEUE_MESSAGE_ENCODING);
    expect(Buffer.from(encodeQueueMessage({ a: 1 }), QUEUE_MESSAGE_ENCODING as BufferEncoding).toString('utf8')).toBe('{"a":1}');
  });

  it('host.json functionTimeout is the one the processor keeps within, and maxDequeueCount the one the ledger holds attempts to', async () => {
    // host.json read as the host reads it (devhost/hostJson.ts).
    const hostJson = readHostJson(ROOT);
    const functionTimeoutMs = hostJson.functionTimeoutMs;
    expect(functionTimeoutMs).not.toBeNull();
    const { FUNCTION_TIMEOUT_MS, INVOCATION_BUDGET_MS, MAX_DEQUEUE_COUNT, maxDequeueCount } = await import('../../src/hostConfig');
    expect(FUNCTION_TIMEOUT_MS).toBe(functionTimeoutMs);
    expect(INVOCATION_BUDGET_MS).toBeLessThan(functionTimeoutMs!);
    expect(MAX_DEQUEUE_COUNT).toBe(hostJson.queues.maxDequeueCount);
    // The app setting that overrides host.json for the host overrides it for the processor too.
    const env = { AzureFunctionsJobHost__extensions__queues__maxDequeueCount: '2' };
    expect(maxDequeueCount(env)).toBe(readHostJson(ROOT, { env }).queues.maxDequeueCount);
    expect(maxDequeueCount({})).toBe(MAX_DEQUEUE_COUNT);
  });

  it('the app checks its settings once as it starts (its appStart hook), naming each bad one and never its value', () => {
    const reported = startupErrors.filter((line) => line.startsWith('dataverse-webhooks: invalid app setting'));
    expect(reported).toEqual([expect.stringMatching(/^dataverse-webhooks: invalid app setting PROCESSOR_LEASE_SECONDS: /)]);
    expect(startupErrors.join()).not.toContain('ten-minutes');
  });

  it('no function declares an output binding the handlers would have to set', () => {
    for (const fn of functions) {
      const outputs = fn.bindings.filter((binding) => binding.direction === 'out' && binding.type !== 'http');
      expect(outputs, fn.name).toEqual([]);
    }
  });
});
