import type { BlobClient } from '@azure/storage-blob';

/**
 * A blob's bytes in one GET (downloadToBuffer asks for the blob's properties first: a round trip
 * more), with the ETag they had, for a later write or delete conditioned on them.
 */
export async function downloadBlob(blob: BlobClient, signal?: AbortSignal): Promise<{ bytes: Buffer; etag: string | null }> {
  const response = await blob.download(0, undefined, signal ? { abortSignal: signal } : {});
  const chunks: Buffer[] = [];
  for await (const chunk of response.readableStreamBody ?? []) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string));
  return { bytes: Buffer.concat(chunks), etag: response.etag ?? null };
}
