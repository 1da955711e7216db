import type { ContainerClient } from '@azure/storage-blob';
import { containerResource, provisioned } from './provision';

export interface RejectedBody {
  eventId: string;
  /** The parse error kind: invalid-json, invalid-context, too-deep, too-complex. */
  reason: string;
  /** `path: message` lines; they name JSON paths, never values. */
  errors: string[];
  body: Buffer;
  headers: Record<string, string>;
  /** At most this many bytes of the body are kept. */
  maxBytes: number;
  receivedAt: Date;
}

/** Blob metadata values must be ASCII and all of it fits in 8 KB: keep each field well under that. */
const METADATA_FIELD_LIMIT = 2000;

function metadataText(value: unknown): string {
  return encodeURIComponent(JSON.stringify(value)).slice(0, METADATA_FIELD_LIMIT);
}

/**
 * Keeps a body we answered 400 for, bounded in size, with why it was refused in the blob's
 * metadata. Named by day so the container can be browsed and aged out by a lifecycle rule.
 */
export async function keepRejected(container: ContainerClient, rejected: RejectedBody, signal?: AbortSignal): Promise<{ name: string }> {
  const day = rejected.receivedAt.toISOString().slice(0, 10).replaceAll('-', '/');
  const name = `${day}/${rejected.eventId}.json`;
  const kept = rejected.body.subarray(0, rejected.maxBytes);
  await provisioned(containerResource(container), () =>
    container.getBlockBlobClient(name).uploadData(kept, {
      abortSignal: signal,
      blobHTTPHeaders: { blobContentType: 'application/octet-stream' },
      metadata: {
        eventid: rejected.eventId,
        reason: rejected.reason,
        receivedat: rejected.receivedAt.toISOString(),
        originalbytes: String(rejected.body.length),
        keptbytes: String(kept.length),
        errors: metadataText(rejected.errors),
        headers: metadataText(rejected.headers),
      },
    }),
  );
  return { name };
}
