import { describe, expect, it } from 'vitest';
import { isEntity, isEntityReference, parseDataverseWebhookOrThrow } from '../../src/dataverse';
import { type ColumnKind, columnKind, RECONCILED_VARIABLE, reconciledContext } from '../../src/dataverse/reconciledContext';

/** A change found by reconciliation becomes the payload a webhook of it would have been: parsed by the same parser, typed the same way. */

const ID = '6d81597f-0f9f-e711-8122-000d3aa2331c';
const ORG = '4ef5b371-e89e-e711-8122-000d3aa2331c';
const USER = '75c2dd85-e89e-e711-8122-000d3aa2331c';
const PARENT = 'a8a19cdd-88df-e311-b8e5-6c3be5a8b200';

const columns = new Map<string, ColumnKind>([
  ['contactid', 'guid'],
  ['lastname', 'text'],
  ['numberofchildren', 'number'],
  ['creditlimit', 'money'],
  ['donotemail', 'boolean'],
  ['birthdate', 'date'],
  ['statecode', 'choice'],
  ['msdyn_tags', 'choices'],
  ['parentcustomerid', 'lookup'],
  ['modifiedon', 'date'],
]);

/** A contact as the Web API writes it, annotations asked for (Prefer: odata.include-annotations). */
const row = {
  '@odata.etag': 'W/"5948260"',
  contactid: ID,
  lastname: 'Glynn',
  numberofchildren: 2,
  creditlimit: 1500.5,
  'creditlimit@OData.Community.Display.V1.FormattedValue': '$1,500.50',
  donotemail: false,
  birthdate: '1980-02-03T00:00:00Z',
  statecode: 0,
  'statecode@OData.Community.Display.V1.FormattedValue': 'Active',
  msdyn_tags: '1,3',
  _parentcustomerid_value: PARENT,
  '_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname': 'account',
  '_parentcustomerid_value@OData.Community.Display.V1.FormattedValue': 'Contoso',
  modifiedon: '2026-05-01T09:00:07Z',
};

function parse(context: Record<string, unknown>) {
  return parseDataverseWebhookOrThrow({ body: Buffer.from(JSON.stringify(context)), headers: {} });
}

describe('a reconciled change as a webhook payload', () => {
  it('an Update: the Target holds the columns asked for, each with the type a webhook gives it', () => {
    const event = parse(
      reconciledContext({
        table: 'contact',
        id: ID,
        message: 'Update',
        changeKey: `contact|${ID}|Update|1777626007000`,
        row,
        columns,
        changedOn: new Date('2026-05-01T09:00:07Z'),
        rowVersion: '5948260',
        organizationId: ORG,
        userId: USER,
      }),
    );
    expect(event).toMatchObject({
      messageName: 'Update',
      primaryEntityName: 'contact',
      primaryEntityId: ID,
      stageName: 'PostOperation',
      mode: 'Asynchronous',
    });
    expect(event).toMatchObject({ organizationId: ORG, userId: USER, depth: 1, owningExtension: null });
    expect(event.sharedVariables[RECONCILED_VARIABLE]).toBe(true);
    expect(event.preEntityImages).toEqual({});
    expect(event.postEntityImages).toEqual({});
    const target = event.target;
    if (!isEntity(target)) throw new Error('the Target is not an Entity');
    expect(target.rowVersion).toBe('5948260');
    expect({ ...target.attributes }).toEqual({
      contactid: ID,
      lastname: 'Glynn',
      numberofchildren: 2,
      creditlimit: { $type: 'Money', value: 1500.5 },
      donotemail: false,
      birthdate: new Date('1980-02-03T00:00:00Z'),
      statecode: { $type: 'OptionSetValue', value: 0 },
      msdyn_tags: { $type: 'OptionSetValueCollection', values: [1, 3] },
      parentcustomerid: expect.objectContaining({ $type: 'EntityReference', logicalName: 'account', id: PARENT, name: 'Contoso' }),
      modifiedon: new Date('2026-05-01T09:00:07Z'),
    });
    expect({ ...target.formattedValues }).toEqual({ creditlimit: '$1,500.50', statecode: 'Active' });
  });

  it('the same change always gets the same ids (one delivery key), another change other ids', () => {
    const change = (changeKey: string) =>
      parse(
        reconciledContext({
          table: 'contact',
          id: ID,
          message: 'Update',
          changeKey,
          row,
          columns,
          changedOn: new Date(),
          rowVersion: null,
          organizationId: ORG,
          userId: USER,
        }),
      );
    const [a, b, c] = [change('x|1'), change('x|1'), change('x|2')];
    expect(a.operationId).toBe(b.operationId);
    expect(a.correlationId).toBe(b.correlationId);
    expect(c.operationId).not.toBe(a.operationId);
  });

  it('a Create carries its id in OutputParameters; a Delete a reference, as delivered ones do', () => {
    const base = { table: 'contact', id: ID, row, columns, changedOn: new Date(), rowVersion: null, organizationId: ORG, userId: USER };
    const created = parse(reconciledContext({ ...base, message: 'Create', changeKey: 'c' }));
    expect(created.outputParameters.id).toBe(ID);
    const deleted = parse(reconciledContext({ ...base, message: 'Delete', changeKey: 'd', row: null }));
    expect(isEntityReference(deleted.target) && deleted.target.id).toBe(ID);
  });

  it('knows which column types change tracking returns usefully', () => {
    expect(columnKind('Customer', 'CustomerType')).toBe('lookup');
    expect(columnKind('Virtual', 'MultiSelectPicklistType')).toBe('choices');
    expect(columnKind('Virtual', 'ImageType')).toBeNull();
    expect(columnKind('PartyList', 'PartyListType')).toBeNull();
  });
});
