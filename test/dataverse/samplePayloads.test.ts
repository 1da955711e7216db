import { describe, expect, it } from 'vitest';
import { type EntityCollection, parseDataverseWebhookOrThrow } from '../../src/dataverse';
import { largeCreateMultiple, rawExecutionContext, sampleAccount } from '../../src/dataverse/samplePayloads';

describe('sample payload builders', () => {
  it('build a CreateMultiple of about the requested size whose records all parse', () => {
    const body = largeCreateMultiple(250 * 1024);
    expect(Math.abs(Buffer.byteLength(body) - 250 * 1024)).toBeLessThan(2 * 1024);
    const event = parseDataverseWebhookOrThrow({ body, headers: {} });
    const targets = event.inputParameters['Targets'] as EntityCollection;
    expect(targets.$type).toBe('EntityCollection');
    expect(targets.entities.length).toBeGreaterThan(50);
    expect(targets.entities[3]?.attributes['revenue']).toEqual({ $type: 'Money', value: 1_250_003 });
    expect(targets.entities[3]?.attributes['createdon']).toEqual(new Date(Date.UTC(2024, 10, 8, 8, 5, 9)));
  });

  it('build a context with a parent context, as Dataverse nests them', () => {
    const event = parseDataverseWebhookOrThrow({
      body: JSON.stringify(
        rawExecutionContext({
          messageName: 'Update',
          entityName: 'account',
          withParentContext: true,
          inputParameters: { Target: sampleAccount(1) },
        }),
      ),
      headers: {},
    });
    expect(event.parentContext).toMatchObject({
      stage: 30,
      messageName: 'Update',
      primaryEntityId: event.primaryEntityId,
      operationId: event.operationId,
    });
    expect(event.target?.$type).toBe('Entity');
  });
});
