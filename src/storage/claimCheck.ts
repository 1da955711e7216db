import { createHash } from 'node:crypto';
import type { ContainerClient } from '@azure/storage-blob';
import { downloadBlob } from './blobs';
import { isMissingResource } from './errors';
import { containerResource, provisioned } from './provision';

/** Where a body too large for a queue message was put, and how to know it came back intact. */
export interface BlobReference {
  container: string;
  name: string;
  size: number;
  sha256: string;
}

export class ClaimCheckError extends Error {
  override readonly name = 'ClaimCheckError';
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export async function putPayload(container: ContainerClient, name: string, body: Buffer, signal?: AbortSignal): Promise<BlobReference> {
  await provisioned(containerResource(container), () =>
    container.getBlockBlobClient(name).uploadData(body, {
      abortSignal: signal,
      blobHTTPHeaders: { blobContentType: 'application/json' },
    }),
  );
  return { container: container.containerName, name, size: body.length, sha256: sha256(body) };
}

/** The body exactly as it was accepted; a blob that changed or shrank is an error, not an event. */
export async function getPayload(container: ContainerClient, reference: BlobReference, signal?: AbortSignal): Promise<Buffer> {
  const { bytes: body } = await downloadBlob(container.getBlobClient(reference.name), signal);
  if (body.length !== reference.size || sha256(body) !== reference.sha256) {
    throw new ClaimCheckError(`claim-check blob ${reference.name} does not match its reference (size or sha256)`);
  }
  return body;
}

export async function deletePayload(container: ContainerClient, reference: BlobReference, signal?: AbortSignal): Promise<void> {
  try {
    await container.getBlobClient(reference.name).deleteIfExists({ abortSignal: signal });
  } catch (error) {
    // No container, no blob: already as deleted as it gets.
    if (!isMissingResource('container', error)) throw error;
  }
}
