import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { formatIssue, formatPath, issueList, MAX_REPORTED_ISSUES, memberAt, zodIssues } from '../../src/dataverse/issues';

describe('zod errors in words: one way for every input the app checks', () => {
  const failure = <T>(schema: z.ZodType<T>, value: unknown) => {
    const parsed = schema.safeParse(value);
    if (parsed.success) throw new Error('expected a failure');
    return parsed.error;
  };

  it('names indexes as [n], declared names as .Name, other names quoted, and a payload member by position', () => {
    expect(formatPath(['InputParameters', 0, 'value', memberAt(2), 'Id'])).toBe('$.InputParameters[0].value.#2.Id');
    expect(formatPath(['a b', 'ok'])).toBe('$["a b"].ok');
    expect(formatPath([])).toBe('$');
    // Settings are named alone: no root.
    expect(formatPath(['WEBHOOK_MAX_BODY_BYTES'], '')).toBe('WEBHOOK_MAX_BODY_BYTES');
  });

  it('puts the issues under where the value sits, keeps at most five (or the limit), and never the value', () => {
    const error = failure(
      z.array(z.object({ url: z.url() })),
      Array.from({ length: 7 }, () => ({ url: 'jane.doe@example.org' })),
    );
    const issues = zodIssues(error, { at: ['endpoints'] });
    expect(issues).toHaveLength(MAX_REPORTED_ISSUES);
    expect(issues[0]!.path).toBe('$.endpoints[0].url');
    expect(issueList(issues)).not.toContain('jane.doe');
    expect(zodIssues(error, { limit: 1 }).map(formatIssue)).toEqual([`$[0].url: ${issues[0]!.message}`]);
    expect(zodIssues(failure(z.object({ PORT: z.coerce.number() }), { PORT: 'x' }), { root: '' })[0]!.path).toBe('PORT');
  });
});
