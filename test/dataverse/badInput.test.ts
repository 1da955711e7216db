import { describe, expect, it } from 'vitest';
import { type ParseResult, parseDataverseWebhook, WebhookParseError } from '../../src/dataverse';
import { rawExecutionContext } from '../../src/dataverse/samplePayloads';
import { fixture } from '../support/fixtures';

function failure(result: ParseResult): WebhookParseError {
  if (result.ok) throw new Error('expected the body to be rejected');
  return result.error;
}

const SECRET = 'Jane-Doe-555-0100';

describe('bad input gives a typed error with paths, never values', () => {
  it('invalid JSON: reports the position, not the text around it', () => {
    const error = failure(parseDataverseWebhook({ body: `{"MessageName": "${SECRET}", oops}`, headers: {} }));
    expect(error).toBeInstanceOf(WebhookParseError);
    expect(error.kind).toBe('invalid-json');
    expect(error.message).toMatch(/not valid JSON/);
    expect(error.message).not.toContain(SECRET);
    expect(error.stack ?? '').not.toContain(SECRET);
  });

  it('JSON that is not an object', () => {
    for (const body of ['[]', '"text"', '42', 'null']) {
      expect(failure(parseDataverseWebhook({ body, headers: {} }))).toMatchObject({ kind: 'invalid-context', issues: [{ path: '$' }] });
    }
  });

  it('an object that is not an execution context lists the missing fields', () => {
    const error = failure(parseDataverseWebhook({ body: JSON.stringify({ hello: SECRET }), headers: {} }));
    expect(error.kind).toBe('invalid-context');
    expect(error.issues.length).toBeGreaterThan(0);
    expect(error.issues.length).toBeLessThanOrEqual(5);
    expect(error.issues.map((issue) => issue.path)).toContain('$.MessageName');
    expect(JSON.stringify(error.toJSON())).not.toContain(SECRET);
  });

  it('wrong types in required fields name their paths', () => {
    const context = { ...rawExecutionContext({ messageName: 'Update', entityName: 'account' }), Stage: 'forty', PrimaryEntityId: SECRET };
    const error = failure(parseDataverseWebhook({ body: JSON.stringify(context), headers: {} }));
    expect(error.issues.map((issue) => issue.path).sort()).toEqual(['$.PrimaryEntityId', '$.Stage']);
    expect(error.message).not.toContain(SECRET);
  });

  it('a malformed typed value deep inside names its full path', () => {
    const body = fixture('use-webhooks.md').body.toString().replace('"Id": "75c2dd85-e89e-e711-8122-000d3aa2331c"', `"Id": "${SECRET}"`);
    const error = failure(parseDataverseWebhook({ body, headers: {} }));
    expect(error.issues[0]?.path).toBe('$.InputParameters[0].value.Attributes[5].value.Id');
    expect(error.issues[0]?.message).toBe('expected a GUID');
    expect(error.message).not.toContain(SECRET);
  });

  it('a malformed value in a parent context names the ParentContext path', () => {
    const context = rawExecutionContext({ messageName: 'Update', entityName: 'account', withParentContext: true });
    (context['ParentContext'] as Record<string, unknown>)['Depth'] = 'one';
    const error = failure(parseDataverseWebhook({ body: JSON.stringify(context), headers: {} }));
    expect(error.issues).toEqual([{ path: '$.ParentContext.Depth', message: expect.stringMatching(/expected number/) }]);
  });
});

describe('hostile input neither crashes, hangs, nor pollutes prototypes', () => {
  it('a 10 MB body parses (bounded work, no crash)', () => {
    const context = rawExecutionContext({
      messageName: 'Update',
      entityName: 'note',
      inputParameters: { Big: 'x'.repeat(10 * 1024 * 1024) },
    });
    const result = parseDataverseWebhook({ body: Buffer.from(JSON.stringify(context)), headers: {} });
    expect(result.ok && (result.event.inputParameters['Big'] as string).length).toBe(10 * 1024 * 1024);
  });

  it('10,000-deep nested arrays in a value are refused as too deep', () => {
    const deep = '['.repeat(10_000) + ']'.repeat(10_000);
    const body = JSON.stringify(
      rawExecutionContext({ messageName: 'Update', entityName: 'account', inputParameters: { Deep: 0 } }),
    ).replace('"value":0', `"value":${deep}`);
    const error = failure(parseDataverseWebhook({ body, headers: {} }));
    expect(error.kind).toBe('too-deep');
    expect(error.issues[0]?.path).toMatch(/^\$\.InputParameters\[0\]\.value/);
  });

  it('a 10,000-deep ParentContext chain is refused as too deep', () => {
    const level = JSON.stringify(rawExecutionContext({ messageName: 'Update', entityName: 'account' })).replace(
      '"ParentContext":null',
      '"ParentContext":',
    );
    const [head, tail] = level.split('"ParentContext":') as [string, string];
    const body = `${`${head}"ParentContext":`.repeat(10_000)}null${tail.repeat(10_000)}`;
    const error = failure(parseDataverseWebhook({ body, headers: {} }));
    expect(error.kind).toBe('too-deep');
  });

  it('__proto__ and constructor keys stay data and pollute nothing', () => {
    const context = rawExecutionContext({ messageName: 'Update', entityName: 'account' });
    const body = JSON.stringify(context).replace(
      '"InputParameters":[]',
      '"InputParameters":[{"key":"__proto__","value":{"polluted":true}},{"key":"constructor","value":{"__proto__":{"polluted":true}}}],"__proto__":{"polluted":true}',
    );
    const result = parseDataverseWebhook({ body, headers: {} });
    if (!result.ok) throw result.error;
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
    expect(Object.prototype).not.toHaveProperty('polluted');
    const parameters = result.event.inputParameters;
    expect(Object.getPrototypeOf(parameters)).toBeNull();
    expect(Object.keys(parameters)).toEqual(['__proto__', 'constructor']);
    // An own data property named "__proto__", read as one (not through the accessor).
    const own = (object: unknown, key: string): unknown => Object.getOwnPropertyDescriptor(object, key)?.value;
    expect(own(parameters, '__proto__')).toEqual({ polluted: true });
    expect(own(parameters['constructor'], '__proto__')).toEqual({ polluted: true });
    expect(own(result.event.additionalProperties, '__proto__')).toEqual({ polluted: true });
  });

  it('lone surrogates are kept as the strings JSON gave', () => {
    const body = JSON.stringify(
      rawExecutionContext({ messageName: 'Update', entityName: 'account', inputParameters: { Text: 'x' } }),
    ).replace('"value":"x"', '"value":"a\\ud800b\\udfffc"');
    const result = parseDataverseWebhook({ body: Buffer.from(body), headers: {} });
    expect(result.ok && result.event.inputParameters['Text']).toBe('a\ud800b\udfffc');
  });

  it('invalid UTF-8 bytes are decoded with replacement characters, not a crash', () => {
    const [before, after] = JSON.stringify(
      rawExecutionContext({ messageName: 'Update', entityName: 'account', inputParameters: { Text: 'AB' } }),
    ).split('"AB"');
    const body = Buffer.concat([Buffer.from(`${before}"A`), Buffer.from([0xff, 0xfe]), Buffer.from(`B"${after}`)]);
    const result = parseDataverseWebhook({ body, headers: {} });
    expect(result.ok && result.event.inputParameters['Text']).toBe('A\ufffd\ufffdB');
  });

  it('a UTF-8 byte order mark is tolerated', () => {
    const result = parseDataverseWebhook({ body: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), fixture('08-').body]), headers: {} });
    expect(result.ok).toBe(true);
  });
});
