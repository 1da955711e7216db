/**
 * Queue messages are base64 text, because host.json sets `extensions.queues.messageEncoding` to
 * `base64`: the host decodes every message it triggers on with that encoding, and a message written
 * any other way ends in the poison queue. Everything that writes to our queues goes through here.
 */
export const QUEUE_MESSAGE_ENCODING = 'base64';

/** Azure Storage's limit on one message, as the service measures it (the encoded text). */
export const MAX_QUEUE_MESSAGE_BYTES = 64 * 1024;

export function encodeQueueMessage(message: unknown): string {
  return Buffer.from(JSON.stringify(message), 'utf8').toString('base64');
}

export function decodeQueueMessage(text: string): unknown {
  return JSON.parse(Buffer.from(text, 'base64').toString('utf8'));
}

export function fitsInQueueMessage(encoded: string): boolean {
  return Buffer.byteLength(encoded, 'utf8') <= MAX_QUEUE_MESSAGE_BYTES;
}
