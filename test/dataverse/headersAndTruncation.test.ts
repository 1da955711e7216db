import { describe, expect, it } from 'vitest';
import { parseDataverseWebhookOrThrow } from '../../src/dataverse';
import { rawExecutionContext } from '../../src/dataverse/samplePayloads';
import { fixture, truncatedDocsSample } from '../support/fixtures';

const dataverseHeaders = {
  'X-MS-Dynamics-Organization': 'contoso.crm.dynamics.com',
  'x-ms-dynamics-entity-name': 'contact',
  'x-ms-dynamics-request-name': 'Update',
  'x-ms-correlation-request-id': '5bb3f2b0-7a9b-4f5e-9c52-1f3c0e7f0d11',
  'X-Request-Id': 'e1a2b3c4-1111-2222-3333-444455556666',
};

describe('x-ms-* headers', () => {
  it('reads each one, ignoring the case of names, from a plain record', () => {
    const event = parseDataverseWebhookOrThrow({ body: fixture('use-webhooks.md').body, headers: dataverseHeaders });
    expect(event.headers).toEqual({
      organization: 'contoso.crm.dynamics.com',
      entityName: 'contact',
      requestName: 'Update',
      correlationRequestId: '5bb3f2b0-7a9b-4f5e-9c52-1f3c0e7f0d11',
      requestId: 'e1a2b3c4-1111-2222-3333-444455556666',
    });
  });

  it('reads them from Fetch Headers, as @azure/functions gives them', () => {
    const event = parseDataverseWebhookOrThrow({ body: fixture('use-webhooks.md').body, headers: new Headers(dataverseHeaders) });
    expect(event.headers.organization).toBe('contoso.crm.dynamics.com');
    expect(event.headers.requestId).toBe('e1a2b3c4-1111-2222-3333-444455556666');
  });

  it('gives null for headers that were not sent', () => {
    const event = parseDataverseWebhookOrThrow({ body: fixture('use-webhooks.md').body, headers: {} });
    expect(event.headers).toEqual({ organization: null, entityName: null, requestName: null, correlationRequestId: null, requestId: null });
  });
});

describe('x-ms-dynamics-msg-size-exceeded', () => {
  const truncatedBody = truncatedDocsSample;

  it('accepts a body without the four removed properties and flags the event', () => {
    const event = parseDataverseWebhookOrThrow({ body: truncatedBody(), headers: { 'x-ms-dynamics-msg-size-exceeded': 'true' } });
    expect(event.truncated).toBe(true);
    expect(event.removedProperties).toEqual(['ParentContext', 'InputParameters', 'PreEntityImages', 'PostEntityImages']);
    expect(event.parentContext).toBeNull();
    expect(event.inputParameters).toEqual({});
    expect(event.target).toBeNull();
    expect(event.messageName).toBe('Update');
    expect(event.primaryEntityId).toBe('6d81597f-0f9f-e711-8122-000d3aa2331c');
  });

  it('lets a handler tell "removed" from "this operation has none"', () => {
    const none = parseDataverseWebhookOrThrow({
      body: JSON.stringify(rawExecutionContext({ messageName: 'Delete', entityName: 'account' })),
      headers: {},
    });
    expect(none.truncated).toBe(false);
    expect(none.removedProperties).toEqual([]);
    expect(none.preEntityImages).toEqual({});
  });

  it('lists only what is really absent when Dataverse keeps some of the four', () => {
    const context = rawExecutionContext({ messageName: 'Update', entityName: 'account', withParentContext: true });
    delete context['InputParameters'];
    const event = parseDataverseWebhookOrThrow({ body: JSON.stringify(context), headers: { 'X-MS-Dynamics-Msg-Size-Exceeded': '' } });
    expect(event.truncated).toBe(true);
    expect(event.removedProperties).toEqual(['InputParameters']);
    expect(event.parentContext?.stage).toBe(30);
  });
});

describe('ParentContext', () => {
  it('nests recursively, to any depth a real chain reaches and beyond', () => {
    let context: Record<string, unknown> = rawExecutionContext({ messageName: 'Update', entityName: 'account', depth: 1 });
    for (let depth = 2; depth <= 40; depth++) {
      context = { ...rawExecutionContext({ messageName: 'Update', entityName: 'account', depth }), ParentContext: context };
    }
    let event = parseDataverseWebhookOrThrow({ body: JSON.stringify(context), headers: {} }) as { depth: number; parentContext: unknown };
    const depths: number[] = [];
    while (event) {
      depths.push(event.depth);
      event = event.parentContext as typeof event;
    }
    expect(depths).toHaveLength(40);
    expect(depths[0]).toBe(40);
    expect(depths[39]).toBe(1);
  });

  it('keeps unknown top-level properties rather than rejecting them', () => {
    const context = { ...rawExecutionContext({ messageName: 'Update', entityName: 'account' }), NewPlatformField: { Nested: '/Date(0)/' } };
    const event = parseDataverseWebhookOrThrow({ body: JSON.stringify(context), headers: {} });
    expect(event.additionalProperties).toEqual({ NewPlatformField: { Nested: new Date(0) } });
  });

  it('maps stage and mode numbers to names, and unknown numbers to null', () => {
    const parse = (stage: number, mode: number) =>
      parseDataverseWebhookOrThrow({
        body: JSON.stringify(rawExecutionContext({ messageName: 'Create', entityName: 'account', stage, mode })),
        headers: {},
      });
    expect(parse(10, 0)).toMatchObject({ stageName: 'PreValidation', mode: 'Synchronous' });
    expect(parse(20, 1)).toMatchObject({ stageName: 'PreOperation', mode: 'Asynchronous' });
    expect(parse(45, 2)).toMatchObject({ stage: 45, stageName: null, mode: null });
  });
});
