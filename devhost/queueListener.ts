import type { DequeuedMessageItem, QueueClient, QueueServiceClient } from '@azure/storage-queue';
import { isMissingResource, storageErrorCode, storageStatus } from '../src/storage/errors';
// QSC: the host's decoding, shared with the CLI's poison sweep.
import { poisonQueueNameFor } from '../src/storage/names';
import { decodeMessageText } from '../src/storage/queueMessages';
import { MIN_POLLING_INTERVAL_MS, type QueuesOptions } from './hostJson';

/**
 * The Functions host's queue listener, for everything that runs without the host: `npm start`'s
 * local host, the tests and the benchmark. Each rule follows the queue extension's source in
 * Azure/azure-sdk-for-net, cited by file (paths under sdk/storage/):
 *
 * - QL  = Microsoft.Azure.WebJobs.Extensions.Storage.Common/src/Shared/Queues/QueueListener.cs
 * - QP  = Microsoft.Azure.WebJobs.Extensions.Storage.Common/src/Shared/Queues/QueueProcessor.cs
 * - QO  = Microsoft.Azure.WebJobs.Extensions.Storage.Common/src/Shared/Queues/QueuesOptions.cs
 * - SQE = Microsoft.Azure.WebJobs.Extensions.Storage.Common/src/Shared/StorageQueueExtensions.cs
 * - UVC = Microsoft.Azure.WebJobs.Extensions.Storage.Common/src/Shared/UpdateQueueMessageVisibilityCommand.cs
 * - REB = Microsoft.Azure.WebJobs.Extensions.Storage.Common/src/Shared/Timers/RandomizedExponentialBackoffStrategy.cs
 * - LSS = Microsoft.Azure.WebJobs.Extensions.Storage.Common/src/Shared/Timers/LinearSpeedupStrategy.cs
 * - RFE = Microsoft.Azure.WebJobs.Extensions.Storage.Common/src/Shared/RequestFailedExceptionExtensions.cs
 * - QLF = Microsoft.Azure.WebJobs.Extensions.Storage.Queues/src/Listeners/QueueListenerFactory.cs
 * - QSC = Microsoft.Azure.WebJobs.Extensions.Storage.Queues/src/QueueServiceClientProvider.cs
 *
 * What the listener does not model: dynamic concurrency (off unless host.json enables it), drain
 * mode, and scale-out (one listener per queue and process; several instances each run their own).
 */

/** QL: `_visibilityTimeout = TimeSpan.FromMinutes(10)`: every message is received with this lease. */
export const HOST_RECEIVE_LEASE_SECONDS = 600;
/** QL `MinimumVisibilityRenewalInterval` (1 minute): the fastest a failing renewal speeds up to. */
const MIN_RENEWAL_INTERVAL_MS = 60_000;

/** One message handed to the function. */
export interface QueueInvocation {
  queueName: string;
  /** The message text decoded as host.json `messageEncoding` says (UTF-8 after base64). */
  body: string;
  /** The message as received: id, pop receipt, dequeue count, insertion, expiry, next visible time. */
  message: DequeuedMessageItem;
}

/** Resolves when the function succeeded; rejects (with anything) when it failed. */
export type QueueFunction = (invocation: QueueInvocation) => Promise<void>;

export type ListenerEvent =
  | { type: 'queue-missing'; queueName: string }
  | { type: 'received'; queueName: string; count: number }
  | { type: 'backoff'; queueName: string; delayMs: number }
  | { type: 'notified'; queueName: string }
  | { type: 'succeeded'; queueName: string; messageId: string; dequeueCount: number }
  | { type: 'released'; queueName: string; messageId: string; dequeueCount: number; nextVisibleOn: Date | null; error: unknown }
  | { type: 'left-invisible'; queueName: string; messageId: string; dequeueCount: number; error: unknown }
  | {
      type: 'poisoned';
      queueName: string;
      messageId: string;
      dequeueCount: number;
      poisonQueueName: string;
      reason: PoisonReason;
      error?: unknown;
    }
  | { type: 'skipped'; queueName: string; messageId: string; dequeueCount: number; reason: PoisonReason }
  | { type: 'renewed'; queueName: string; messageId: string; nextVisibleOn: Date }
  | { type: 'storage-error'; queueName: string; operation: string; error: unknown };

