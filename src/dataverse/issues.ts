import type { z } from 'zod';

/**
 * What is wrong with a parsed value, and where: one shape and one way to print it for everything
 * the app checks with zod (a webhook's body, a queue message, app settings, local.settings.json,
 * the registration file, host.json, the Web API's answers). It lives with the Dataverse model,
 * which imports only itself, zod and Node, so that every layer can use it.
 */
export interface ParseIssue {
  /**
   * Where, as a JSON path: `$.InputParameters[0].value.Id` (or a name alone, for settings). A
   * webhook's path names array indexes and the members the DataContract declares, never a member
   * name of the payload's own (those can be customer data, an e-mail address used as a key): such
   * a member is named by its position, `.#2` for the third (see `memberAt`).
   */
  path: string;
  /** What was wrong. Never contains a value from the checked input: it may be customer data or a secret. */
  message: string;
}

/** How many issues an error keeps: enough to fix a schema bug, bounded for logs and responses. */
export const MAX_REPORTED_ISSUES = 5;

export type PathSegment = string | number | symbol;

/**
 * A path segment for the member at `position` (from 0, in the order JSON.parse lists an object's
 * members: integer-like names first, then the others as they came) of an object whose member
 * names are the payload's own. Encoded as a negative number, which no array index is, so that a
 * walk allocates nothing for paths it never reports.
 */
export function memberAt(position: number): number {
  return -1 - position;
}

/**
 * Array indexes as `[0]`, member positions as `.#0`, our own property names as `.Name` or
 * `["a b"]`, under `root` (`$`; empty for a path of names alone, as settings are named).
 */
export function formatPath(segments: ReadonlyArray<PathSegment>, root = '$'): string {
  let path = root;
  for (const segment of segments) {
    if (typeof segment === 'number') path += segment < 0 ? `.#${-1 - segment}` : `[${segment}]`;
    else if (typeof segment === 'string' && /^[A-Za-z_$][\w$]*$/.test(segment)) path += path ? `.${segment}` : segment;
    else path += `[${JSON.stringify(String(segment).slice(0, 64))}]`;
  }
  return path;
}

export interface IssueOptions {
  /** Where the checked value sits (its issues' paths are under it); default the root. */
  at?: ReadonlyArray<PathSegment>;
  /** What the path starts from; default `$`. */
  root?: string;
  /** How many issues to keep; default MAX_REPORTED_ISSUES. */
  limit?: number;
}

/** zod's issues as ParseIssues: the path of each formatted, its message as zod wrote it (never the value). */
export function zodIssues(error: z.ZodError, options: IssueOptions = {}): ParseIssue[] {
  const at = options.at ?? [];
  return error.issues.slice(0, options.limit ?? MAX_REPORTED_ISSUES).map((issue) => ({
    path: formatPath([...at, ...issue.path], options.root),
    message: issue.message,
  }));
}

/** One issue as a line: `$.endpoint.url: Invalid URL`. */
export function formatIssue(issue: ParseIssue): string {
  return `${issue.path}: ${issue.message}`;
}

/** Issues on one line: `$.a: …; $.b: …`. */
export function issueList(issues: readonly ParseIssue[]): string {
  return issues.map(formatIssue).join('; ');
}
