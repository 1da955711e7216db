import { isUtf8 } from 'node:buffer';
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
  const { body } = request;
  // A body is never changed on its way to a handler (its bytes are queued as received, inline as
  // text or in a blob), and decoding bytes that are not UTF-8 would put U+FFFD in place of them.
  if (typeof body !== 'string' && !isUtf8(body))
    throw new IssueFound('invalid-json', [{ path: '$', message: 'the body is not UTF-8 text' }]);
  if (body.length > MAX_STRUCTURE) checkStructure(typeof body === 'string' ? Buffer.from(body, 'utf8') : body);
  const raw = parseJson(typeof body === 'string' ? body : bytesToText(body));
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

/**
 * At most this many of the characters that make a JSON text's structure (`{`, `[`, `,` and `:`
 * outside strings: about one per object, array, member and element) in one body: twelve times as
 * many as the densest 256 KB body we know holds (256 KB is the most Dataverse sends; see
 * docs/limits.md). JSON.parse and the model built from it cost up to ~140 bytes of heap for each
 * (an Entity of `{"LogicalName":"a","Attributes":[]}`), so a 4 MiB body (the default size limit) of
 * nothing else would take hundreds of MB; at this limit, less than 40 MB
 * (test/dataverse/boundedWork.test.ts). A body no longer than this many bytes cannot hold more
 * and is not counted, so no real event pays for the count.
 */
export const MAX_STRUCTURE = 256 * 1024;

/**
 * Refuses a body with more structural characters than MAX_STRUCTURE, counted in its bytes (about
 * 1 ms per MB) and no further than the first one past the limit. No byte of a multi-byte UTF-8
 * character is ASCII, so every quote, backslash and bracket found is one.
 */
function checkStructure(bytes: Uint8Array): void {
  const length = bytes.length;
  let count = 0;
  for (let i = 0; i < length; i++) {
    const code = bytes[i];
    if (code === 0x22 /* " */) {
      // A string: to its closing quote, stepping over each escaped character.
      for (i++; i < length; i++) {
        const inString = bytes[i];
        if (inString === 0x22) break;
        if (inString === 0x5c /* backslash */) i++;
      }
    } else if (code === 0x7b /* { */ || code === 0x5b /* [ */ || code === 0x2c /* , */ || code === 0x3a /* : */) {
      if (++count > MAX_STRUCTURE) {
        throw new IssueFound('too-complex', [
          { path: '$', message: `more than ${MAX_STRUCTURE} objects, arrays, members and elements (counted by their { [ , and :)` },
        ]);
      }
    }
  }
}

function parseJson(text: string): unknown {
  // A UTF-8 byte order mark is not JSON; some senders add one.
  const json = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  if (json.length === 0) throw new IssueFound('invalid-json', [{ path: '$', message: 'the body is empty' }]);
  try {
    return JSON.parse(json);
  } catch (error) {
    throw new IssueFound('invalid-json', [{ path: '$', message: jsonFault(String(error)) }]);
  }
}

/**
 * Where JSON.parse stopped, in words that add to the headline ("The body is not valid JSON") rather
 * than repeat it. V8's message quotes the body around the fault (customer data): only its position,
 * or that the text ended early, is safe to report. For an unexpected token V8 names no position.
 */
function jsonFault(message: string): string {
  const position = /position (\d+)/.exec(message)?.[1];
  if (position !== undefined) return `unexpected input at character ${position}`;
  if (/end of JSON input/i.test(message)) return 'the text ends before the JSON does';
  return 'a character JSON does not allow there (the parser names no position)';
}

/** Like parseDataverseWebhook, for callers that prefer exceptions (tests, the CLI). */
export function parseDataverseWebhookOrThrow(request: WebhookRequest): DataverseEvent {
  const result = parseDataverseWebhook(request);
  if (!result.ok) throw result.error;
  return result.event;
}
