import { z } from 'zod';
import { issueList, zodIssues } from '../dataverse/issues';
import type { TokenProvider } from './tokens';

/**
 * JSON over HTTPS with a bearer token, shared by the Dataverse Web API client and the Azure
 * Resource Manager calls: one place that sets the token, retries what may be retried, and turns a
 * failure into an error that names the request and the service's own code and message.
 */

export type FetchFunction = (input: string, init: RequestInit) => Promise<Response>;

export type HttpMethod = 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE';

export interface JsonRequest {
  method: HttpMethod;
  url: URL;
  /** The scope of the token the request carries. */
  scope: string;
  headers?: Record<string, string>;
  body?: unknown;
}

export interface HttpOptions {
  tokens: TokenProvider;
  fetch?: FetchFunction;
  /** How long one attempt may take. */
  timeoutMs?: number;
  /** Attempts in all, for a throttled (429) request or a GET that met a gateway error. */
  maxAttempts?: number;
  sleep?: (ms: number) => Promise<void>;
}

const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_ATTEMPTS = 4;
/** Dataverse's service protection limits can ask for minutes; a CLI or a handler should not hang that long. */
const MAX_RETRY_AFTER_MS = 60_000;
/** A service's message is kept to this length in an error: enough to act on, bounded for logs. */
const MAX_SERVICE_MESSAGE_LENGTH = 500;

export class ApiError extends Error {
  override readonly name = 'ApiError';

  constructor(
    /** `GET serviceendpoints?$select=…`: the request, relative to the service root, never a token or a body. */
    readonly request: string,
    /** The HTTP status, or 0 when no response came. */
    readonly status: number,
    /** The service's error code, e.g. `0x80040217` (Dataverse) or `ResourceNotFound` (ARM). */
    readonly code: string | null,
    readonly serviceMessage: string | null,
  ) {
    super(
      `${request} failed: ${status === 0 ? 'no response' : `HTTP ${status}`}${code ? ` ${code}` : ''}${serviceMessage ? `: ${serviceMessage}` : ''}`,
    );
  }
}

const errorBody = z.object({
  error: z.object({ code: z.union([z.string(), z.number()]).optional(), message: z.string().optional() }),
});

async function readServiceError(response: Response): Promise<{ code: string | null; message: string | null }> {
  // Only a JSON error is read: any other body could echo what was sent.
  if (!(response.headers.get('content-type') ?? '').includes('json')) return { code: null, message: null };
  const parsed = errorBody.safeParse(await response.json().catch(() => undefined));
  if (!parsed.success) return { code: null, message: null };
  const message = parsed.data.error.message ?? null;
  return {
    code: parsed.data.error.code === undefined ? null : String(parsed.data.error.code),
    message: message && message.length > MAX_SERVICE_MESSAGE_LENGTH ? `${message.slice(0, MAX_SERVICE_MESSAGE_LENGTH)}…` : message,
  };
}

function retryDelayMs(response: Response, attempt: number): number {
  const header = response.headers.get('retry-after');
  const seconds = header === null || header.trim() === '' ? Number.NaN : Number(header);
  if (Number.isFinite(seconds) && seconds >= 0) return Math.min(seconds * 1000, MAX_RETRY_AFTER_MS);
  return Math.min(1000 * 2 ** (attempt - 1), MAX_RETRY_AFTER_MS);
}

function isRetryable(method: HttpMethod, status: number): boolean {
  // 429 means the request was not processed, so even a create may be sent again; a gateway error
  // may come after a write happened, so only a read is repeated.
  return status === 429 || (method === 'GET' && (status === 502 || status === 503 || status === 504));
}

export interface HttpClient {
  send(request: JsonRequest, describe: string): Promise<Response>;
}

export function createHttpClient(options: HttpOptions): HttpClient {
  const fetchFunction = options.fetch ?? ((input, init) => fetch(input, init));
  const maxAttempts = options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));

  return {
    async send(request, describe) {
      for (let attempt = 1; ; attempt++) {
        const token = await options.tokens.getToken(request.scope);
        const headers: Record<string, string> = { Accept: 'application/json', ...request.headers, Authorization: `Bearer ${token}` };
        if (request.body !== undefined) headers['Content-Type'] = 'application/json; charset=utf-8';
        let response: Response;
        try {
          response = await fetchFunction(request.url.href, {
            method: request.method,
            headers,
            body: request.body === undefined ? undefined : JSON.stringify(request.body),
            signal: AbortSignal.timeout(timeoutMs),
            redirect: 'error',
          });
        } catch (error) {
          const reason =
            error instanceof Error && error.name === 'TimeoutError'
              ? `no answer within ${timeoutMs} ms`
              : error instanceof Error
                ? error.message
                : String(error);
          throw new ApiError(describe, 0, null, reason);
        }
        if (response.ok) return response;
        if (attempt < maxAttempts && isRetryable(request.method, response.status)) {
          await response.body?.cancel();
          await sleep(retryDelayMs(response, attempt));
          continue;
        }
        const { code, message } = await readServiceError(response);
        throw new ApiError(describe, response.status, code, message);
      }
    },
  };
}

/** Reads a JSON body and checks it against a schema; a mismatch names the request and the paths. */
export async function readJson<T>(response: Response, schema: z.ZodType<T>, describe: string): Promise<T> {
  const json: unknown = await response.json().catch(() => undefined);
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const issues = issueList(zodIssues(parsed.error));
    throw new ApiError(describe, response.status, 'UnexpectedResponse', `the answer does not have the expected shape (${issues})`);
  }
  return parsed.data;
}
