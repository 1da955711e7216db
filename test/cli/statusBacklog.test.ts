import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main';
import { on } from '../../src/handlerApi';
import { registryOf } from '../../src/handlerApi/load';
import { recordingTelemetry } from '../../src/observability/telemetry';
import { emitBacklog, readBacklog } from '../../src/pipeline/backlog';
import { EVENTS_QUEUE, POISON_QUEUE } from '../../src/storage/names';
import { encodeQueueMessage } from '../../src/storage/queueMessages';
import { captureIO } from '../support/cliIO';
import { fixture } from '../support/fixtures';
import { useOwnAzurite } from '../support/ownAzurite';
import { ingest, processor } from '../support/processing';
import { isolatedStorage } from '../support/storage';

describe('the backlog (status, and the monitorBacklog metrics)', () => {
  it('counts the messages of queues it was given, dates the oldest, counts the poisoned events, and emits them as metrics', async () => {
    const storage = await isolatedStorage();
    const fresh = await readBacklog(storage);
    // A fresh account: no queue, no table, nothing waiting.
    expect(fresh).toEqual({
      events: { queue: storage.eventsQueue.name, length: 0, oldestInsertedOn: null, oldestAgeSeconds: 0 },
      poison: { queue: storage.poisonQueue.name, length: 0, oldestInsertedOn: null, oldestAgeSeconds: 0 },
      failures: 0,
    });

    const failing = registryOf([
      on({ name: 'fails', entity: '*', message: '*' }, () => {
        throw new Error('down');
      }),
    ]);
    await ingest(storage, fixture('08-').body);
    await processor(storage, failing).drain();
    const before = new Date();
    for (let index = 0; index < 3; index++) await ingest(storage, fixture('01-').body);
    await storage.poisonQueue.sendMessage(encodeQueueMessage({ not: 'an envelope' }));
    const later = new Date(Date.now() + 90_000);
    const backlog = await readBacklog(storage, later);
    expect(backlog.events.length).toBe(3);
    expect(backlog.poison.length).toBe(1);
    expect(backlog.failures).toBe(1);
    expect(new Date(backlog.events.oldestInsertedOn!).getTime()).toBeGreaterThanOrEqual(before.getTime() - 1_000);
    expect(backlog.events.oldestAgeSeconds).toBeGreaterThanOrEqual(89);
    expect(backlog.events.oldestAgeSeconds).toBeLessThan(120);

    const telemetry = recordingTelemetry();
    emitBacklog(backlog, telemetry);
    expect(telemetry.metrics).toEqual([
      { name: 'queueAgeSeconds', value: backlog.events.oldestAgeSeconds, properties: { queue: storage.eventsQueue.name } },
      { name: 'queueLength', value: 3, properties: { queue: storage.eventsQueue.name } },
      { name: 'queueAgeSeconds', value: backlog.poison.oldestAgeSeconds, properties: { queue: storage.poisonQueue.name } },
      { name: 'queueLength', value: 1, properties: { queue: storage.poisonQueue.name } },
      { name: 'failuresPending', value: 1, properties: {} },
    ]);
  });
});

/** status uses the app's real queue names, so this file has an Azurite of its own. */
describe('dataverse-webhooks status: the backlog', () => {
  const azurite = useOwnAzurite();

  it('on a fresh account (no queue, no table): nothing waits', async () => {
    const io = captureIO({ env: azurite.env() });
    expect(await main(['status'], io)).toBe(0);
    expect(io.out()).toBe(
      [
        'Backlog:',
        `  queue   ${EVENTS_QUEUE}: 0 message(s)`,
        `  poison  ${POISON_QUEUE}: 0 message(s)`,
        '  failures: 0 poisoned event(s) waiting for replay or resolve',
        '',
      ].join('\n'),
    );
  });

  it('shows what waits on a queue it filled, in text and --json, without Dataverse', async () => {
    const storage = azurite.storage();
    const before = Date.now();
    await storage.eventsQueue.createIfNotExists();
    for (let index = 0; index < 5; index++) await storage.eventsQueue.sendMessage(encodeQueueMessage({ index }));
    await storage.poisonQueue.createIfNotExists();
    await storage.poisonQueue.sendMessage(encodeQueueMessage({ poisoned: true }));
    const env = azurite.env();

    const json = captureIO({ env });
    expect(await main(['status', '--json'], json)).toBe(0);
    const { backlog } = JSON.parse(json.out()) as { backlog: Awaited<ReturnType<typeof readBacklog>> };
    expect(backlog).toMatchObject({ events: { queue: EVENTS_QUEUE, length: 5 }, poison: { queue: POISON_QUEUE, length: 1 }, failures: 0 });
    expect(new Date(backlog.events.oldestInsertedOn!).getTime()).toBeGreaterThanOrEqual(before - 1_000);
    expect(backlog.events.oldestAgeSeconds).toBeLessThan(60);

    const text = captureIO({ env });
    expect(await main(['status'], text)).toBe(0);
    expect(text.out()).toMatch(
      new RegExp(`^  queue   ${EVENTS_QUEUE}: 5 message\\(s\\), oldest visible enqueued \\S+ \\(\\d+ s ago\\)$`, 'm'),
    );
    expect(text.out()).toMatch(new RegExp(`^  poison  ${POISON_QUEUE}: 1 message\\(s\\), oldest visible enqueued `, 'm'));
  });
});
