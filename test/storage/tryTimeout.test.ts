import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Ledger } from '../../src/pipeline/ledger/ledger';
import type { StorageClients } from '../../src/storage/clients';
import { MIN_UPLOAD_BYTES_PER_SECOND, tryTimeoutMs } from '../../src/storage/tryTimeout';
import { type FaultyStorage, faultyStorage } from '../support/faultyProxy';
import { isolatedStorage } from '../support/storage';

/**
 * Each storage request's try has a timeout (src/storage/tryTimeout.ts): on a connection that hangs
 * (the proxy swallows the request, as a dead network path does), the try is given up and sent again
 * on a new connection, within the timeout, instead of waiting on the operating system forever.
 */
const TRY_MS = 1_000;

/** What a pending write came to within `ms`: its result, or that it was still waiting (a hang). */
async function within<T>(ms: number, work: Promise<T>): Promise<T | 'still waiting'> {
  return Promise.race([work, sleep(ms).then(() => 'still waiting' as const)]);
}

describe('a try on a hung connection', () => {
  let faulty: FaultyStorage;
  let storage: StorageClients;
  beforeEach(async () => {
    faulty = await faultyStorage();
    storage = await isolatedStorage({ connectionString: faulty.connectionString, retry: { maxTries: 3, tryTimeoutMs: TRY_MS } });
  });
  afterEach(() => faulty.close());

  it('a ledger renewal fails over to a retry within the timeout, and lands', async () => {
    await storage.ledger.createTable();
    const ledger = new Ledger(storage.ledger);
    const claim = await ledger.claim('delivery', 'handler', 'event', 30_000);
    if (claim.kind !== 'claimed') throw new Error(`expected a claim, got ${claim.kind}`);

    faulty.table.down('hang');
    const started = performance.now();
    const renewal = ledger.renew(claim);
    // The hung try's request is swallowed; the network is back before its timeout ends.
    await sleep(200);
    faulty.table.up();
    expect(await within(TRY_MS + 2_000, renewal)).toBe('written');
    const tookMs = performance.now() - started;
    expect(tookMs).toBeGreaterThanOrEqual(TRY_MS - 50);
    expect(tookMs).toBeLessThan(TRY_MS + 2_000);
    expect(faulty.table.connections).toBeGreaterThanOrEqual(2);
  });

  it('a queue message and a blob fail over the same way', async () => {
    await storage.eventsQueue.createIfNotExists();
    await storage.payloads.createIfNotExists();
    faulty.queue.down('hang');
    faulty.blob.down('hang');
    const send = storage.eventsQueue.sendMessage('hello');
    const upload = storage.payloads.getBlockBlobClient('a.json').uploadData(Buffer.from('{}'));
    await sleep(200);
    faulty.up();
    expect(
      await within(
        TRY_MS + 2_000,
        send.then(() => 'sent'),
      ),
    ).toBe('sent');
    expect(
      await within(
        TRY_MS + 2_000,
        upload.then(() => 'uploaded'),
      ),
    ).toBe('uploaded');
  });

  it('that never answers fails after its tries as storage not answering (ETIMEDOUT), not never', async () => {
    await storage.ledger.createTable();
    faulty.table.down('hang');
    const write = storage.ledger.upsertEntity({ partitionKey: 'p', rowKey: 'r', value: 1 }).then(
      () => 'written',
      (error: unknown) => error,
    );
    const outcome = await within(3 * TRY_MS + 2_000, write);
    expect(outcome).toMatchObject({ name: 'RestError', code: 'ETIMEDOUT' });
  });
});

describe('the timeout of a try, by what it sends', () => {
  it('is the base for a small request, and a second more per MiB of body', () => {
    expect(tryTimeoutMs(5_000, 0)).toBe(5_000);
    expect(tryTimeoutMs(5_000, 64 * 1024)).toBe(5_063);
    expect(tryTimeoutMs(5_000, 4 * 1024 * 1024)).toBe(9_000);
    expect(MIN_UPLOAD_BYTES_PER_SECOND).toBe(1024 * 1024);
  });

  it('a large upload answered slowly is not cut, where a small request answered as slowly is', async () => {
    const faulty = await faultyStorage();
    try {
      const slow = await isolatedStorage({ connectionString: faulty.connectionString, retry: { maxTries: 2, tryTimeoutMs: 300 } });
      await slow.payloads.createIfNotExists();
      // Every answer comes 800 ms late: longer than the base, shorter than what 4 MiB adds to it.
      faulty.blob.delayAnswers(800);
      await slow.payloads.getBlockBlobClient('large.json').uploadData(Buffer.alloc(4 * 1024 * 1024, 0x20));
      await expect(slow.payloads.getBlockBlobClient('small.json').uploadData(Buffer.from('{}'))).rejects.toMatchObject({
        code: 'ETIMEDOUT',
      });
    } finally {
      await faulty.close();
    }
  });
});
