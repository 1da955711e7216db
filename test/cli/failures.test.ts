import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main';
import { on } from '../../src/handlerApi';
import { registryOf } from '../../src/handlerApi/load';
import type { StorageClients } from '../../src/storage/clients';
import { captureIO } from '../support/cliIO';
import { fixture } from '../support/fixtures';
import { useOwnAzurite } from '../support/ownAzurite';
import { ingest, processor } from '../support/processing';
import { drainQueue } from '../support/storage';

describe('dataverse-webhooks failures and replay on a fresh storage account', () => {
  const azurite = useOwnAzurite();

  it('failures says there are none and exits 0; replay says there is nothing to replay', async () => {
    const env = azurite.env();
    const listed = captureIO({ env });
    expect(await main(['failures'], listed)).toBe(0);
    expect(listed.err()).toBe('No poisoned events.\n');
    expect(listed.out()).toBe('');
    const json = captureIO({ env });
    expect(await main(['failures', '--json'], json)).toBe(0);
    expect(JSON.parse(json.out())).toEqual([]);
    const replayed = captureIO({ env });
    expect(await main(['replay', '--all'], replayed)).toBe(0);
    expect(replayed.err()).toBe('No poisoned events to replay.\n');
  });
});

describe('dataverse-webhooks failures and replay, with poisoned messages nobody recorded', () => {
  const azurite = useOwnAzurite();

  it('lists an event still sitting in the poison queue once, with one that was recorded, and replays it', async () => {
    const storage = azurite.storage();
    const env = azurite.env();
    // One event poisoned and recorded as usual; a second one the host moved to the poison queue
    // while the recording function was not running (the host writes the message as it was).
    const recorded = await ingest(storage, fixture('08-').body);
    await processor(
      storage,
      registryOf([
        on({ name: 'fails', entity: '*', message: '*' }, () => {
          throw new Error('down');
        }),
      ]),
    ).drain();
    const unrecorded = await ingest(storage, fixture('01-').body);
    const [message] = (await storage.eventsQueue.receiveMessages()).receivedMessageItems;
    await storage.poisonQueue.sendMessage(message!.messageText);
    await storage.eventsQueue.deleteMessage(message!.messageId, message!.popReceipt);

    const listed = captureIO({ env });
    expect(await main(['failures'], listed)).toBe(0);
    expect(
      listed
        .out()
        .trim()
        .split('\n')
        .map((line) => line.split('  ')[0])
        .sort(),
    ).toEqual([recorded, unrecorded].sort());
    const again = captureIO({ env });
    await main(['failures'], again);
    expect(again.out()).toBe(listed.out());

    const replayed = captureIO({ env });
    expect(await main(['replay', unrecorded], replayed)).toBe(0);
    const queued = (await drainQueue(storage.eventsQueue)) as Array<{ eventId: string; replays: number }>;
    expect(queued.map((queuedMessage) => [queuedMessage.eventId, queuedMessage.replays])).toEqual([[unrecorded, 1]]);
  });
});

