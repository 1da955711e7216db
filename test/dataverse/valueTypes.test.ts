import { describe, expect, it } from 'vitest';
import { type DataverseValue, parseDataverseWebhookOrThrow } from '../../src/dataverse';
import { type RawJson, rawExecutionContext } from '../../src/dataverse/samplePayloads';

const C = 'http://schemas.microsoft.com/xrm/2011/Contracts';
const ID = 'a1b2c3d4-0000-4000-8000-000000000001';
const ID2 = 'a1b2c3d4-0000-4000-8000-000000000002';

/** Parses a context whose InputParameters hold `value` under `Value`, and returns it normalized. */
function normalized(value: RawJson, messageName = 'Custom'): DataverseValue | undefined {
  const body = JSON.stringify(rawExecutionContext({ messageName, entityName: 'account', inputParameters: { Value: value } }));
  return parseDataverseWebhookOrThrow({ body, headers: {} }).inputParameters['Value'];
}

const reference = (logicalName: string, id: string, name: string | null = null) => ({
  __type: `EntityReference:${C}`,
  Id: id,
  KeyAttributes: [],
  LogicalName: logicalName,
  Name: name,
  RowVersion: null,
});

const party = (partyId: RawJson) => ({
  __type: `Entity:${C}`,
  Attributes: [
    { key: 'partyid', value: partyId },
    { key: 'participationtypemask', value: { __type: `OptionSetValue:${C}`, Value: 2 } },
  ],
  EntityState: null,
  FormattedValues: [],
  Id: '00000000-0000-0000-0000-000000000000',
  KeyAttributes: [],
  LogicalName: 'activityparty',
  RelatedEntities: [],
  RowVersion: null,
});

