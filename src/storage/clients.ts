import { TableClient } from '@azure/data-tables';
import { DefaultAzureCredential, ManagedIdentityCredential, type TokenCredential } from '@azure/identity';
import { BlobServiceClient, type ContainerClient } from '@azure/storage-blob';
import { type QueueClient, QueueServiceClient } from '@azure/storage-queue';
import { definedSettings } from '../settings';
import { DEFAULT_STORAGE_NAMES, poisonQueueName, STORAGE_CONNECTION, type StorageNames } from './names';

export interface StorageClients {
  names: StorageNames;
  eventsQueue: QueueClient;
  poisonQueue: QueueClient;
  payloads: ContainerClient;
  rejected: ContainerClient;
  ledger: TableClient;
  failures: TableClient;
  /** Reconciliation: the run's lease and each table's change tracking link. */
  reconcile: TableClient;
  /** Reconciliation: one message per page of changes found, turned into events by queueReconciledChanges. */
  reconcileQueue: QueueClient;
  /** Where the host moves a page that failed every attempt; each reconcile run puts them back. */
  reconcilePoisonQueue: QueueClient;
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

/**
 * How to reach the storage account: a connection string (Azurite, or an account key), or the
 * identity-based form the Functions host reads from `AzureWebJobsStorage__*` settings, which the
 * Bicep deployment uses so that no account key exists in the app's settings.
 */
export type StorageConnection =
  | { kind: 'connection-string'; connectionString: string }
  | { kind: 'identity'; blobUrl: string; queueUrl: string; tableUrl: string; credential: TokenCredential };

export class StorageConfigurationError extends Error {
  override readonly name = 'StorageConfigurationError';
}

/**
 * Reads the `AzureWebJobsStorage` connection the way the Functions host does: the setting itself
 * as a connection string, else `AzureWebJobsStorage__accountName` or the three
 * `AzureWebJobsStorage__{blob,queue,table}ServiceUri` settings with a managed identity
 * (`__credential: managedidentity`, `__clientId` for a user-assigned one) or, elsewhere, the
 * developer's Azure login.
 */
export function storageConnectionFrom(given: Readonly<Record<string, string | undefined>>, name = STORAGE_CONNECTION): StorageConnection {
  // An empty setting is an unset one (the Bicep writes '' for a parameter nobody gave).
  const settings = definedSettings(given);
  const connectionString = settings[name];
  if (connectionString) return { kind: 'connection-string', connectionString };
  const account = settings[`${name}__accountName`];
  const serviceUrl = (service: 'blob' | 'queue' | 'table') =>
    settings[`${name}__${service}ServiceUri`] ?? (account ? `https://${account}.${service}.core.windows.net` : undefined);
  const [blobUrl, queueUrl, tableUrl] = [serviceUrl('blob'), serviceUrl('queue'), serviceUrl('table')];
  if (!blobUrl || !queueUrl || !tableUrl) {
    throw new StorageConfigurationError(
      `${name} is not set: give a connection string, or ${name}__accountName (or its blob, queue and table ServiceUri settings) for an identity-based connection`,
    );
  }
  const clientId = settings[`${name}__clientId`];
  const credential =
    settings[`${name}__credential`]?.toLowerCase() === 'managedidentity'
      ? new ManagedIdentityCredential(clientId ? { clientId } : {})
      : new DefaultAzureCredential(clientId ? { managedIdentityClientId: clientId } : {});
  return { kind: 'identity', blobUrl, queueUrl, tableUrl, credential };
}

export function createStorageClients(connection: string | StorageConnection, options: StorageClientOptions = {}): StorageClients {
  const names = { ...DEFAULT_STORAGE_NAMES, ...options.names };
  const retry = options.retry ?? DEFAULT_RETRY;
  const retryOptions = { maxTries: retry.maxTries, tryTimeoutInMs: retry.tryTimeoutMs };
  const resolved: StorageConnection =
    typeof connection === 'string' ? { kind: 'connection-string', connectionString: connection } : connection;
  let queues: QueueServiceClient;
  let blobs: BlobServiceClient;
  let table: (name: string) => TableClient;
  if (resolved.kind === 'connection-string') {
    const { connectionString } = resolved;
    queues = QueueServiceClient.fromConnectionString(connectionString, { retryOptions });
    blobs = BlobServiceClient.fromConnectionString(connectionString, { retryOptions });
    table = (name) =>
      TableClient.fromConnectionString(connectionString, name, {
        // Azurite serves plain http on loopback; Azure connection strings say https and stay https.
        allowInsecureConnection: /DefaultEndpointsProtocol=http;|UseDevelopmentStorage=true/i.test(connectionString),
        retryOptions: { maxRetries: Math.max(0, retry.maxTries - 1) },
      });
  } else {
    queues = new QueueServiceClient(resolved.queueUrl, resolved.credential, { retryOptions });
    blobs = new BlobServiceClient(resolved.blobUrl, resolved.credential, { retryOptions });
    table = (name) =>
      new TableClient(resolved.tableUrl, name, resolved.credential, { retryOptions: { maxRetries: Math.max(0, retry.maxTries - 1) } });
  }
  return {
    names,
    eventsQueue: queues.getQueueClient(names.eventsQueue),
    poisonQueue: queues.getQueueClient(poisonQueueName(names.eventsQueue)),
    payloads: blobs.getContainerClient(names.payloadContainer),
    rejected: blobs.getContainerClient(names.rejectedContainer),
    ledger: table(names.ledgerTable),
    failures: table(names.failuresTable),
    reconcile: table(names.reconcileTable),
    reconcileQueue: queues.getQueueClient(names.reconcileQueue),
    reconcilePoisonQueue: queues.getQueueClient(poisonQueueName(names.reconcileQueue)),
  };
}

/**
 * Creates every queue, container and table the app uses (idempotent). The app itself needs none of
 * this (it creates what it uses on first use, see provision.ts); the benchmark does it first so
 * that it measures the steady state.
 */
export async function ensureStorageResources(clients: StorageClients): Promise<void> {
  await Promise.all([
    clients.eventsQueue.createIfNotExists(),
    clients.poisonQueue.createIfNotExists(),
    clients.payloads.createIfNotExists(),
    clients.rejected.createIfNotExists(),
    clients.ledger.createTable(),
    clients.failures.createTable(),
    clients.reconcile.createTable(),
    clients.reconcileQueue.createIfNotExists(),
  ]);
}

let processClients: StorageClients | undefined;

/**
 * The process-wide clients on the host's own storage connection, created on first use and reused
 * by every invocation (each client keeps its connections alive).
 */
export function getStorageClients(env: NodeJS.ProcessEnv = process.env): StorageClients {
  processClients ??= createStorageClients(storageConnectionFrom(env));
  return processClients;
}
