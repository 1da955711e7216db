import type { TableClient } from '@azure/data-tables';
import type { BlobClient, ContainerClient } from '@azure/storage-blob';
import { downloadBlob } from './blobs';
import { isMissingResource, storageStatus } from './errors';
import { containerResource, provisioned, tableResource } from './provision';

/**
 * Poisoned events: a row each in the failures table (what `failures` lists), and the queue message
 * that failed, kept as a blob beside the claim checks so `replay` can put it back as it was.
 * Writes create the table and container when they do not exist yet; an account where nothing
 * failed yet (no table) simply has no failures.
 */

const PARTITION = 'poisoned';

export interface FailureRecord {
  eventId: string;
  poisonedAt: string;
  table: string;
  message: string;
  recordId: string;
  correlationId: string;
  operationId: string;
  organization: string;
  /** Queue deliveries the message had before the host gave up. */
  attempts: number;
  /** How many times it was replayed before this failure. */
  replays: number;
  /** The failed handlers and their last errors, or why the message could not be processed at all. */
  error: string;
  state: 'poisoned' | 'replayed' | 'resolved';
  replayedAt?: string;
  /** When someone said it needs no replay (`failures resolve`). */
  resolvedAt?: string;
  /**
   * The ledger partition of its delivery (src/pipeline/deliveryKey.ts): what retention keeps while
   * the record is kept, the replay of a replayed event included (its message is gone by then).
   * Absent for an unreadable message (nothing of it is in the ledger) and in records from before.
   */
  deliveryKey?: string;
}

/**
 * When a record stopped needing its event (replayed or resolved, as an ISO date); undefined while
 * it is poisoned. Retention removes a record settled before its cutoff, and keeps the ledger rows
 * of every record it does not remove: both read it here.
 */
export function settledAt(record: Pick<FailureRecord, 'state' | 'replayedAt' | 'resolvedAt'>): string | undefined {
  return record.state === 'replayed' ? record.replayedAt : record.state === 'resolved' ? record.resolvedAt : undefined;
}

type FailureRow = FailureRecord & { partitionKey: string; rowKey: string; etag?: string };

/**
 * A poisoned event as `replay` reads it before sending it back: its record and kept message, and
 * the ETag each (and the kept body, when there is one) had then. Marking it replayed and removing
 * what was kept is conditioned on those, so that a copy poisoned again meanwhile (its record, message
 * and body written anew) keeps what it wrote.
 */
export interface KeptFailure {
  failure: FailureRecord;
  /** The kept queue message, as the host passed it to the poison queue's function; null when the event is not poisoned. */
  message: string | null;
  etags: { record: string; message: string | null; body: string | null };
}

export class FailureStore {
  constructor(
    private readonly table: TableClient,
    private readonly messages: ContainerClient,
  ) {}

  async record(failure: FailureRecord, queueMessage: string): Promise<void> {
    // The message first: a listed failure can always be replayed.
    await provisioned(containerResource(this.messages), () =>
      this.messages.getBlockBlobClient(messageBlobName(failure.eventId)).uploadData(Buffer.from(queueMessage, 'utf8'), {
        blobHTTPHeaders: { blobContentType: 'application/json' },
      }),
    );
    await this.upsert({ partitionKey: PARTITION, rowKey: failure.eventId, ...failure });
  }

  private async upsert(row: FailureRow): Promise<void> {
    await provisioned(tableResource(this.table), () => this.table.upsertEntity<FailureRow>(row, 'Replace'));
  }

  async list(options: { includeReplayed?: boolean } = {}): Promise<FailureRecord[]> {
    const failures: FailureRecord[] = [];
    try {
      for await (const row of this.table.listEntities<FailureRow>({ queryOptions: { filter: `PartitionKey eq '${PARTITION}'` } })) {
        if (options.includeReplayed || row.state === 'poisoned') failures.push(toRecord(row));
      }
    } catch (error) {
      if (!isMissingResource('table', error)) throw error;
    }
    return failures.sort((a, b) => a.poisonedAt.localeCompare(b.poisonedAt));
  }

  async get(eventId: string): Promise<FailureRecord | null> {
    const row = await this.row(eventId);
    return row ? toRecord(row) : null;
  }

  private async row(eventId: string): Promise<FailureRow | null> {
    try {
      return await this.table.getEntity<FailureRow>(PARTITION, eventId);
    } catch (error) {
      // No such row, or no table yet.
      if (storageStatus(error) === 404) return null;
      throw error;
    }
  }

  async message(eventId: string): Promise<string> {
    return (await downloadBlob(this.messages.getBlobClient(messageBlobName(eventId)))).bytes.toString('utf8');
  }

