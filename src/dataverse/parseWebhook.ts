import { IssueFound, WebhookParseError } from './errors';
import { normalizeExecutionContext } from './executionContext';
import { type HeaderSource, isTruncated, readDataverseHeaders } from './headers';
import { type DataverseEvent, TRUNCATED_PROPERTIES, type TruncatedProperty } from './model';

export interface WebhookRequest {
  /** The raw request body: bytes as received, or text. */
  body: Uint8Array | string;
  headers: HeaderSource;
}

export type ParseResult = { ok: true; event: DataverseEvent } | { ok: false; error: WebhookParseError };

/**
 * Turns a webhook request (raw body + headers) into a typed, normalized DataverseEvent.
 * Never throws for bad input: the error lists the JSON paths that failed, never their values.
 */
export function parseDataverseWebhook(request: WebhookRequest): ParseResult {
  try {
    return { ok: true, event: parseOrThrow(request) };
  } catch (error) {
    if (error instanceof IssueFound) return { ok: false, error: new WebhookParseError(error.kind, error.issues) };
    if (error instanceof RangeError) {
      // Stack exhaustion on a pathological body that slipped past the depth bounds.
      return { ok: false, error: new WebhookParseError('too-deep', [{ path: '$', message: 'the body nests too deeply' }]) };
    }
    throw error;
  }
}

function parseOrThrow(request: WebhookRequest): DataverseEvent {
  const raw = parseJson(typeof request.body === 'string' ? request.body : bytesToText(request.body));
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new IssueFound('invalid-context', [{ path: '$', message: 'expected a JSON object (a RemoteExecutionContext)' }]);
  }
  const truncated = isTruncated(request.headers);
  const context = normalizeExecutionContext(raw);
  const removedProperties: TruncatedProperty[] = truncated
    ? TRUNCATED_PROPERTIES.filter((property) => (raw as Record<string, unknown>)[property] === undefined)
    : [];
  return Object.assign(context, { truncated, removedProperties, headers: readDataverseHeaders(request.headers) });
}

/** Buffer's decoder is several times faster than TextDecoder on large bodies. */
function bytesToText(bytes: Uint8Array): string {
  const buffer = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return buffer.toString('utf8');
}

function parseJson(text: string): unknown {
  // A UTF-8 byte order mark is not JSON; some senders add one.
  const json = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  try {
    return JSON.parse(json);
  } catch (error) {
    // V8's message quotes the body around the fault; only the position is safe to report.
    const position = /position (\d+)/.exec(String(error))?.[1];
    throw new IssueFound('invalid-json', [
      { path: '$', message: position === undefined ? 'the body is not valid JSON' : `unexpected input at character ${position}` },
    ]);
  }
}

/** Like parseDataverseWebhook, for callers that prefer exceptions (tests, the CLI). */
export function parseDataverseWebhookOrThrow(request: WebhookRequest): DataverseEvent {
  const result = parseDataverseWebhook(request);
  if (!result.ok) throw result.error;
  return result.event;
}
