export type WebhookParseErrorKind =
  /** The body is not JSON (or not UTF-8 text). */
  | 'invalid-json'
  /** JSON, but not a usable RemoteExecutionContext: wrong or missing required fields. */
  | 'invalid-context'
  /** Nested deeper than any real payload; refused before it can exhaust the stack. */
  | 'too-deep'
  /** More objects, arrays and separators than any real payload; refused before it is parsed. */
  | 'too-complex';

export interface ParseIssue {
  /**
   * Where in the body, as a JSON path: `$.InputParameters[0].value.Id`. It names array indexes and
   * the members the DataContract declares, never a member name of the payload's own (those can be
   * customer data, an e-mail address used as a key): such a member is named by its position,
   * `.#2` for the third (see `memberAt`).
   */
  path: string;
  /** What was wrong. Never contains a value from the payload: those hold customer data. */
  message: string;
}

/** How many issues an error keeps: enough to fix a schema bug, bounded for logs and responses. */
export const MAX_REPORTED_ISSUES = 5;

export class WebhookParseError extends Error {
  override readonly name = 'WebhookParseError';

  constructor(
    readonly kind: WebhookParseErrorKind,
    readonly issues: ParseIssue[],
  ) {
    super(describe(kind, issues));
  }

  toJSON(): { error: WebhookParseErrorKind; message: string; issues: ParseIssue[] } {
    return { error: this.kind, message: this.message, issues: this.issues };
  }
}

function describe(kind: WebhookParseErrorKind, issues: ParseIssue[]): string {
  const headline = {
    'invalid-json': 'The body is not valid JSON',
    'invalid-context': 'The body is not a valid Dataverse RemoteExecutionContext',
    'too-deep': 'The body is nested too deeply',
    'too-complex': 'The body holds more structure than any Dataverse payload',
  }[kind];
  if (issues.length === 0) return headline;
  return `${headline}: ${issues.map((issue) => `${issue.path}: ${issue.message}`).join('; ')}`;
}

/** Thrown inside the normalizer and turned into a WebhookParseError at the boundary. */
export class IssueFound extends Error {
  constructor(
    readonly kind: WebhookParseErrorKind,
    readonly issues: ParseIssue[],
  ) {
    super('issue');
  }
}

/**
 * A path segment for the member at `position` (from 0, in the order JSON.parse lists an object's
 * members: integer-like names first, then the others as they came) of an object whose member
 * names are the payload's own. Encoded as a negative number, which no array index is, so that a
 * walk allocates nothing for paths it never reports.
 */
export function memberAt(position: number): number {
  return -1 - position;
}

/** Array indexes as `[0]`, member positions as `.#0`, our own property names as `.Name` or `["a b"]`. */
export function formatPath(segments: ReadonlyArray<string | number | symbol>): string {
  let path = '$';
  for (const segment of segments) {
    if (typeof segment === 'number') path += segment < 0 ? `.#${-1 - segment}` : `[${segment}]`;
    else if (typeof segment === 'string' && /^[A-Za-z_$][\w$]*$/.test(segment)) path += `.${segment}`;
    else path += `[${JSON.stringify(String(segment).slice(0, 64))}]`;
  }
  return path;
}