  /**
   * A poisoned event with the ETags of what was kept for it, for its replay: null when it has no
   * record, its record alone (no message) when it is not poisoned. The record is read first, so a
   * message written after it (poisoned again) has another ETag than the one kept here.
   */
  async kept(eventId: string): Promise<KeptFailure | null> {
    const row = await this.row(eventId);
    if (!row) return null;
    const failure = toRecord(row);
    const record = row.etag ?? '';
    if (failure.state !== 'poisoned') return { failure, message: null, etags: { record, message: null, body: null } };
    const message = await downloadBlob(this.messages.getBlobClient(messageBlobName(eventId)));
    const body = await blobETag(this.messages.getBlobClient(bodyBlobName(eventId)));
    return { failure, message: message.bytes.toString('utf8'), etags: { record, message: message.etag, body } };
  }

  /**
   * Keeps a copy of a poisoned event's claim-check body beside its message: the lifecycle rule
   * deletes claim-check blobs 30 days after their upload, and a poisoned event is kept until it is
   * replayed or resolved, however long that takes. A body already gone (why it failed) is not kept.
   */
  async keepBody(eventId: string, blobName: string): Promise<void> {
    let body: Buffer;
    try {
      ({ bytes: body } = await downloadBlob(this.messages.getBlobClient(blobName)));
    } catch (error) {
      if (storageStatus(error) === 404) return;
      throw error;
    }
    await this.messages
      .getBlockBlobClient(bodyBlobName(eventId))
      .uploadData(body, { blobHTTPHeaders: { blobContentType: 'application/json' } });
  }

  /** Puts a poisoned event's claim-check body back where its message expects it, if the lifecycle rule removed it. */
  async restoreBody(eventId: string, blobName: string): Promise<void> {
    const original = this.messages.getBlockBlobClient(blobName);
    if (await original.exists()) return;
    let body: Buffer;
    try {
      ({ bytes: body } = await downloadBlob(this.messages.getBlobClient(bodyBlobName(eventId))));
    } catch (error) {
      // No copy (recorded before copies were kept): the replay fails on the missing body, and says so.
      if (storageStatus(error) === 404) return;
      throw error;
    }
    await original.uploadData(body, { blobHTTPHeaders: { blobContentType: 'application/json' } });
  }

  /**
   * Marks a replayed event as such, once its message is back on the queue: only if its record is
   * still the one the replay read (its ETag). A copy poisoned again in between (the replayed one,
   * failing fast, or a late copy of the first) wrote a record of its own, which stays listed as it
   * is: `changed`. The kept message and body go only if they too are still as read; the event is
   * back on the queue with its claim-check blob in place, and poisoned again, it is kept again.
   */
  async markReplayed(kept: KeptFailure, at: Date): Promise<'marked' | 'changed'> {
    const { failure, etags } = kept;
    const row: FailureRow = {
      partitionKey: PARTITION,
      rowKey: failure.eventId,
      ...failure,
      state: 'replayed',
      replayedAt: at.toISOString(),
    };
    try {
      await this.table.updateEntity<FailureRow>(row, 'Replace', { etag: etags.record });
    } catch (error) {
      // Written again since it was read (412), or gone (404): not this replay's to mark.
      if (storageStatus(error) === 412 || storageStatus(error) === 404) return 'changed';
      throw error;
    }
    if (etags.message) await deleteUnchanged(this.messages.getBlobClient(messageBlobName(failure.eventId)), etags.message);
    if (etags.body) await deleteUnchanged(this.messages.getBlobClient(bodyBlobName(failure.eventId)), etags.body);
    return 'marked';
  }

  /**
   * An event that needs no replay (its effect was made by hand, or it was never wanted): no longer
   * listed nor replayable, and its record and kept message go with the retention period after.
   */
  async markResolved(failure: FailureRecord, at: Date): Promise<void> {
    await this.upsert({ partitionKey: PARTITION, rowKey: failure.eventId, ...failure, state: 'resolved', resolvedAt: at.toISOString() });
  }

