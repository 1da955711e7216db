import { randomBytes } from 'node:crypto';
import { type QueueClient, QueueServiceClient } from '@azure/storage-queue';
import { describe, expect, inject, it } from 'vitest';
import type { QueuesOptions } from '../hostJson';
import {
  type ListenerEvent,
  PollingBackoff,
  type QueueInvocation,
  QueueListener,
  type QueueListenerOptions,
  runUntilIdle,
  SharedQueueWatcher,
} from '../queueListener';

/**
 * The queue listener's rules, each against Azurite, each in a test that fails when the rule is
 * broken. The rules and their sources are in devhost/queueListener.ts.
 */

const QUEUES: QueuesOptions = {
  batchSize: 16,
  newBatchThreshold: 8,
  maxDequeueCount: 3,
  visibilityTimeoutMs: 0,
  maxPollingIntervalMs: 200,
  messageEncoding: 'base64',
};

const account = () => QueueServiceClient.fromConnectionString(inject('azuriteConnectionString'));
const uniqueName = (prefix: string) => `${prefix}-${randomBytes(4).toString('hex')}`;
const base64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');

async function waitFor(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 45_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const gate = () => {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
};

async function queueWith(...texts: string[]): Promise<{ service: QueueServiceClient; name: string; queue: QueueClient }> {
  const service = account();
  const name = uniqueName('listener');
  const queue = service.getQueueClient(name);
  await queue.create();
  for (const text of texts) await queue.sendMessage(text);
  return { service, name, queue };
}

/** Every message still on the queue, visible or not. */
async function messageCount(queue: QueueClient): Promise<number> {
  return (await queue.getProperties()).approximateMessagesCount ?? -1;
}

function listen(options: Omit<QueueListenerOptions, 'onEvent'> & { onEvent?: (event: ListenerEvent) => void }) {
  const events: Array<ListenerEvent & { at: number }> = [];
  const unhandled: unknown[] = [];
  const listener = new QueueListener({
    ...options,
    onEvent: (event) => {
      events.push({ ...event, at: Date.now() });
      options.onEvent?.(event);
    },
    onUnhandledError: (error) => unhandled.push(error),
  });
  listener.start();
  const of = <T extends ListenerEvent['type']>(type: T) =>
    events.filter((event): event is Extract<ListenerEvent, { type: T }> & { at: number } => event.type === type);
  return { listener, events, of, unhandled };
}

describe.concurrent('the queue listener (QueueListener.cs, QueueProcessor.cs)', () => {
  it('hands the function the decoded text and the message, and deletes the message when it returns', async () => {
    const { service, name, queue } = await queueWith(base64('{"hello":"wörld"}'));
    const before = Date.now();
    const seen: QueueInvocation[] = [];
    const run = listen({ queueService: service, queueName: name, queues: QUEUES, run: async (invocation) => void seen.push(invocation) });
    await waitFor(() => run.of('succeeded').length === 1, 'the message to succeed');
    await run.listener.stop();
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({
      queueName: name,
      body: '{"hello":"wörld"}',
      message: { dequeueCount: 1, messageText: base64('{"hello":"wörld"}') },
    });
    expect(seen[0]!.message.insertedOn).toBeInstanceOf(Date);
    // Received with the host's 10-minute lease (storage keeps whole seconds).
    expect(seen[0]!.message.nextVisibleOn.getTime()).toBeGreaterThanOrEqual(before + 599_000);
    expect(await messageCount(queue)).toBe(0);
    expect(run.unhandled).toEqual([]);
  });

  it('a failure releases the message with visibilityTimeout: it stays invisible until then', async () => {
    const { service, name, queue } = await queueWith(base64('x'));
    const before = Date.now();
    const run = listen({
      queueService: service,
      queueName: name,
      queues: { ...QUEUES, visibilityTimeoutMs: 120_000 },
      run: async () => {
        throw new Error('downstream down');
      },
    });
    await waitFor(() => run.of('released').length === 1, 'the release');
    await run.listener.stop();
    const released = run.of('released')[0]!;
    expect(released.dequeueCount).toBe(1);
    // Storage keeps whole seconds: at least two minutes from before the receive, less a second.
    expect(released.nextVisibleOn!.getTime()).toBeGreaterThanOrEqual(before + 119_000);
    expect((await queue.receiveMessages()).receivedMessageItems).toEqual([]);
    expect(await messageCount(queue)).toBe(1);
  });

  it('after maxDequeueCount failures the message goes to <queue>-poison, created on first use, as it came', async () => {
    const text = base64('{"n":1}');
    const { service, name, queue } = await queueWith(text);
    const poison = service.getQueueClient(`${name}-poison`);
    expect(await poison.exists()).toBe(false);
    const attempts: number[] = [];
    const run = listen({
      queueService: service,
      queueName: name,
      queues: { ...QUEUES, maxDequeueCount: 2 },
      run: async ({ message }) => {
        attempts.push(message.dequeueCount);
        throw new Error('always');
      },
    });
    await waitFor(() => run.of('poisoned').length === 1, 'the move to the poison queue');
    await run.listener.stop();
    expect(attempts).toEqual([1, 2]);
    expect(run.of('poisoned')[0]).toMatchObject({ reason: 'failed-last-attempt', poisonQueueName: `${name}-poison`, dequeueCount: 2 });
    expect(await messageCount(queue)).toBe(0);
    expect((await poison.peekMessages()).peekedMessageItems.map((item) => item.messageText)).toEqual([text]);
    expect(run.listener.counts).toMatchObject({ succeeded: 0, failed: 2, poisoned: 1 });
  });

  it('a message already delivered more than maxDequeueCount times goes to poison without running', async () => {
    const { service, name, queue } = await queueWith(base64('crashed twice'));
    // Two deliveries whose instances died (each receive spends one dequeue).
    for (let i = 0; i < 2; i++) {
      const [item] = (await queue.receiveMessages({ visibilityTimeout: 30 })).receivedMessageItems;
      await queue.updateMessage(item!.messageId, item!.popReceipt, undefined, 0);
    }
    let ran = 0;
    const run = listen({ queueService: service, queueName: name, queues: { ...QUEUES, maxDequeueCount: 2 }, run: async () => void ran++ });
    await waitFor(() => run.of('poisoned').length === 1, 'the move to the poison queue');
    await run.listener.stop();
    expect(ran).toBe(0);
    expect(run.of('poisoned')[0]).toMatchObject({ reason: 'dequeue-count-exceeded', dequeueCount: 3 });
    expect(await service.getQueueClient(`${name}-poison`).exists()).toBe(true);
    expect(await messageCount(queue)).toBe(0);
  });

  it('a poison queue has no poison queue: a failure is not released, and past maxDequeueCount the message is skipped, never deleted', async () => {
    const service = account();
    const name = `${uniqueName('listener')}-poison`;
    const queue = service.getQueueClient(name);
    await queue.create();
    await queue.sendMessage(base64('cannot be recorded'));
    let ran = 0;
    const run = listen({
      queueService: service,
      queueName: name,
      queues: { ...QUEUES, maxDequeueCount: 1 },
      leaseSeconds: 2,
      run: async () => {
        ran++;
        throw new Error('recording failed');
      },
    });
    expect(run.listener.poisonQueueName).toBeNull();
    await waitFor(() => run.of('skipped').length === 1, 'the second delivery to be skipped');
    await run.listener.stop();
    const failedAt = run.of('left-invisible')[0]!.at;
    // Not released (visibilityTimeout is 0 here): the next delivery came only when the 2-second lease ended.
    expect(run.of('skipped')[0]!.at - failedAt).toBeGreaterThanOrEqual(1_500);
    expect(run.of('released')).toEqual([]);
    expect(run.of('skipped')[0]).toMatchObject({ dequeueCount: 2, reason: 'dequeue-count-exceeded' });
    expect(ran).toBe(1);
    expect(await messageCount(queue)).toBe(1);
    expect(await service.getQueueClient(`${name}-poison`).exists()).toBe(false);
  });

  it('renews the lease at half its length while the function runs, and completes with the renewed pop receipt', async () => {
    const { service, name, queue } = await queueWith(base64('slow'));
    const release = gate();
    const run = listen({ queueService: service, queueName: name, queues: QUEUES, leaseSeconds: 4, run: () => release.opened });
    await waitFor(() => run.of('renewed').length >= 1, 'a renewal');
    // Just renewed: nobody else can receive it, although the first lease would be half over.
    expect((await queue.receiveMessages()).receivedMessageItems).toEqual([]);
    await waitFor(() => run.of('renewed').length >= 2, 'a second renewal');
    const [first, second] = run.of('renewed');
    expect(second!.nextVisibleOn.getTime()).toBeGreaterThan(first!.nextVisibleOn.getTime());
    release.open();
    await waitFor(() => run.of('succeeded').length === 1, 'the message to succeed');
    await run.listener.stop();
    // A delete with the first pop receipt would have been refused (and ignored), leaving the message.
    expect(await messageCount(queue)).toBe(0);
    expect(run.unhandled).toEqual([]);
  });

  it('runs batchSize at once and fetches again only when in-flight drops to newBatchThreshold', async () => {
    const { service, name } = await queueWith(...Array.from({ length: 10 }, (_, i) => base64(String(i))));
    const gates: Array<() => void> = [];
    let running = 0;
    let most = 0;
    const run = listen({
      queueService: service,
      queueName: name,
      queues: { ...QUEUES, batchSize: 3, newBatchThreshold: 1 },
      run: async () => {
        running++;
        most = Math.max(most, running);
        await new Promise<void>((resolve) => gates.push(resolve));
        running--;
      },
    });
    await waitFor(() => gates.length === 3, 'the first batch');
    // Several polling intervals later, still only the first batch: 3 in flight is above 1.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(gates).toHaveLength(3);
    gates[0]!();
    await waitFor(() => run.listener.inFlight === 2, 'one to finish');
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(gates).toHaveLength(3);
    gates[1]!();
    // In flight dropped to the threshold (1): one more batch of 3, so batchSize + newBatchThreshold.
    await waitFor(() => gates.length === 6, 'the second batch');
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(gates).toHaveLength(6);
    expect(running).toBe(4);
    while (run.of('succeeded').length < 10) {
      for (const open of gates.splice(0)) open();
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await run.listener.stop();
    expect(most).toBe(4);
  });

  it('a missing queue is checked with exists and waited for, not an error', async () => {
    const service = account();
    const name = uniqueName('listener');
    const seen: string[] = [];
    const run = listen({ queueService: service, queueName: name, queues: QUEUES, run: async ({ body }) => void seen.push(body) });
    await waitFor(() => run.of('queue-missing').length >= 2, 'two polls of the missing queue');
    const queue = service.getQueueClient(name);
    await queue.create();
    await queue.sendMessage(base64('late'));
    await waitFor(() => seen.length === 1, 'the message');
    await run.listener.stop();
    expect(seen).toEqual(['late']);
    expect(run.of('storage-error')).toEqual([]);
    expect(run.unhandled).toEqual([]);
  });

  it('a drain of a queue that does not exist ends: there is nothing on it', async () => {
    const result = await runUntilIdle({
      queueService: account(),
      queueName: uniqueName('missing'),
      queues: QUEUES,
      idleMs: 300,
      run: async () => undefined,
    });
    expect(result).toEqual({ succeeded: 0, failed: 0, poisoned: 0 });
  });

  it('decodes per messageEncoding: with base64 a message that is not base64 goes to poison without running', async () => {
    const { service, name, queue } = await queueWith('{"not":"base64"}', base64('fine'));
    const seen: string[] = [];
    const run = listen({ queueService: service, queueName: name, queues: QUEUES, run: async ({ body }) => void seen.push(body) });
    await waitFor(() => run.of('poisoned').length === 1 && seen.length === 1, 'both messages');
    await run.listener.stop();
    expect(seen).toEqual(['fine']);
    expect(run.of('poisoned')[0]).toMatchObject({ reason: 'undecodable', dequeueCount: 1 });
    expect((await service.getQueueClient(`${name}-poison`).peekMessages()).peekedMessageItems[0]?.messageText).toBe('{"not":"base64"}');
    expect(await messageCount(queue)).toBe(0);

    const plain = await queueWith('{"not":"base64"}');
    const raw: string[] = [];
    const none = listen({
      queueService: plain.service,
      queueName: plain.name,
      queues: { ...QUEUES, messageEncoding: 'none' },
      run: async ({ body }) => void raw.push(body),
    });
    await waitFor(() => raw.length === 1, 'the message');
    await none.listener.stop();
    expect(raw).toEqual(['{"not":"base64"}']);
  });

  it('a crashed instance completes nothing: the message comes back when its lease ends, one attempt spent', async () => {
    const { service, name, queue } = await queueWith(base64('in flight at the crash'));
    const started = gate();
    const crashed = listen({
      queueService: service,
      queueName: name,
      queues: QUEUES,
      leaseSeconds: 2,
      run: () => {
        started.open();
        return new Promise<void>(() => undefined);
      },
    });
    await started.opened;
    const crashAt = Date.now();
    crashed.listener.abandon();

    const counts: number[] = [];
    const next = listen({
      queueService: service,
      queueName: name,
      queues: QUEUES,
      run: async ({ message }) => void counts.push(message.dequeueCount),
    });
    await waitFor(() => counts.length === 1, 'the redelivery');
    await next.listener.stop();
    expect(next.of('received')[0]!.at - crashAt).toBeGreaterThanOrEqual(1_000);
    expect(counts).toEqual([2]);
    expect(crashed.events.filter((event) => ['succeeded', 'released', 'poisoned', 'left-invisible'].includes(event.type))).toEqual([]);
    expect(await messageCount(queue)).toBe(0);
  });

  it('stop is graceful: the message in flight finishes and is deleted, and no new poll starts', async () => {
    const { service, name, queue } = await queueWith(base64('one'));
    const release = gate();
    const run = listen({ queueService: service, queueName: name, queues: QUEUES, run: () => release.opened });
    await waitFor(() => run.listener.inFlight === 1, 'the message to start');
    // The poll after it found the queue empty: the listener is between polls.
    await waitFor(
      () => run.events.map((event) => event.type).lastIndexOf('backoff') > run.events.findIndex((event) => event.type === 'received'),
      'the next poll',
    );
    const stopped = run.listener.stop();
    await queue.sendMessage(base64('two'));
    release.open();
    await stopped;
    expect(run.of('succeeded')).toHaveLength(1);
    expect(await messageCount(queue)).toBe(1);
  });

  it("a message moved to a poison queue wakes that queue's listener in the same host at once", async () => {
    const { service, name } = await queueWith(base64('bad'));
    const watcher = new SharedQueueWatcher();
    const recorded: string[] = [];
    // Backed off to several seconds between polls of the empty poison queue: the notification
    // cuts the wait short (the 'notified' event); without it the message would wait for the poll.
    const poisonListener = listen({
      queueService: service,
      queueName: `${name}-poison`,
      queues: { ...QUEUES, maxPollingIntervalMs: 3_600_000 },
      watcher,
      random: () => 1,
      run: async ({ body }) => void recorded.push(body),
    });
    await waitFor(() => poisonListener.of('backoff').some((event) => event.delayMs > 3_000), 'the poison listener to back off past 3 s');
    const main = listen({
      queueService: service,
      queueName: name,
      queues: { ...QUEUES, maxDequeueCount: 1 },
      watcher,
      run: async () => Promise.reject(new Error('no')),
    });
    await waitFor(() => recorded.length === 1, 'the poison listener to run the message');
    await Promise.all([main.listener.stop(), poisonListener.listener.stop()]);
    expect(recorded).toEqual(['bad']);
    expect(poisonListener.of('notified')).toHaveLength(1);
  }, 60_000);
});

describe('polling back-off (RandomizedExponentialBackoffStrategy.cs)', () => {
  it('starts at 100 ms, grows about twice per empty poll up to maxPollingInterval, and drops back once messages come', () => {
    const backoff = new PollingBackoff(2_000, () => 0.5);
    const empty = Array.from({ length: 8 }, () => backoff.next(false));
    expect(empty).toEqual([100, 200, 300, 500, 900, 1700, 2000, 2000]);
    expect(backoff.next(true)).toBe(100);
    expect(backoff.next(false)).toBe(200);
  });

  it('randomizes each step by ±20 %', () => {
    expect(new PollingBackoff(60_000, () => 0).next(false)).toBe(100);
    const low = new PollingBackoff(60_000, () => 0);
    const high = new PollingBackoff(60_000, () => 0.999_999);
    low.next(false);
    high.next(false);
    expect(low.next(false)).toBeCloseTo(180, 5);
    expect(high.next(false)).toBeCloseTo(220, 3);
  });
});
