import { issueList, type ParseIssue } from './issues';

export type { ParseIssue } from './issues';

export type WebhookParseErrorKind =
  /** The body is not JSON (or not UTF-8 text). */
  | 'invalid-json'
  /** JSON, but not a usable RemoteExecutionContext: wrong or missing required fields. */
  | 'invalid-context'
  /** Nested deeper than any real payload; refused before it can exhaust the stack. */
  | 'too-deep'
  /** More objects, arrays and separators than any real payload; refused before it is parsed. */
  | 'too-complex';

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
  return `${headline}: ${issueList(issues)}`;
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
