import { randomUUID } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import type { ContainerClient } from '@azure/storage-blob';
import type { QueueClient } from '@azure/storage-queue';
import { z } from 'zod';
import { issueList, zodIssues } from '../../dataverse/issues';
import type { ColumnKind } from '../../dataverse/reconciledContext';
import { deletePayload, getPayload, putPayload } from '../../storage/claimCheck';
import { isMissingResource, storageStatus } from '../../storage/errors';
import { sendEncodedQueueMessage, sendQueueMessage } from '../../storage/queueMessages';

/**
 * One page of changes a run found, handed from the run to the `queueReconciledChanges` function,
 * which turns its rows into events. The run keeps the page exactly as Dataverse answered it,
 * gzipped (a page of 5000 rows is megabytes of repetitive JSON: a tenth of it compressed, and storing
 * it is most of what a run costs), in a blob of the payload container (named like a claim check, so
 * the lifecycle rule removes one that was never consumed), and puts a message referring to it on
 * RECONCILE_QUEUE. A run so does no
 * work per row: what costs per row (reading what each handler applied, writing an event) is done
 * by the queue function, on every instance, outside the timer's five minutes.
 *
 * The message is written before the run moves its position past the page, so no page is lost to a
 * crash; a page queued twice (a run killed after queueing it, before saving its position) makes the
 * same events twice, which the ledger runs once (their delivery keys are derived from the change).
 */

export const BATCH_VERSION = 1;

const blobReference = z.object({
  container: z.string(),
  name: z.string(),
  size: z.number().int().nonnegative(),
  sha256: z.string(),
});

export const batchMessageSchema = z.object({
  v: z.literal(BATCH_VERSION),
  kind: z.literal('reconcile-batch'),
  table: z.string(),
  primaryIdAttribute: z.string(),
  blob: blobReference,
  /** The service's time of the previous link (or the `--since` time): a row created at or after it is a Create. */
  from: z.number().nullable(),
  /** A replay from a time (`reconcile --since`): rows changed before it are left out. */
  since: z.number().nullable(),
  organizationId: z.string(),
  /** The app's own identity, for a change whose author is unknown (a deletion). */
  userId: z.string(),
  runId: z.string(),
  page: z.number().int().nonnegative(),
});
export type BatchMessage = z.infer<typeof batchMessageSchema>;

export class InvalidBatchError extends Error {
  override readonly name = 'InvalidBatchError';
}

export interface Batch {
  message: BatchMessage;
  columns: Map<string, ColumnKind>;
  rows: unknown[];
}

/** Keeps a page and queues its message; returns the message. */
export async function queueBatch(
  storage: { payloads: ContainerClient; reconcileQueue: QueueClient },
  page: { text: string; columns: ReadonlyMap<string, ColumnKind> },
  message: Omit<BatchMessage, 'v' | 'kind' | 'blob'>,
): Promise<BatchMessage> {
  // The page's own text, not parsed and written again: a run costs what storing the bytes costs.
  const body = gzipSync(`{"columns":${JSON.stringify(Object.fromEntries(page.columns))},"page":${page.text}}`, { level: 1 });
  const blob = await putPayload(storage.payloads, `${randomUUID()}.json.gz`, body);
  const full: BatchMessage = { v: BATCH_VERSION, kind: 'reconcile-batch', blob, ...message };
  await sendQueueMessage(storage.reconcileQueue, full);
  return full;
}

const batchBody = z.object({
  columns: z.record(z.string(), z.enum(['text', 'number', 'money', 'boolean', 'date', 'choice', 'choices', 'lookup', 'guid'])),
  page: z.object({ value: z.array(z.unknown()) }),
});

export function parseBatchMessage(message: unknown): BatchMessage {
  let json = message;
  if (typeof json === 'string' || Buffer.isBuffer(json)) {
    try {
      json = JSON.parse(String(json));
    } catch {
      throw new InvalidBatchError('the reconcile message is not JSON');
    }
  }
  const parsed = batchMessageSchema.safeParse(json);
  if (!parsed.success)
    throw new InvalidBatchError(`the message is not a reconcile batch (${issueList(zodIssues(parsed.error, { limit: 1 }))})`);
  return parsed.data;
}

/** The batch's rows and columns; a blob already removed (the batch was consumed) is an empty batch. */
export async function readBatch(payloads: ContainerClient, message: BatchMessage): Promise<Batch | null> {
  let body: Buffer;
  try {
    body = await getPayload(payloads, message.blob);
  } catch (error) {
    if (storageStatus(error) === 404) return null;
    throw error;
  }
  const parsed = batchBody.safeParse(JSON.parse(gunzipSync(body).toString('utf8')));
  if (!parsed.success) throw new InvalidBatchError(`reconcile batch ${message.blob.name} is not a page of changes`);
  return { message, columns: new Map(Object.entries(parsed.data.columns)), rows: parsed.data.page.value };
}

export async function removeBatch(payloads: ContainerClient, message: BatchMessage): Promise<void> {
  await deletePayload(payloads, message.blob);
}

/**
 * Puts the pages that failed every attempt (the host moved them to the reconcile queue's poison
 * queue) back on the reconcile queue: a page is idempotent, so trying it again is always safe,
 * and a page left there would be changes nobody reconciles. Returns how many were put back.
 */
export async function requeuePoisonedBatches(storage: { reconcileQueue: QueueClient; reconcilePoisonQueue: QueueClient }): Promise<number> {
  let moved = 0;
  for (;;) {
    let received;
    try {
      received = await storage.reconcilePoisonQueue.receiveMessages({ numberOfMessages: 32, visibilityTimeout: 60 });
    } catch (error) {
      if (isMissingResource('queue', error)) return moved;
      throw error;
    }
    if (received.receivedMessageItems.length === 0) return moved;
    for (const item of received.receivedMessageItems) {
      // The text as it is: already encoded as the host reads it.
      await sendEncodedQueueMessage(storage.reconcileQueue, item.messageText);
      await storage.reconcilePoisonQueue.deleteMessage(item.messageId, item.popReceipt);
      moved++;
    }
  }
}
