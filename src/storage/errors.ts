/**
 * What a storage error says, read the same way for queues, blobs and tables: the three SDKs all
 * throw @azure/core-rest-pipeline's RestError, but put the service's error code in different places.
 */

/** The error code storage answered with: `code` on queue and blob errors, in `details` on table and download errors. */
export function storageErrorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const { code, details } = error as { code?: unknown; details?: { errorCode?: unknown } };
  if (typeof code === 'string') return code;
  return typeof details?.errorCode === 'string' ? details.errorCode : undefined;
}

/** The HTTP status storage answered with; undefined when no answer came (a network error, an abort). */
export function storageStatus(error: unknown): number | undefined {
  const status = typeof error === 'object' && error !== null ? (error as { statusCode?: unknown }).statusCode : undefined;
  return typeof status === 'number' ? status : undefined;
}

const MISSING_CODE = { queue: 'QueueNotFound', container: 'ContainerNotFound', table: 'TableNotFound' } as const;

/** Whether storage answered that this kind of resource does not exist (not a missing message, blob or row). */
export function isMissingResource(kind: keyof typeof MISSING_CODE, error: unknown): boolean {
  return storageStatus(error) === 404 && storageErrorCode(error) === MISSING_CODE[kind];
}

/**
 * Whether storage refused the request outright, so that it certainly wrote nothing: a 4xx answer
 * (bad request, authorization, not found, too large), except 408, a timeout that may have been
 * written. A 5xx (Azure Storage documents 500 OperationTimedOut as "may or may not have
 * succeeded"), a lost connection or an abort say nothing about what was written.
 */
export function wasRefused(error: unknown): boolean {
  const status = storageStatus(error);
  return status !== undefined && status >= 400 && status < 500 && status !== 408;
}