describe('value types by __type', () => {
  it('EntityReference, keeping its name and alternate keys', () => {
    const value = normalized({ ...reference('account', ID, 'Contoso'), KeyAttributes: [{ key: 'accountnumber', value: 'ACC-1' }] });
    expect(value).toEqual({
      $type: 'EntityReference',
      logicalName: 'account',
      id: ID,
      name: 'Contoso',
      keyAttributes: { accountnumber: 'ACC-1' },
      rowVersion: null,
    });
  });

  it('OptionSetValue and Money', () => {
    expect(normalized({ __type: `OptionSetValue:${C}`, Value: 3 })).toEqual({ $type: 'OptionSetValue', value: 3 });
    expect(normalized({ __type: `Money:${C}`, Value: 12.5 })).toEqual({ $type: 'Money', value: 12.5 });
  });

  it('a bare array of OptionSetValues is an OptionSetValueCollection', () => {
    const value = normalized([
      { __type: `OptionSetValue:${C}`, Value: 1 },
      { __type: `OptionSetValue:${C}`, Value: 2 },
    ]);
    expect(value).toEqual({ $type: 'OptionSetValueCollection', values: [1, 2] });
  });

  it('EntityCollection of activity parties (an email To line)', () => {
    const value = normalized({
      __type: `EntityCollection:${C}`,
      Entities: [party(reference('contact', ID, 'Ann')), party(reference('systemuser', ID2))],
      EntityName: 'activityparty',
      MinActiveRowVersion: '-1',
      MoreRecords: false,
      PagingCookie: null,
      TotalRecordCount: -1,
      TotalRecordCountLimitExceeded: false,
    });
    expect(value).toMatchObject({
      $type: 'EntityCollection',
      entityName: 'activityparty',
      moreRecords: false,
      totalRecordCount: -1,
      minActiveRowVersion: '-1',
    });
    const entities = (value as { entities: Array<{ attributes: Record<string, unknown> }> }).entities;
    expect(entities).toHaveLength(2);
    expect(entities[0]!.attributes['partyid']).toMatchObject({ $type: 'EntityReference', logicalName: 'contact', name: 'Ann' });
    expect(entities[1]!.attributes['participationtypemask']).toEqual({ $type: 'OptionSetValue', value: 2 });
  });

  it('CreateMultiple Targets: an EntityCollection of Entities', () => {
    const record = (i: number) => ({
      __type: `Entity:${C}`,
      Attributes: [{ key: 'name', value: `A${i}` }],
      Id: ID,
      LogicalName: 'account',
      FormattedValues: [],
      KeyAttributes: [],
      RelatedEntities: [],
      RowVersion: null,
      EntityState: null,
    });
    const value = normalized(
      { __type: `EntityCollection:${C}`, Entities: [record(1), record(2)], EntityName: 'account' },
      'CreateMultiple',
    );
    expect((value as { entities: Array<{ attributes: { name: string } }> }).entities.map((e) => e.attributes.name)).toEqual(['A1', 'A2']);
  });

  it('AliasedValue with a typed inner value', () => {
    expect(
      normalized({
        __type: `AliasedValue:${C}`,
        AttributeLogicalName: 'revenue',
        EntityLogicalName: 'account',
        NeedFormatting: true,
        ReturnType: 123,
        Value: { __type: `Money:${C}`, Value: 5 },
      }),
    ).toEqual({
      $type: 'AliasedValue',
      entityLogicalName: 'account',
      attributeLogicalName: 'revenue',
      value: { $type: 'Money', value: 5 },
    });
  });

  it('BooleanManagedProperty', () => {
    expect(
      normalized({ __type: `BooleanManagedProperty:${C}`, CanBeChanged: false, ManagedPropertyLogicalName: 'iscustomizable', Value: true }),
    ).toEqual({
      $type: 'BooleanManagedProperty',
      value: true,
      canBeChanged: false,
      managedPropertyLogicalName: 'iscustomizable',
    });
  });

  it('Associate: a Relationship and an EntityReferenceCollection', () => {
    const body = JSON.stringify(
      rawExecutionContext({
        messageName: 'Associate',
        entityName: 'account',
        inputParameters: {
          Target: reference('account', ID),
          Relationship: { __type: `Relationship:${C}`, PrimaryEntityRole: null, SchemaName: 'account_contacts' },
          RelatedEntities: [reference('contact', ID2), reference('contact', ID)],
        },
      }),
    );
    const event = parseDataverseWebhookOrThrow({ body, headers: {} });
    expect(event.inputParameters['Relationship']).toEqual({
      $type: 'Relationship',
      schemaName: 'account_contacts',
      primaryEntityRole: null,
    });
    expect(event.inputParameters['RelatedEntities']).toMatchObject({
      $type: 'EntityReferenceCollection',
      references: [{ id: ID2 }, { id: ID }],
    });
    expect(event.target).toMatchObject({ $type: 'EntityReference', logicalName: 'account' });
  });

  it('ColumnSet, FetchExpression and QueryExpression', () => {
    expect(normalized({ __type: `ColumnSet:${C}`, AllColumns: false, AttributeExpressions: [], Columns: ['name', 'telephone1'] })).toEqual({
      $type: 'ColumnSet',
      allColumns: false,
      columns: ['name', 'telephone1'],
    });
    expect(normalized({ __type: `FetchExpression:${C}`, Query: '<fetch><entity name="account"/></fetch>' })).toEqual({
      $type: 'FetchExpression',
      query: '<fetch><entity name="account"/></fetch>',
    });
    const query = normalized({
      __type: `QueryExpression:${C}`,
      EntityName: 'account',
      ColumnSet: { __type: `ColumnSet:${C}`, AllColumns: true, Columns: [] },
      TopCount: 5,
    });
    expect(query).toEqual({
      $type: 'QueryExpression',
      EntityName: 'account',
      ColumnSet: { $type: 'ColumnSet', allColumns: true, columns: [] },
      TopCount: 5,
    });
  });

  it('an unknown __type is kept with its name and every field, never dropped', () => {
    expect(normalized({ __type: 'FileUploadToken:http://example.org', Token: 'abc', Size: 3 })).toEqual({
      $type: 'FileUploadToken',
      Token: 'abc',
      Size: 3,
    });
  });

  it('a type-hinted primitive wrapper is unwrapped', () => {
    expect(normalized({ __type: 'Guid:#System', __value: ID })).toBe(ID);
  });

  it('strings, booleans, integers, doubles, GUIDs and nulls stay as they are', () => {
    expect(normalized(['text', true, 42, 3.25, ID, null])).toEqual(['text', true, 42, 3.25, ID, null]);
  });

  it('dates inside arrays and unknown objects become Dates', () => {
    expect(normalized({ When: '/Date(0)/', All: ['/Date(86400000)/'] })).toEqual({ When: new Date(0), All: [new Date(86400000)] });
  });

  it('reads slash-escaped dates from the raw text, as Dataverse sends them', () => {
    const body = JSON.stringify(
      rawExecutionContext({ messageName: 'Custom', entityName: 'account', inputParameters: { When: '/Date(1506384247000)/' } }),
    ).replace('"/Date(1506384247000)/"', '"\\/Date(1506384247000)\\/"');
    expect(body).toContain('\\/Date(1506384247000)\\/');
    expect(parseDataverseWebhookOrThrow({ body, headers: {} }).inputParameters['When']).toEqual(new Date('2017-09-26T00:04:07.000Z'));
  });
});