  /**
   * Removes the records replayed or resolved before `settledBefore`, with their kept messages and
   * bodies. Poisoned ones stay, whatever their age. The record goes first, conditioned on its ETag:
   * one poisoned again since it was listed (its record and message written anew) is not removed;
   * then its blobs, each conditioned on the ETag it had before the record went, so that a message
   * written anew meanwhile (poisoned again just after) stays. A record is never left "poisoned"
   * with nothing to replay. Idempotent: a record or blob already gone counts as removed by someone else.
   */
  async removeSettled(
    settledBefore: Date,
    deadline: number,
    now: () => number = Date.now,
  ): Promise<{ removed: number; complete: boolean }> {
    let removed = 0;
    const cutoff = settledBefore.toISOString();
    try {
      for await (const row of this.table.listEntities<FailureRow>({
        queryOptions: { filter: `PartitionKey eq '${PARTITION}' and state ne 'poisoned'` },
      })) {
        if (now() >= deadline) return { removed, complete: false };
        const settled = settledAt(row);
        if (!settled || settled >= cutoff) continue;
        const blobs = [this.messages.getBlobClient(messageBlobName(row.eventId)), this.messages.getBlobClient(bodyBlobName(row.eventId))];
        const etags = await Promise.all(blobs.map(blobETag));
        try {
          await this.table.deleteEntity(PARTITION, row.rowKey, { etag: row.etag });
          removed++;
        } catch (error) {
          // Gone (another run) or written again since (poisoned again after its replay): not ours to remove.
          if (storageStatus(error) !== 404 && storageStatus(error) !== 412) throw error;
          continue;
        }
        for (const [index, blob] of blobs.entries()) {
          const etag = etags[index];
          if (etag) await deleteUnchanged(blob, etag);
        }
      }
    } catch (error) {
      if (!isMissingResource('table', error) && !isMissingResource('container', error)) throw error;
    }
    const orphans = await this.removeOrphans(settledBefore, deadline, now);
    return { removed, complete: orphans.complete };
  }

  /**
   * Kept messages and bodies written before `writtenBefore` whose record is gone: a run that stopped
   * between a record's delete and its blobs' leaves them, and the next one takes them.
   */
  private async removeOrphans(writtenBefore: Date, deadline: number, now: () => number): Promise<{ complete: boolean }> {
    try {
      for await (const blob of this.messages.listBlobsFlat({ prefix: POISONED_PREFIX })) {
        if (now() >= deadline) return { complete: false };
        if (!(blob.properties.lastModified < writtenBefore) || !blob.properties.etag) continue;
        const eventId = blob.name.slice(POISONED_PREFIX.length).replace(/\.(json|body)$/, '');
        if (await this.get(eventId)) continue;
        await deleteUnchanged(this.messages.getBlobClient(blob.name), blob.properties.etag);
      }
    } catch (error) {
      if (!isMissingResource('container', error)) throw error;
    }
    return { complete: true };
  }

  /** How many events are poisoned now (neither replayed nor resolved). */
  async countPoisoned(): Promise<number> {
    let count = 0;
    try {
      for await (const _row of this.table.listEntities({
        queryOptions: { filter: `PartitionKey eq '${PARTITION}' and state eq 'poisoned'`, select: ['RowKey'] },
      }))
        count++;
    } catch (error) {
      if (!isMissingResource('table', error)) throw error;
    }
    return count;
  }
}

/** A blob's ETag, or null when there is no such blob. */
async function blobETag(blob: BlobClient): Promise<string | null> {
  try {
    return (await blob.getProperties()).etag ?? null;
  } catch (error) {
    if (storageStatus(error) === 404) return null;
    throw error;
  }
}

/** Deletes a blob if it is still as it was (its ETag): gone already, or written anew since (412), it is left. */
async function deleteUnchanged(blob: BlobClient, etag: string): Promise<void> {
  try {
    await blob.deleteIfExists({ conditions: { ifMatch: etag } });
  } catch (error) {
    if (storageStatus(error) !== 412) throw error;
  }
}

const POISONED_PREFIX = 'poisoned/';

/** Where a poisoned event's claim-check body is kept, beside its message, out of the lifecycle rule's reach. */
export function bodyBlobName(eventId: string): string {
  return `${POISONED_PREFIX}${eventId}.body`;
}

/** Where the failed message is kept, in the payloads container. */
export function messageBlobName(eventId: string): string {
  return `${POISONED_PREFIX}${eventId}.json`;
}

function toRecord(row: FailureRow): FailureRecord {
  return {
    eventId: row.eventId,
    poisonedAt: row.poisonedAt,
    table: row.table,
    message: row.message,
    recordId: row.recordId,
    correlationId: row.correlationId,
    operationId: row.operationId,
    organization: row.organization,
    attempts: row.attempts,
    replays: row.replays,
    error: row.error,
    state: row.state,
    ...(row.replayedAt ? { replayedAt: row.replayedAt } : {}),
    ...(row.resolvedAt ? { resolvedAt: row.resolvedAt } : {}),
    ...(row.deliveryKey ? { deliveryKey: row.deliveryKey } : {}),
  };
}