/**
 * Why a message went to the poison queue (or, on a queue without one, was skipped): it failed on
 * its last allowed attempt, it arrived already delivered more than maxDequeueCount times, or its
 * text could not be decoded with host.json's messageEncoding.
 */
export type PoisonReason = 'failed-last-attempt' | 'dequeue-count-exceeded' | 'undecodable';

/** Tells listeners in the same host that a message was just added to a queue (QL `Notify`, SharedQueueWatcher). */
export class SharedQueueWatcher {
  readonly #listeners = new Map<string, Set<QueueListener>>();

  register(queueName: string, listener: QueueListener): void {
    const set = this.#listeners.get(queueName) ?? new Set();
    set.add(listener);
    this.#listeners.set(queueName, set);
  }

  unregister(queueName: string, listener: QueueListener): void {
    this.#listeners.get(queueName)?.delete(listener);
  }

  notify(queueName: string): void {
    for (const listener of this.#listeners.get(queueName) ?? []) listener.notify();
  }
}

export interface QueueListenerOptions {
  /** The account the queue lives on; the poison queue is a sibling on the same account. */
  queueService: QueueServiceClient;
  queueName: string;
  /** host.json `extensions.queues` (see readHostJson), possibly overridden for a test. */
  queues: QueuesOptions;
  run: QueueFunction;
  /** The receive lease; default the host's fixed 10 minutes. Tests shorten it to exercise crashes. */
  leaseSeconds?: number;
  onEvent?: (event: ListenerEvent) => void;
  /**
   * An error the host does not expect from storage (QL `_exceptionHandler.OnUnhandledExceptionAsync`,
   * after which the real host shuts down and restarts). Default: reported as a storage-error event.
   */
  onUnhandledError?: (error: unknown) => void;
  /** Listeners of other queues in the same host, woken when a message is poisoned into their queue. */
  watcher?: SharedQueueWatcher;
  /** For the polling back-off's randomization; default Math.random. */
  random?: () => number;
}

// RFE: the exact status codes and error codes the extension tells apart, read as the app reads them.
const isServerSideError = (error: unknown) => {
  const status = storageStatus(error);
  return status !== undefined && status >= 500 && status < 600;
};
const isQueueNotFound = (error: unknown) => isMissingResource('queue', error);
const isMessageOrQueueNotFound = (error: unknown) =>
  storageStatus(error) === 404 && ['MessageNotFound', 'QueueNotFound'].includes(storageErrorCode(error) ?? '');
const isPopReceiptMismatch = (error: unknown) => storageStatus(error) === 400 && storageErrorCode(error) === 'PopReceiptMismatch';
const isQueueBeingDeleted = (error: unknown) => storageStatus(error) === 409 && storageErrorCode(error) === 'QueueBeingDeleted';
/**
 * No HTTP answer at all (connection refused, reset, DNS). The real host lets these reach its
 * exception handler and restarts; the stand-in backs off and retries instead, which is what the
 * restarted host ends up doing.
 */
const isTransportError = (error: unknown) => storageStatus(error) === undefined;

/** REB with QL's arguments: minimum 100 ms, maximum maxPollingInterval, delta 100 ms, ±20 % randomization. */
export class PollingBackoff {
  #current = 0;
  #exponent = 0;

  constructor(
    private readonly maxMs: number,
    private readonly random: () => number = Math.random,
    private readonly minMs = MIN_POLLING_INTERVAL_MS,
  ) {}

