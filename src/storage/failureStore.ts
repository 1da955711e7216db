import type { TableClient } from '@azure/data-tables';
import type { ContainerClient } from '@azure/storage-blob';
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
  state: 'poisoned' | 'replayed';
  replayedAt?: string;
}

type FailureRow = FailureRecord & { partitionKey: string; rowKey: string };

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
    try {
      return toRecord(await this.table.getEntity<FailureRow>(PARTITION, eventId));
    } catch (error) {
      // No such row, or no table yet.
      if (storageStatus(error) === 404) return null;
      throw error;
    }
  }

  async message(eventId: string): Promise<string> {
    return (await this.messages.getBlobClient(messageBlobName(eventId)).downloadToBuffer()).toString('utf8');
  }

  async markReplayed(failure: FailureRecord, at: Date): Promise<void> {
    await this.upsert({ partitionKey: PARTITION, rowKey: failure.eventId, ...failure, state: 'replayed', replayedAt: at.toISOString() });
    await this.messages.getBlobClient(messageBlobName(failure.eventId)).deleteIfExists();
  }
}

/** Where the failed message is kept, in the payloads container. */
export function messageBlobName(eventId: string): string {
  return `poisoned/${eventId}.json`;
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
  };
}
