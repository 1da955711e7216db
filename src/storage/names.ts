/**
 * The storage names the app uses. The HTTP function writes EVENTS_QUEUE and the queue trigger
 * reads it; the Functions host moves a message that failed maxDequeueCount times to
 * `<queue>-poison`, which the poison trigger reads.
 */
export const EVENTS_QUEUE = 'dataverse-events';
/**
 * The app setting (and the prefix of the identity-based settings) naming the storage account: the
 * Functions host's own, which the queue triggers and the app's clients share.
 */
export const STORAGE_CONNECTION = 'AzureWebJobsStorage';
export const POISON_QUEUE = poisonQueueName(EVENTS_QUEUE);
/** Bodies too large for a queue message (claim checks). */
export const PAYLOAD_CONTAINER = 'dataverse-payloads';
/** Bodies answered 400, kept (bounded) so a schema bug never silently loses real events. */
export const REJECTED_CONTAINER = 'dataverse-rejected';
/** One row per processed delivery: the effects-once ledger. */
export const LEDGER_TABLE = 'DataverseEventLedger';
/** One row per poisoned event, for `failures` and `replay`. */
export const FAILURES_TABLE = 'DataverseEventFailures';
/**
 * Reconciliation (src/pipeline/reconcile/): the run's lease and each table's change tracking link
 * in RECONCILE_TABLE; each page of changes a run found, as a message on RECONCILE_QUEUE (its rows in
 * PAYLOAD_CONTAINER under `reconcile/`), which the `queueReconciledChanges` function turns into events.
 */
export const RECONCILE_TABLE = 'DataverseReconcile';
export const RECONCILE_QUEUE = 'dataverse-reconcile';

export interface StorageNames {
  eventsQueue: string;
  payloadContainer: string;
  rejectedContainer: string;
  ledgerTable: string;
  failuresTable: string;
  reconcileTable: string;
  reconcileQueue: string;
}

export const DEFAULT_STORAGE_NAMES: StorageNames = {
  eventsQueue: EVENTS_QUEUE,
  payloadContainer: PAYLOAD_CONTAINER,
  rejectedContainer: REJECTED_CONTAINER,
  ledgerTable: LEDGER_TABLE,
  failuresTable: FAILURES_TABLE,
  reconcileTable: RECONCILE_TABLE,
  reconcileQueue: RECONCILE_QUEUE,
};

/**
 * The queue the Functions host moves a message to once it failed maxDequeueCount times:
 * `<queue>-poison`, unless the queue is itself a poison queue (its name ends in "-poison") or the
 * longer name would not be a valid queue name (over 63 characters), when the queue has no poison
 * queue at all. Azure/azure-sdk-for-net, sdk/storage/Microsoft.Azure.WebJobs.Extensions.Storage.Queues/
 * src/Listeners/QueueListenerFactory.cs `CreatePoisonQueueReference` (commit 0efe5a88). The app's
 * poison triggers and the dev host's queue listener both take the name from here.
 */
export function poisonQueueNameFor(queueName: string): string | null {
  if (queueName.endsWith('-poison')) return null;
  const name = `${queueName}-poison`;
  // A queue name is 3 to 63 characters (QueueClientExtensions.IsValidQueueName).
  return name.length <= 63 ? name : null;
}

/** The poison queue of one of the app's own queues, which always has one. */
export function poisonQueueName(queueName: string): string {
  const name = poisonQueueNameFor(queueName);
  if (name === null) throw new Error(`queue ${queueName} has no poison queue: its name ends in -poison or is over 56 characters`);
  return name;
}