  /** The next wait: the minimum after a poll that found messages, else growing towards the maximum. */
  next(foundMessages: boolean): number {
    if (foundMessages) {
      this.#current = this.minMs;
      this.#exponent = 1;
    } else if (this.#current !== this.maxMs) {
      let backoff = this.minMs;
      if (this.#exponent > 0) backoff += (0.8 + this.random() * 0.4) * 2 ** (this.#exponent - 1) * this.minMs;
      if (backoff < this.maxMs) {
        this.#current = backoff;
        this.#exponent++;
      } else {
        this.#current = this.maxMs;
      }
    }
    return this.#current;
  }
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((done) => (resolve = done));
  return { promise, resolve };
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export interface ListenerCounts {
  /** Messages received (decodable or not). */
  received: number;
  /** Function invocations that returned. */
  succeeded: number;
  /** Function invocations that threw. */
  failed: number;
  /** Messages moved to the poison queue. */
  poisoned: number;
}

/** One queue's listener: poll, run, complete; see the rules cited above. */
export class QueueListener {
  readonly queueName: string;
  readonly poisonQueueName: string | null;
  readonly counts: ListenerCounts = { received: 0, succeeded: 0, failed: 0, poisoned: 0 };
  readonly #queue: QueueClient;
  readonly #poisonQueue: QueueClient | null;
  readonly #options: QueueListenerOptions;
  readonly #leaseSeconds: number;
  readonly #backoff: PollingBackoff;
  readonly #processing = new Set<Promise<void>>();
  readonly #renewals = new Set<{ cancel: () => void }>();
  #queueExists: boolean | undefined;
  #foundMessageSinceLastDelay = false;
  #stopWaiting = deferred();
  readonly #stopSignal = deferred();
  #loop: Promise<void> | undefined;
  #stopping = false;
  #abandoned = false;
  #lastActivity = Date.now();
  #lastEmptyPoll = 0;

  constructor(options: QueueListenerOptions) {
    if (options.queues.batchSize <= 0) throw new Error('BatchSize must be greater than zero.');
    if (options.queues.maxDequeueCount <= 0) throw new Error('MaxDequeueCount must be greater than zero.');
    const leaseSeconds = options.leaseSeconds ?? HOST_RECEIVE_LEASE_SECONDS;
    // The service takes whole seconds, at least 1, for a receive's visibility timeout.
    if (!Number.isInteger(leaseSeconds) || leaseSeconds < 1) throw new Error('leaseSeconds must be a whole number of seconds, at least 1.');
    this.#options = options;
    this.#leaseSeconds = leaseSeconds;
    this.queueName = options.queueName;
    this.#queue = options.queueService.getQueueClient(options.queueName);
    this.poisonQueueName = poisonQueueNameFor(options.queueName);
    this.#poisonQueue = this.poisonQueueName ? options.queueService.getQueueClient(this.poisonQueueName) : null;
    this.#backoff = new PollingBackoff(Math.max(MIN_POLLING_INTERVAL_MS, options.queues.maxPollingIntervalMs), options.random);
    options.watcher?.register(options.queueName, this);
  }

  /** Messages whose function runs or whose completion (delete, release, poison) is under way. */
  get inFlight(): number {
    return this.#processing.size;
  }

  /** QL `StartAsync`: the first poll runs at once. */
  start(): void {
    if (this.#loop) throw new Error('The listener was already started.');
    this.#loop = this.#run();
  }

  /**
   * QL `StopAsync`, a graceful stop: no new polls, and every message in flight runs to its end and
   * is completed (deleted, released or poisoned) before this resolves.
   */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#stopSignal.resolve();
    this.#stopWaiting.resolve();
    this.#options.watcher?.unregister(this.queueName, this);
    await this.#loop;
    while (this.#processing.size > 0) await Promise.allSettled([...this.#processing]);
  }

  /**
   * What a crashed or killed instance does: nothing more. No new polls, no lease renewal, and no
   * message in flight is deleted or released; each comes back when its receive lease expires,
   * with its dequeue count already spent.
   */
  abandon(): void {
    this.#abandoned = true;
    this.#stopping = true;
    this.#stopSignal.resolve();
    this.#stopWaiting.resolve();
    this.#options.watcher?.unregister(this.queueName, this);
    for (const renewal of this.#renewals) renewal.cancel();
  }

  /** QL `Notify`: a message was added to this queue; stop waiting and poll now. */
  notify(): void {
    this.#stopWaiting.resolve();
  }

  /**
   * Resolves once nothing is in flight, nothing happened for `idleMs`, and a poll that started
   * after the last message was received or completed found the queue empty (a message released
   * with a visibility timeout is not seen until it is visible again).
   */
  async whenIdle(idleMs: number): Promise<void> {
    for (;;) {
      const now = Date.now();
      if (this.#processing.size === 0 && now - this.#lastActivity >= idleMs && this.#lastEmptyPoll > this.#lastActivity) return;
      await sleep(20);
    }
  }

  #emit(event: ListenerEvent): void {
    this.#options.onEvent?.(event);
  }

  #unhandled(operation: string, error: unknown): void {
    if (this.#options.onUnhandledError) this.#options.onUnhandledError(error);
    else this.#emit({ type: 'storage-error', queueName: this.queueName, operation, error });
  }

  async #run(): Promise<void> {
    while (!this.#stopping) {
      let wait: Promise<void>;
      try {
        ({ wait } = await this.#execute());
      } catch (error) {
        // QL: the timer hands anything else to the host's exception handler.
        this.#unhandled('receive', error);
        wait = this.#backoffWait();
      }
      await wait;
    }
  }

  /** QL `ExecuteAsync`: one poll; returns what to wait for before the next. */
  async #execute(): Promise<{ wait: Promise<void> }> {
    this.#stopWaiting.resolve();
    this.#stopWaiting = deferred();
    if (this.#stopping) return { wait: Promise.resolve() };

    let batch: DequeuedMessageItem[] | null = null;
    const pollStarted = Date.now();
    try {
      // QL: "Before querying the queue, determine if it exists" (and again after any error), so
      // a missing queue is a back-off, not an error.
      if (!this.#queueExists) this.#queueExists = await this.#queue.exists();
      if (this.#queueExists) {
        // QL `GetMessageReceiveCount` (no dynamic concurrency): always batchSize, with the fixed lease.
        const response = await this.#queue.receiveMessages({
          numberOfMessages: this.#options.queues.batchSize,
          visibilityTimeout: this.#leaseSeconds,
        });
        batch = response.receivedMessageItems;
      } else {
        this.#emit({ type: 'queue-missing', queueName: this.queueName });
      }
    } catch (error) {
      this.#queueExists = undefined;
      if (isQueueNotFound(error) || isQueueBeingDeleted(error) || isServerSideError(error) || isTransportError(error)) {
        this.#emit({ type: 'storage-error', queueName: this.queueName, operation: 'receive', error });
        return { wait: this.#backoffWait() };
      }
      throw error;
    }

    if (batch === null || batch.length === 0) {
      // A queue that does not exist holds nothing either.
      this.#lastEmptyPoll = pollStarted;
      return { wait: this.#backoffWait() };
    }
    if (this.#abandoned) return { wait: Promise.resolve() };

    this.counts.received += batch.length;
    this.#lastActivity = Date.now();
    this.#emit({ type: 'received', queueName: this.queueName, count: batch.length });
    for (const message of batch) {
      const body = decodeMessageText(message.messageText, this.#options.queues.messageEncoding);
      if (body === null) {
        // QSC: a message that fails to decode never reaches the function: it is handed to the
        // poison handling at once and left out of the batch.
        await this.#track(this.#handlePoison(message, 'undecodable'));
        continue;
      }
      this.#track(this.#process(message, body));
    }
    this.#foundMessageSinceLastDelay = true;
    // QL `CreateSucceededResult` → `WaitForNewBatchThreshold`.
    return { wait: this.#waitForNewBatchThreshold() };
  }

  #track(task: Promise<void>): Promise<void> {
    const tracked = task.finally(() => {
      this.#processing.delete(tracked);
      this.#lastActivity = Date.now();
    });
    this.#processing.add(tracked);
    return tracked;
  }

  /** QL `CreateBackoffResult`: the randomized exponential back-off, cut short by Notify or stop. */
  #backoffWait(): Promise<void> {
    const delayMs = this.#backoff.next(this.#foundMessageSinceLastDelay);
    this.#foundMessageSinceLastDelay = false;
    this.#emit({ type: 'backoff', queueName: this.queueName, delayMs });
    let timer: NodeJS.Timeout | undefined;
    let elapsed = false;
    const delay = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        elapsed = true;
        resolve();
      }, delayMs);
    });
    return Promise.race([delay, this.#stopWaiting.promise]).finally(() => {
      clearTimeout(timer);
      if (!elapsed && !this.#stopping) this.#emit({ type: 'notified', queueName: this.queueName });
    });
  }

  /**
   * QL `WaitForNewBatchThreshold`: the next batch is fetched only once in-flight messages drop to
   * newBatchThreshold or below, so at most batchSize + newBatchThreshold run at once (QO).
   */
  async #waitForNewBatchThreshold(): Promise<void> {
    while (this.#processing.size > this.#options.queues.newBatchThreshold && !this.#stopping) {
      await Promise.race([...this.#processing, this.#stopSignal.promise]);
    }
  }

  /** QL `ProcessMessageAsync`. */
  async #process(received: DequeuedMessageItem, body: string): Promise<void> {
    const { maxDequeueCount } = this.#options.queues;
    // QP `BeginProcessingMessageAsync`: already delivered more than maxDequeueCount times (its
    // earlier attempts crashed or timed out): straight to poison, without running.
    if (received.dequeueCount > maxDequeueCount) {
      await this.#handlePoison(received, 'dequeue-count-exceeded');
      return;
    }

    const message = { ...received };
    const renewal = this.#renewLease(message);
    let failure: { error: unknown } | null = null;
    try {
      await this.#options.run({ queueName: this.queueName, body, message: { ...received } });
    } catch (error) {
      failure = { error };
    }
    await renewal.stop();
    if (this.#abandoned) return;
    if (failure) this.counts.failed++;
    else this.counts.succeeded++;

    // QP `CompleteProcessingMessageAsync`.
    try {
      if (!failure) {
        await this.#delete(message);
        this.#emit({ type: 'succeeded', queueName: this.queueName, messageId: message.messageId, dequeueCount: message.dequeueCount });
      } else if (this.#poisonQueue) {
        if (message.dequeueCount >= maxDequeueCount) await this.#handlePoison(message, 'failed-last-attempt', failure.error);
        else await this.#release(message, failure.error);
      } else {
        // QP: "For queues without a corresponding poison queue, leave the message invisible when
        // processing fails to prevent a fast infinite loop": no release; it waits out its lease.
        this.#emit({
          type: 'left-invisible',
          queueName: this.queueName,
          messageId: message.messageId,
          dequeueCount: message.dequeueCount,
          error: failure.error,
        });
      }
    } catch (error) {
      this.#unhandled('complete', error);
    }
  }

  /**
   * QL `CreateUpdateMessageVisibilityTimer` + UVC + LSS: the lease is renewed when half of it has
   * passed, for as long as the function runs; a renewal that fails on the server side is retried
   * after half the interval (but not sooner than QL's 1-minute minimum, or the normal interval when
   * that is shorter); a lost pop receipt, a deleted message or queue ends the renewals.
   */
  #renewLease(message: DequeuedMessageItem): { stop: () => Promise<void> } {
    const normalMs = (this.#leaseSeconds * 1000) / 2;
    const minimumMs = Math.min(MIN_RENEWAL_INTERVAL_MS, normalMs);
    let currentMs = normalMs;
    let timer: NodeJS.Timeout | undefined;
    let inProgress: Promise<void> = Promise.resolve();
    let stopped = false;
    const handle = {
      cancel: () => {
        stopped = true;
        clearTimeout(timer);
      },
    };
    const schedule = (delayMs: number) => {
      if (stopped) return;
      timer = setTimeout(() => {
        inProgress = (async () => {
          try {
            const receipt = await this.#queue.updateMessage(message.messageId, message.popReceipt, undefined, this.#leaseSeconds);
            if (stopped && this.#abandoned) return;
            message.popReceipt = receipt.popReceipt ?? message.popReceipt;
            if (receipt.nextVisibleOn) message.nextVisibleOn = receipt.nextVisibleOn;
            this.#emit({ type: 'renewed', queueName: this.queueName, messageId: message.messageId, nextVisibleOn: message.nextVisibleOn });
            currentMs = normalMs;
            schedule(currentMs);
          } catch (error) {
            if (isPopReceiptMismatch(error) || isMessageOrQueueNotFound(error) || isQueueBeingDeleted(error)) return;
            if (isServerSideError(error) || isTransportError(error)) {
              this.#emit({ type: 'storage-error', queueName: this.queueName, operation: 'renew lease', error });
              currentMs = Math.max(currentMs / 2, minimumMs);
              schedule(currentMs);
              return;
            }
            this.#unhandled('renew lease', error);
          }
        })();
      }, delayMs);
    };
    schedule(normalMs);
    this.#renewals.add(handle);
    return {
      stop: async () => {
        handle.cancel();
        this.#renewals.delete(handle);
        await inProgress;
      },
    };
  }

  /** QP `DeleteMessageAsync`: someone else's pop receipt, or a message or queue already gone, is not an error. */
  async #delete(message: DequeuedMessageItem): Promise<void> {
    try {
      await this.#queue.deleteMessage(message.messageId, message.popReceipt);
    } catch (error) {
      if (isPopReceiptMismatch(error) || isMessageOrQueueNotFound(error) || isQueueBeingDeleted(error)) return;
      throw error;
    }
  }

  /** QP `ReleaseMessageAsync`: visible again after host.json's visibilityTimeout. */
  async #release(message: DequeuedMessageItem, error: unknown): Promise<void> {
    let nextVisibleOn: Date | null = null;
    try {
      const visibilityTimeout = Math.floor(this.#options.queues.visibilityTimeoutMs / 1000);
      const receipt = await this.#queue.updateMessage(message.messageId, message.popReceipt, undefined, visibilityTimeout);
      nextVisibleOn = receipt.nextVisibleOn ?? null;
    } catch (releaseError) {
      if (!(isPopReceiptMismatch(releaseError) || isMessageOrQueueNotFound(releaseError) || isQueueBeingDeleted(releaseError)))
        throw releaseError;
    }
    this.#emit({
      type: 'released',
      queueName: this.queueName,
      messageId: message.messageId,
      dequeueCount: message.dequeueCount,
      nextVisibleOn,
      error,
    });
  }

