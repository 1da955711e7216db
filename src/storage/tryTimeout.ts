import { type PipelinePolicy, RestError } from '@azure/core-rest-pipeline';
import type { RequestPolicy, RequestPolicyFactory } from '@azure/storage-blob';

/**
 * How long one try of one storage request may wait for its answer before it is given up and sent
 * again: a connection that hangs (storage or the network swallowed the request) fails over to a new
 * one instead of waiting on the operating system, which for an idle TCP connection is forever. So a
 * done-mark or a lease renewal on a hung connection is retried within the try timeout, and a write
 * of the webhook's request meets its deadline with a try on a live connection.
 *
 * The SDKs have no client-side per-try timeout of their own:
 *  - @azure/storage-blob and @azure/storage-queue take `retryOptions.tryTimeoutInMs` (default none),
 *    but their retry policy only sends it to the service as the `timeout` query parameter, in
 *    seconds (Azure/azure-sdk-for-js, sdk/storage/storage-common/src/policies/StorageRetryPolicyV2.ts,
 *    commit 363ae387: "Set the server-side timeout query parameter"): a service that never answers
 *    is never timed out;
 *  - @azure/data-tables takes retry counts and delays only.
 * What the HTTP client does offer is `PipelineRequest.timeout`, 0 (none) by default: past it the
 * request is aborted with an AbortError (sdk/core/ts-http-runtime/src/nodeHttpClient.ts, commit
 * 16600c73; in the installed @typespec/ts-http-runtime 0.3.6 the timer stops once the answer's
 * headers arrive, so a long download is never cut). Both retry policies pass an error that is not a
 * RestError straight through without retrying (StorageRetryPolicyV2 above; the core retryPolicy,
 * sdk/core/ts-http-runtime/src/policies/retryPolicy.ts, commit 08885221: "If the received error is
 * not a RestError, it is immediately thrown"). So the policy here wraps the SDK's retries: it sets
 * the timeout, which holds for each of their tries, and sends the request again when a try timed
 * out, up to the same number of tries; the last one fails as a RestError with the code ETIMEDOUT,
 * which callers read as storage not answering.
 *
 * One rule for the three services, by the size of what a try sends: the base for a request whose
 * body is small (a table entity, a queue message of at most 64 KiB: their tries all get about the
 * base), plus a second per MiB of body, so that a claim-check body up to WEBHOOK_MAX_BODY_BYTES
 * (4 MiB by default: 4 s more) or a page of reconciled changes has time to travel on a slow link.
 */
export const MIN_UPLOAD_BYTES_PER_SECOND = 1024 * 1024;

export interface TryTimeouts {
  /** The timeout of a try that sends next to no body. */
  baseMs: number;
  /** Tries in all, as many as the SDK's own retries allow. */
  maxTries: number;
}

/** The timeout of one try that sends `bodyBytes`. */
export function tryTimeoutMs(baseMs: number, bodyBytes: number): number {
  return baseMs + Math.ceil((bodyBytes * 1000) / MIN_UPLOAD_BYTES_PER_SECOND);
}

/** What both SDK generations' requests have in common: a body, an abort signal, a timeout. */
interface TimedRequest {
  body?: unknown;
  abortSignal?: { readonly aborted: boolean } | undefined;
  timeout: number;
}

/** Sends a request with a timeout on each try, sending it again (up to `maxTries`) when a try timed out. */
export async function sendWithTryTimeouts<T>(request: TimedRequest, send: () => Promise<T>, timeouts: TryTimeouts): Promise<T> {
  const timeoutMs = tryTimeoutMs(timeouts.baseMs, bodyBytes(request.body));
  for (let attempt = 1; ; attempt++) {
    request.timeout = timeoutMs;
    try {
      return await send();
    } catch (error) {
      // An abort the caller did not ask for is the timeout's.
      const timedOut = error instanceof Error && error.name === 'AbortError' && !request.abortSignal?.aborted;
      if (!timedOut) throw error;
      if (attempt >= timeouts.maxTries) {
        throw new RestError(`storage did not answer within ${timeoutMs} ms, ${attempt} times`, { code: 'ETIMEDOUT' });
      }
    }
  }
}

function bodyBytes(body: unknown): number {
  if (typeof body === 'string') return Buffer.byteLength(body);
  if (Buffer.isBuffer(body) || ArrayBuffer.isView(body)) return body.byteLength;
  if (body instanceof ArrayBuffer) return body.byteLength;
  // A stream (or a function that makes one): of no known size, it gets the base.
  return 0;
}

/** For @azure/data-tables: a pipeline policy placed per call, around the SDK's retries. */
export function tryTimeoutPolicy(timeouts: TryTimeouts): PipelinePolicy {
  return {
    name: 'dataverseWebhooksTryTimeout',
    sendRequest: (request, next) => sendWithTryTimeouts(request, () => next(request), timeouts),
  };
}

/**
 * For @azure/storage-blob and @azure/storage-queue, whose pipeline takes policies of the previous
 * generation as factories; the SDK runs such a policy once per call, before its retries.
 */
export function tryTimeoutFactory(timeouts: TryTimeouts): RequestPolicyFactory {
  return {
    create: (next: RequestPolicy): RequestPolicy => ({
      sendRequest: (request) => sendWithTryTimeouts(request, () => next.sendRequest(request), timeouts),
    }),
  };
}
