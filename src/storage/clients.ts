import { BlobServiceClient, type ContainerClient } from '@azure/storage-blob';
import { QueueServiceClient, type QueueClient } from '@azure/storage-queue';
import { TableClient } from '@azure/data-tables';
import { DEFAULT_STORAGE_NAMES, poisonQueueName, type StorageNames } from './names';

export interface StorageClients {
  names: StorageNames;
  eventsQueue: QueueClient;
  poisonQueue: QueueClient;
  payloads: ContainerClient;
  rejected: ContainerClient;
  ledger: TableClient;
  failures: TableClient;
}

export interface StorageClientOptions {
  names?: Partial<StorageNames>;
  /**
   * The SDKs' own retries. The default keeps a whole write (with retries) well inside the ingest
   * deadline; a deadline still bounds it from outside.
   */
  retry?: { maxTries: number; tryTimeoutMs: number };
}

const DEFAULT_RETRY = { maxTries: 3, tryTimeoutMs: 5_000 };

export function createStorageClients(connectionString: string, options: StorageClientOptions = {}): StorageClients {
  const names = { ...DEFAULT_STORAGE_NAMES, ...options.names };
  const retry = options.retry ?? DEFAULT_RETRY;
  const queues = QueueServiceClient.fromConnectionString(connectionString, {
    retryOptions: { maxTries: retry.maxTries, tryTimeoutInMs: retry.tryTimeoutMs },
  });
  const blobs = BlobServiceClient.fromConnectionString(connectionString, {
    retryOptions: { maxTries: retry.maxTries, tryTimeoutInMs: retry.tryTimeoutMs },
  });
  const table = (name: string) =>
    TableClient.fromConnectionString(connectionString, name, {
      // Azurite serves plain http on loopback; Azure connection strings say https and stay https.
      allowInsecureConnection: /DefaultEndpointsProtocol=http;|UseDevelopmentStorage=true/i.test(connectionString),
      retryOptions: { maxRetries: Math.max(0, retry.maxTries - 1) },
    });
  return {
    names,
    eventsQueue: queues.getQueueClient(names.eventsQueue),
    poisonQueue: queues.getQueueClient(poisonQueueName(names.eventsQueue)),
    payloads: blobs.getContainerClient(names.payloadContainer),
    rejected: blobs.getContainerClient(names.rejectedContainer),
    ledger: table(names.ledgerTable),
    failures: table(names.failuresTable),
  };
}

/** Creates every queue, container and table the app uses (idempotent). */
export async function ensureStorageResources(clients: StorageClients): Promise<void> {
  await Promise.all([
    clients.eventsQueue.createIfNotExists(),
    clients.poisonQueue.createIfNotExists(),
    clients.payloads.createIfNotExists(),
    clients.rejected.createIfNotExists(),
    clients.ledger.createTable(),
    clients.failures.createTable(),
  ]);
}

export class StorageConfigurationError extends Error {
  override readonly name = 'StorageConfigurationError';
}

let processClients: StorageClients | undefined;

/**
 * The process-wide clients on `AzureWebJobsStorage`, created on first use and reused by every
 * invocation (each client keeps its connections alive).
 */
export function getStorageClients(env: NodeJS.ProcessEnv = process.env): StorageClients {
  if (processClients) return processClients;
  const connectionString = env.AzureWebJobsStorage;
  if (!connectionString) {
    throw new StorageConfigurationError('AzureWebJobsStorage is not set: the app needs a storage connection string for its queues, blobs and tables');
  }
  processClients = createStorageClients(connectionString);
  return processClients;
}