  /**
   * QP `HandlePoisonMessageAsync`: copy the message to the poison queue, creating that queue on
   * first use (SQE `AddMessageAndCreateIfNotExistsAsync`: send, and on QueueNotFound create and
   * send again), then delete it. The copy is sent with the service's default time-to-live, as the
   * host sends it. A queue without a poison queue does nothing here: the message stays invisible
   * until its lease ends and is skipped at every later delivery, never deleted.
   */
  async #handlePoison(message: DequeuedMessageItem, reason: PoisonReason, error?: unknown): Promise<void> {
    const base = { queueName: this.queueName, messageId: message.messageId, dequeueCount: message.dequeueCount };
    if (!this.#poisonQueue || !this.poisonQueueName) {
      this.#emit({ type: 'skipped', ...base, reason });
      return;
    }
    try {
      try {
        await this.#poisonQueue.sendMessage(message.messageText);
      } catch (sendError) {
        if (!isQueueNotFound(sendError)) throw sendError;
        await this.#poisonQueue.create();
        await this.#poisonQueue.sendMessage(message.messageText);
      }
      await this.#delete(message);
    } catch (poisonError) {
      this.#unhandled('move to poison queue', poisonError);
      return;
    }
    this.counts.poisoned++;
    this.#emit({ type: 'poisoned', ...base, poisonQueueName: this.poisonQueueName, reason, ...(error === undefined ? {} : { error }) });
    // QL `RegisterSharedWatcherWithQueueProcessor`: the poison queue's own listener polls at once.
    this.#options.watcher?.notify(this.poisonQueueName);
  }
}

