import type { QueueClient } from '@azure/storage-queue';
import { provisioned, queueResource } from './provision';

/**
 * Queue messages are base64 text, because host.json sets `extensions.queues.messageEncoding` to
 * `base64`: the host decodes every message it triggers on with that encoding, and a message written
 * any other way ends in the poison queue. Everything that writes to our queues goes through here.
 */
export const QUEUE_MESSAGE_ENCODING = 'base64';

/** Azure Storage's limit on one message, as the service measures it (the encoded text). */
export const MAX_QUEUE_MESSAGE_BYTES = 64 * 1024;

/**
 * `messageTimeToLive: -1`: the message never expires. Storage's default is 7 days, after which an
 * accepted event that was not processed in time (processing disabled, a bad deploy, a backlog)
 * would vanish without a trace.
 */
export const NEVER_EXPIRES = -1;

export function encodeQueueMessage(message: unknown): string {
  return Buffer.from(JSON.stringify(message), 'utf8').toString('base64');
}

export function decodeQueueMessage(text: string): unknown {
  return JSON.parse(Buffer.from(text, 'base64').toString('utf8'));
}

/**
 * How the Functions host reads a message's text (QueueServiceClientProvider.cs): with `messageEncoding: base64` the storage SDK decodes each message as it is received;
 * one that is not valid base64 (as .NET's Convert.FromBase64String reads it: whitespace ignored,
 * length a multiple of 4, at most two `=`) raises MessageDecodingFailed. Returns null then.
 */
export function decodeMessageText(text: string, encoding: 'base64' | 'none'): string | null {
  if (encoding === 'none') return text;
  const compact = text.replace(/[ \t\r\n]/g, '');
  if (compact.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(compact)) return null;
  return Buffer.from(compact, 'base64').toString('utf8');
}

export function fitsInQueueMessage(encoded: string): boolean {
  return Buffer.byteLength(encoded, 'utf8') <= MAX_QUEUE_MESSAGE_BYTES;
}

export interface SendOptions {
  /** Invisible for this long first (a deferred copy). */
  visibilityTimeoutSeconds?: number;
  abortSignal?: AbortSignal;
}

/**
 * Puts already-encoded text on a queue, never to expire, creating the queue if it does not exist.
 * Every message the app writes goes through here (or `sendQueueMessage`).
 */
export async function sendEncodedQueueMessage(queue: QueueClient, encoded: string, options: SendOptions = {}): Promise<void> {
  await provisioned(queueResource(queue), () =>
    queue.sendMessage(encoded, {
      messageTimeToLive: NEVER_EXPIRES,
      ...(options.visibilityTimeoutSeconds !== undefined ? { visibilityTimeout: options.visibilityTimeoutSeconds } : {}),
      ...(options.abortSignal ? { abortSignal: options.abortSignal } : {}),
    }),
  );
}

/** Encodes a message as the host decodes it and sends it (see `sendEncodedQueueMessage`). */
export async function sendQueueMessage(queue: QueueClient, message: unknown, options: SendOptions = {}): Promise<void> {
  await sendEncodedQueueMessage(queue, encodeQueueMessage(message), options);
}
