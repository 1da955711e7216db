import { TableClient } from '@azure/data-tables';
import { DefaultAzureCredential, ManagedIdentityCredential, type TokenCredential } from '@azure/identity';
import { BlobServiceClient, type ContainerClient, newPipeline as newBlobPipeline } from '@azure/storage-blob';
import { newPipeline as newQueuePipeline, type QueueClient, QueueServiceClient } from '@azure/storage-queue';
import { definedSettings } from '../settings';
import { DEFAULT_STORAGE_NAMES, poisonQueueName, STORAGE_CONNECTION, type StorageNames } from './names';
import { tryTimeoutFactory, tryTimeoutPolicy } from './tryTimeout';

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
   * Tries per request, and how long one try may wait for its answer before it is sent again (a
   * second more per MiB it sends; see tryTimeout.ts), which blob and queue requests also give the
   * service as its own `timeout`. The default keeps a whole write (with retries) inside the ingest
   * deadline for a try that hangs and one that answers; a deadline still bounds it from outside.
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
  const { queues, blobs, table } = serviceClients(connection, options.retry ?? DEFAULT_RETRY);
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
 * The three services' clients, each with the SDK's retries inside a timeout per try
 * (tryTimeout.ts). Blob and queue clients take the policy in a pipeline of their own, made with
 * the credential and URL the connection string gives.
 */
function serviceClients(
  connection: string | StorageConnection,
  retry: { maxTries: number; tryTimeoutMs: number },
): { queues: QueueServiceClient; blobs: BlobServiceClient; table: (name: string) => TableClient } {
  const timeouts = { baseMs: retry.tryTimeoutMs, maxTries: retry.maxTries };
  const pipelineOf = (pipelineFor: typeof newBlobPipeline | typeof newQueuePipeline, credential: StorageCredential) => {
    const pipeline = pipelineFor(credential, { retryOptions: { maxTries: retry.maxTries, tryTimeoutInMs: retry.tryTimeoutMs } });
    pipeline.factories.push(tryTimeoutFactory(timeouts));
    return pipeline;
  };
  const tableOptions = {
    retryOptions: { maxRetries: Math.max(0, retry.maxTries - 1) },
    additionalPolicies: [{ policy: tryTimeoutPolicy(timeouts), position: 'perCall' as const }],
  };
  const resolved: StorageConnection =
    typeof connection === 'string' ? { kind: 'connection-string', connectionString: connection } : connection;
  if (resolved.kind === 'identity') {
    return {
      queues: new QueueServiceClient(resolved.queueUrl, pipelineOf(newQueuePipeline, resolved.credential)),
      blobs: new BlobServiceClient(resolved.blobUrl, pipelineOf(newBlobPipeline, resolved.credential)),
      table: (name) => new TableClient(resolved.tableUrl, name, resolved.credential, tableOptions),
    };
  }
  // The SDKs read the connection string: its URLs (a SAS in them), and the account key, which the
  // blob client shows and the queue client keeps to itself (one string, one account: the same key).
  const { connectionString } = resolved;
  const queues = QueueServiceClient.fromConnectionString(connectionString);
  const blobs = BlobServiceClient.fromConnectionString(connectionString);
  return {
    queues: new QueueServiceClient(queues.url, pipelineOf(newQueuePipeline, blobs.credential)),
    blobs: new BlobServiceClient(blobs.url, pipelineOf(newBlobPipeline, blobs.credential)),
    table: (name) =>
      TableClient.fromConnectionString(connectionString, name, {
        ...tableOptions,
        // Azurite serves plain http on loopback; Azure connection strings say https and stay https.
        allowInsecureConnection: /DefaultEndpointsProtocol=http;|UseDevelopmentStorage=true/i.test(connectionString),
      }),
  };
}

type StorageCredential = BlobServiceClient['credential'];

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