export interface DrainResult {
  succeeded: number;
  failed: number;
  poisoned: number;
}

/**
 * Runs a listener until its queue has been idle for `idleMs` (see `whenIdle`), stops it gracefully
 * and returns what happened. For tests and the benchmark; any error the host would not expect from
 * storage fails the drain.
 */
export async function runUntilIdle(options: QueueListenerOptions & { idleMs: number }): Promise<DrainResult> {
  const errors: unknown[] = [];
  const listener = new QueueListener({ ...options, onUnhandledError: (error) => errors.push(error) });
  listener.start();
  try {
    await listener.whenIdle(options.idleMs);
  } finally {
    await listener.stop();
  }
  if (errors.length > 0) throw errors[0];
  const { succeeded, failed, poisoned } = listener.counts;
  return { succeeded, failed, poisoned };
}

/**
 * The message as a Node function receives it when no worker is involved (tests, the benchmark):
 * the host sends the text as a string, and @azure/functions hands it over parsed when it is JSON
 * and as the string otherwise (azure-functions-nodejs-library src/converters/fromRpcTypedData.ts,
 * `tryJsonParse`). The local host runs the library itself instead.
 */
export function asFunctionInput(body: string): unknown {
  try {
    return JSON.parse(body) as unknown;
  } catch {
    return body;
  }
}
