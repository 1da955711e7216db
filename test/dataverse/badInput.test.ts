import { describe, expect, it } from 'vitest';
import { type ParseResult, parseDataverseWebhook, parseDataverseWebhookOrThrow, WebhookParseError } from '../../src/dataverse';
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

  it('invalid JSON: the issue says where it stops being JSON, once, without repeating the headline or quoting the body', () => {
    const cases = [
      {
        body: `{"MessageName": "${SECRET}", "Depth": oops}`,
        issue: 'a character JSON does not allow there (the parser names no position)',
      },
      { body: `{"MessageName": "${SECRET}",`, issue: 'unexpected input at character 36' },
      { body: `{"MessageName": "${SECRET}", "Depth":`, issue: 'the text ends before the JSON does' },
    ];
    for (const { body, issue } of cases) {
      const error = failure(parseDataverseWebhook({ body, headers: {} }));
      expect(error.toJSON()).toEqual({
        error: 'invalid-json',
        message: `The body is not valid JSON: $: ${issue}`,
        issues: [{ path: '$', message: issue }],
      });
      expect(error.message.match(/not valid JSON/gi)).toHaveLength(1);
      expect(error.message).not.toContain(SECRET);
    }
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

  it('a 2,000-deep ParentContext chain is refused as too deep', () => {
    const level = JSON.stringify(rawExecutionContext({ messageName: 'Update', entityName: 'account' })).replace(
      '"ParentContext":null',
      '"ParentContext":',
    );
    const [head, tail] = level.split('"ParentContext":') as [string, string];
    const body = `${`${head}"ParentContext":`.repeat(2_000)}null${tail.repeat(2_000)}`;
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

  it('bytes that are not UTF-8 are refused as invalid-json, in a small body and a large one alike', () => {
    for (const padding of [0, 300 * 1024]) {
      const [before, after] = JSON.stringify(
        rawExecutionContext({
          messageName: 'Update',
          entityName: 'account',
          inputParameters: { Text: 'AB', Padding: 'x'.repeat(padding) },
        }),
      ).split('"AB"');
      for (const bad of [[0xff, 0xfe], [0xc3], [0xed, 0xa0, 0x80] /* an encoded surrogate */, [0xc0, 0xaf] /* overlong */]) {
        const body = Buffer.concat([Buffer.from(`${before}"A`), Buffer.from(bad), Buffer.from(`B"${after}`)]);
        expect(failure(parseDataverseWebhook({ body, headers: {} })).toJSON(), `${padding} ${bad}`).toMatchObject({
          error: 'invalid-json',
          issues: [{ path: '$', message: 'the body is not UTF-8 text' }],
        });
      }
      // The same text as well-formed UTF-8 (a two-byte, a three-byte and a four-byte character) parses.
      const body = Buffer.from(`${before}"AéשּׁB😀"${after}`);
      expect(parseDataverseWebhookOrThrow({ body, headers: {} }).inputParameters['Text']).toBe('AéשּׁB😀');
    }
  });

  it('a UTF-8 byte order mark is tolerated', () => {
    const result = parseDataverseWebhook({ body: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), fixture('08-').body]), headers: {} });
    expect(result.ok).toBe(true);
  });
});

describe('numbers zod refuses are refused whichever path checks them', () => {
  const CONTRACTS = 'http://schemas.microsoft.com/xrm/2011/Contracts';
  const GUID = '6d81597f-0f9f-e711-8122-000d3aa2331c';
  it.each([
    [
      'an OptionSetValue above 2^53 (not rounded to its neighbour)',
      `{"__type":"OptionSetValue:${CONTRACTS}","Value":9007199254740993}`,
      '$.InputParameters[0].value.Value',
    ],
    ['a Money of 1e400 (not Infinity)', `{"__type":"Money:${CONTRACTS}","Value":1e400}`, '$.InputParameters[0].value.Value'],
    [
      'an EntityReference whose RowVersion is 1e400',
      `{"__type":"EntityReference:${CONTRACTS}","Id":"${GUID}","LogicalName":"account","RowVersion":1e400}`,
      '$.InputParameters[0].value.RowVersion',
    ],
  ])('%s', (_, value, path) => {
    const body = JSON.stringify(
      rawExecutionContext({ messageName: 'Update', entityName: 'account', inputParameters: { Value: 0 } }),
    ).replace('"value":0', `"value":${value}`);
    expect(failure(parseDataverseWebhook({ body, headers: {} })).issues.map((issue) => issue.path)).toEqual([path]);
  });
});

