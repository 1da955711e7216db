import type { TableClient } from '@azure/data-tables';
import type { ContainerClient } from '@azure/storage-blob';
import type { QueueClient } from '@azure/storage-queue';
import { isMissingResource } from './errors';

/**
 * The app creates the queues, containers and tables it uses, because nothing else does: the
 * Functions host creates none of them (only its own `azure-webjobs-*` containers and, on the first
 * move, a `-poison` queue), a plain `func start` against a fresh Azurite has none, and neither has
 * a Function App deployed to an account the Bicep did not make.
 *
 * Nothing is checked in advance: an operation runs as it always does and, only when storage
 * answers that the queue, container or table does not exist, the resource is created and the
 * operation tried once more. Once a resource exists this costs no round trip at all.
 */

export type StorageResource =
  | { kind: 'queue'; client: QueueClient }
  | { kind: 'container'; client: ContainerClient }
  | { kind: 'table'; client: TableClient };

/** Creates the resource if it is not there; concurrent callers share one creation per client. */
const creating = new WeakMap<object, Promise<void>>();

export function createResource(resource: StorageResource): Promise<void> {
  let pending = creating.get(resource.client);
  if (!pending) {
    pending = createOnce(resource).finally(() => creating.delete(resource.client));
    creating.set(resource.client, pending);
  }
  return pending;
}

async function createOnce(resource: StorageResource): Promise<void> {
  switch (resource.kind) {
    case 'queue':
      await resource.client.createIfNotExists();
      return;
    case 'container':
      await resource.client.createIfNotExists();
      return;
    case 'table':
      // createTable ignores "already exists".
      await resource.client.createTable();
      return;
  }
}

/** Runs `operation`; if storage says the resource is missing, creates it and runs `operation` once more. */
export async function provisioned<T>(resource: StorageResource, operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (error) {
    if (!isMissingResource(resource.kind, error)) throw error;
  }
  await createResource(resource);
  return operation();
}

export const queueResource = (client: QueueClient): StorageResource => ({ kind: 'queue', client });
export const containerResource = (client: ContainerClient): StorageResource => ({ kind: 'container', client });
export const tableResource = (client: TableClient): StorageResource => ({ kind: 'table', client });