/** The commands use the app's real names, so this file has an Azurite of its own. */
describe('dataverse-webhooks failures and replay', () => {
  const azurite = useOwnAzurite();
  let storage: StorageClients;
  const eventIds: string[] = [];

  beforeAll(async () => {
    storage = azurite.storage();
    const failing = registryOf([
      on({ name: 'always-fails', entity: '*', message: '*' }, () => {
        throw new Error('CRM sync API answered 500');
      }),
    ]);
    eventIds.push(await ingest(storage, fixture('08-').body));
    eventIds.push(await ingest(storage, fixture('01-').body));
    await processor(storage, failing).drain();
  });

  const env = () => azurite.env();

  it('lists each poisoned event on a line that starts with its eventId', async () => {
    const io = captureIO({ env: env() });
    expect(await main(['failures'], io)).toBe(0);
    const lines = io.out().trim().split('\n');
    expect(lines.map((line) => line.split('  ')[0]).sort()).toEqual([...eventIds].sort());
    const account = lines.find((line) => line.startsWith(eventIds[0]!))!;
    expect(account).toContain('account  Update  ec4e2f7d-9d60-e811-a95a-000d3af24950  attempts=3');
    expect(account).toContain('always-fails: Error: CRM sync API answered 500');
  });

  it('--json gives the records to machines; the connection can come from local.settings.json', async () => {
    const folder = mkdtempSync(path.join(tmpdir(), 'dvw-'));
    writeFileSync(
      path.join(folder, 'local.settings.json'),
      JSON.stringify({ IsEncrypted: false, Values: { AzureWebJobsStorage: azurite.connectionString } }),
    );
    const io = captureIO({ env: {}, cwd: folder });
    expect(await main(['failures', '--json'], io)).toBe(0);
    const records = JSON.parse(io.out()) as Array<{ eventId: string; state: string }>;
    expect(records.map((record) => record.eventId).sort()).toEqual([...eventIds].sort());
    expect(records.every((record) => record.state === 'poisoned')).toBe(true);
  });

  it('says what is missing when there is no storage connection', async () => {
    const io = captureIO({ env: {}, cwd: mkdtempSync(path.join(tmpdir(), 'dvw-')) });
    expect(await main(['failures'], io)).toBe(1);
    expect(io.err()).toContain('No storage connection: set AzureWebJobsStorage');
  });

  it('replay moves the named event back to the main queue, and refuses unknown ids with exit 1', async () => {
    const io = captureIO({ env: env() });
    expect(await main(['replay', eventIds[0]!, 'not-an-event'], io)).toBe(1);
    expect(io.out()).toBe(`${eventIds[0]}  replayed\n`);
    expect(io.err()).toContain('not-an-event  not replayed: no such poisoned event');
    const queued = (await drainQueue(storage.eventsQueue)) as Array<{ eventId: string; replays: number }>;
    expect(queued.map((message) => [message.eventId, message.replays])).toEqual([[eventIds[0], 1]]);

    const listed = captureIO({ env: env() });
    await main(['failures'], listed);
    expect(
      listed
        .out()
        .trim()
        .split('\n')
        .map((line) => line.split('  ')[0]),
    ).toEqual([eventIds[1]]);
  });

  it('replay --all takes the rest; replay without ids is a usage error', async () => {
    const usage = captureIO({ env: env() });
    expect(await main(['replay'], usage)).toBe(2);
    const io = captureIO({ env: env() });
    expect(await main(['replay', '--all'], io)).toBe(0);
    expect(io.out()).toBe(`${eventIds[1]}  replayed\n`);
    const empty = captureIO({ env: env() });
    expect(await main(['failures'], empty)).toBe(0);
    expect(empty.out()).toBe('');
    expect(empty.err()).toBe('No poisoned events.\n');
  });
});

describe('dataverse-webhooks failures resolve', () => {
  const azurite = useOwnAzurite();

  it('takes the named events off the list for good, refuses unknown and settled ones with exit 1, and --all still shows them', async () => {
    const storage = azurite.storage();
    const env = azurite.env();
    const failing = registryOf([
      on({ name: 'fails', entity: '*', message: '*' }, () => {
        throw new Error('down');
      }),
    ]);
    const [resolved, kept] = [await ingest(storage, fixture('08-').body), await ingest(storage, fixture('01-').body)];
    await processor(storage, failing).drain();

    const io = captureIO({ env });
    expect(await main(['failures', 'resolve', resolved, 'not-an-event'], io)).toBe(1);
    expect(io.out()).toBe(`${resolved}  resolved\n`);
    expect(io.err()).toBe('not-an-event  not resolved: no such poisoned event\n');
    const again = captureIO({ env });
    expect(await main(['failures', 'resolve', resolved], again)).toBe(1);
    expect(again.err()).toBe(`${resolved}  not resolved: already resolved\n`);

    const listed = captureIO({ env });
    expect(await main(['failures'], listed)).toBe(0);
    expect(
      listed
        .out()
        .trim()
        .split('\n')
        .map((line) => line.split('  ')[0]),
    ).toEqual([kept]);
    const all = captureIO({ env });
    expect(await main(['failures', '--all'], all)).toBe(0);
    expect(all.out()).toMatch(new RegExp(`^${resolved}  .*  resolved  `, 'm'));
    const replay = captureIO({ env });
    expect(await main(['replay', resolved], replay)).toBe(1);
    expect(replay.err()).toContain(`${resolved}  not replayed: already resolved`);

    const usage = captureIO({ env });
    expect(await main(['failures', 'resolve'], usage)).toBe(2);
  });
});