describe('a payload’s own member names are data: never our $type tag, never in an error', () => {
  const EMAIL = 'jane.doe@contoso.com';
  const reference = (id: string) => ({
    __type: 'EntityReference:http://schemas.microsoft.com/xrm/2011/Contracts',
    Id: id,
    LogicalName: 'contact',
  });
  const withInput = (value: unknown, extra: Record<string, unknown> = {}) =>
    JSON.stringify({
      ...rawExecutionContext({ messageName: 'Update', entityName: 'account', inputParameters: { Target: 0 } }),
      ...extra,
    }).replace('"value":0', `"value":${JSON.stringify(value)}`);

  it('a Target of {"$type": "Entity", …} is refused, not taken for an Entity without id or attributes', () => {
    const error = failure(parseDataverseWebhook({ body: withInput({ $type: 'Entity', logicalName: 'account' }), headers: {} }));
    expect(error.toJSON()).toEqual({
      error: 'invalid-context',
      message: expect.any(String),
      issues: [{ path: '$.InputParameters[0].value.#0', message: expect.stringContaining('"$type"') }],
    });
  });

  it('so is a $type beside an unknown __type, nested in a plain object, or in an array', () => {
    for (const value of [
      { __type: 'Custom:#Contoso', $type: 'Entity', logicalName: 'account' },
      { wrapper: { $type: 'EntityReference', id: 'x' } },
      [
        { $type: 'OptionSetValue', value: 1 },
        { $type: 'OptionSetValue', value: 2 },
      ],
    ]) {
      const error = failure(parseDataverseWebhook({ body: withInput(value), headers: {} }));
      expect(error.kind, JSON.stringify(value)).toBe('invalid-context');
      expect(error.issues[0]?.message).toContain('"$type"');
    }
  });

  it('a $type key of a key/value collection stays data, as any key does (SharedVariables are set by plug-ins)', () => {
    const body = JSON.stringify(rawExecutionContext({ messageName: 'Update', entityName: 'account' })).replace(
      '"SharedVariables":[',
      '"SharedVariables":[{"key":"$type","value":"Entity"},',
    );
    const event = parseDataverseWebhookOrThrow({ body, headers: {} });
    expect(event.sharedVariables['$type']).toBe('Entity');
  });

  it('an error inside a plain object names its member by position, not by its name (an e-mail address here)', () => {
    const error = failure(parseDataverseWebhook({ body: withInput({ [EMAIL]: { [`${EMAIL}2`]: reference(SECRET) } }), headers: {} }));
    expect(error.issues).toEqual([{ path: '$.InputParameters[0].value.#0.#0.Id', message: 'expected a GUID' }]);
    expect(JSON.stringify(error.toJSON())).not.toContain('jane.doe');
  });

  it('so does one in a property of the context that the model does not declare, and one in an unknown typed value', () => {
    const context = withInput(null, {
      [EMAIL]: { __type: 'OptionSetValue:http://schemas.microsoft.com/xrm/2011/Contracts', Value: 'one' },
    });
    const top = failure(parseDataverseWebhook({ body: context, headers: {} }));
    const position = Object.keys(JSON.parse(context)).indexOf(EMAIL);
    expect(top.issues).toEqual([{ path: `$.#${position}.Value`, message: expect.any(String) }]);
    const typed = failure(parseDataverseWebhook({ body: withInput({ __type: 'Custom:#Contoso', [EMAIL]: reference('x') }), headers: {} }));
    expect(typed.issues).toEqual([{ path: '$.InputParameters[0].value.#1.Id', message: 'expected a GUID' }]);
    for (const error of [top, typed]) expect(JSON.stringify(error.toJSON())).not.toContain('jane.doe');
  });

  it('and a value nested too deeply under such members names positions too', () => {
    let deep: unknown = 0;
    for (let level = 0; level < 80; level++) deep = { [`${EMAIL}${level}`]: deep };
    const error = failure(parseDataverseWebhook({ body: withInput(deep), headers: {} }));
    expect(error.kind).toBe('too-deep');
    expect(error.issues[0]?.path).toMatch(/^\$\.InputParameters\[0\]\.value(\.#0)+…$/);
    expect(JSON.stringify(error.toJSON())).not.toContain('jane.doe');
  });
});
