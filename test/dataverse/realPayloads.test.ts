import { describe, expect, it } from 'vitest';
import { type DataverseEvent, type Entity, type EntityReference, parseDataverseWebhookOrThrow } from '../../src/dataverse';
import { allRealPayloads, fixture } from '../support/fixtures';

function parse(name: string, headers: Record<string, string> = {}): DataverseEvent {
  return parseDataverseWebhookOrThrow({ body: fixture(name).body, headers });
}

function targetOf(event: DataverseEvent): Entity {
  expect(event.target?.$type).toBe('Entity');
  return event.target as Entity;
}

describe('every real payload', () => {
  it.each(allRealPayloads().map((payload) => [payload.name, payload] as const))('%s parses, with its ParentContext', (_, payload) => {
    const event = parseDataverseWebhookOrThrow({ body: payload.body, headers: {} });
    expect(event.parentContext).not.toBeNull();
    expect(event.parentContext?.stage).toBe(30);
    expect(event.parentContext?.stageName).toBe('MainOperation');
    expect(event.parentContext?.messageName).toBe(event.messageName);
    expect(event.truncated).toBe(false);
    expect(event.owningExtension?.logicalName).toBe('sdkmessageprocessingstep');
    // The JSON form is what handlers receive once serialized: dates become ISO 8601 UTC.
    const json = JSON.parse(JSON.stringify(event));
    expect(json.operationCreatedOn).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  });
});

describe('the docs sample (contact Update, async, 2017)', () => {
  const event = parse('use-webhooks.md');

  it('has the normalized top-level fields of the issue', () => {
    expect(event).toMatchObject({
      messageName: 'Update',
      primaryEntityName: 'contact',
      primaryEntityId: '6d81597f-0f9f-e711-8122-000d3aa2331c',
      secondaryEntityName: null,
      stage: 40,
      stageName: 'PostOperation',
      mode: 'Asynchronous',
      depth: 1,
      isolationMode: 1,
      correlationId: 'b374239d-4233-41a9-8b17-a86cb4f737b5',
      operationId: '4af10637-4ea2-e711-8122-000d3aa2331c',
      requestId: null,
      organizationId: '4ef5b371-e89e-e711-8122-000d3aa2331c',
      organizationName: 'OrgName',
      businessUnitId: 'e2b9dd85-e89e-e711-8122-000d3aa2331c',
      userId: '75c2dd85-e89e-e711-8122-000d3aa2331c',
      initiatingUserId: '75c2dd85-e89e-e711-8122-000d3aa2331c',
      isExecutingOffline: false,
      isInTransaction: false,
      isOfflinePlayback: false,
    });
    expect(event.operationCreatedOn?.toISOString()).toBe('2017-09-26T00:04:08.000Z');
  });

  it('turns the Target into an Entity with typed attributes', () => {
    const target = targetOf(event);
    expect(target.logicalName).toBe('contact');
    expect(target.id).toBe('6d81597f-0f9f-e711-8122-000d3aa2331c');
    expect(target.attributes['firstname']).toBe('James');
    expect(target.attributes['modifiedon']).toEqual(new Date('2017-09-26T00:04:07.000Z'));
    expect(target.attributes['modifiedby']).toEqual({
      $type: 'EntityReference',
      logicalName: 'systemuser',
      id: '75c2dd85-e89e-e711-8122-000d3aa2331c',
      name: null,
      keyAttributes: {},
      rowVersion: null,
    });
    expect(target.attributes['modifiedonbehalfby']).toBeNull();
    expect(event.inputParameters['Target']).toBe(target);
  });

  it('reads the post image that has no __type as an Entity', () => {
    const image = event.postEntityImages['AsynchronousStepPrimaryName'];
    expect(image?.$type).toBe('Entity');
    expect(image?.attributes['fullname']).toBe('James Glynn (sample)');
    expect(event.preEntityImages).toEqual({});
  });

  it('keeps the parent context, its shared variables and its untyped key/value pairs', () => {
    const parent = event.parentContext!;
    expect(parent.organizationName).toBe('OneFarm');
    expect(parent.inputParameters['SuppressDuplicateDetection']).toBe(false);
    const changed = parent.sharedVariables['ChangedEntityTypes'] as Array<Record<string, unknown>>;
    expect(changed).toHaveLength(14);
    expect(changed[0]).toEqual({ $type: 'KeyValuePairOfstringstring', key: 'feedback', value: 'Update' });
    expect(parent.parentContext).toBeNull();
  });
});

describe('01: msdyn_agentstatus Update, async, 2024', () => {
  const event = parse('01-');

  it('keeps the newer context fields', () => {
    expect(event.initiatingUserAgent).toBe('Microsoft.CCaaS.AssignmentEngineVNext.AssignmentEngineVNext (DataverseSvcClient:1.1.0.11)');
    expect(event.initiatingUserAzureActiveDirectoryObjectId).toBe('00000000-0000-0000-0000-000000000000');
    expect(event.operationCreatedOn?.toISOString()).toBe('2024-08-02T07:00:39.000Z');
    expect(event.mode).toBe('Asynchronous');
  });

  it('keeps a string RowVersion and the async post image', () => {
    expect(event.postEntityImages['AsynchronousStepPrimaryName']?.logicalName).toBe('msdyn_agentstatus');
    const target = targetOf(event);
    expect(target.rowVersion).toBe('5948260');
    expect(target.attributes['msdyn_isagentloggedin']).toBe(true);
    expect(target.attributes['msdyn_availableunitscapacity']).toBe(100);
    expect(target.attributes['modifiedon']).toEqual(new Date(1722582039000));
    expect((target.attributes['msdyn_currentpresenceid'] as EntityReference).logicalName).toBe('msdyn_presence');
  });
});

describe('03: shko_allfields Create, sync, every column type', () => {
  const event = parse('03-');
  const target = targetOf(event);

  it('types money, decimals, choices and multi-select choices', () => {
    expect(target.attributes['shko_currency']).toEqual({ $type: 'Money', value: 100 });
    expect(target.attributes['shko_decimal']).toBe(10.12);
    expect(target.attributes['shko_integer']).toBe(321);
    expect(target.attributes['statuscode']).toEqual({ $type: 'OptionSetValue', value: 1 });
    expect(target.attributes['shko_choice']).toEqual({ $type: 'OptionSetValue', value: 342490000 });
    expect(target.attributes['shko_choices']).toEqual({ $type: 'OptionSetValueCollection', values: [342490001, 342490002] });
    expect(target.attributes['exchangerate']).toBe(1);
  });

  it('reads unescaped /Date()/ values and keeps formatted values as labels', () => {
    // The formatted value says 09:00 at +02:00: the same instant.
    expect(target.attributes['shko_datetime']).toEqual(new Date('2023-10-17T07:00:00.000Z'));
    expect(target.formattedValues['shko_datetime']).toBe('2023-10-17T09:00:00+02:00');
    expect(target.formattedValues['shko_currency']).toBe('€100.00');
    expect(target.formattedValues['shko_choices']).toBe('One; Two');
  });

  it('keeps output parameters and shared variables', () => {
    expect(event.outputParameters).toEqual({ id: '6420f0cc-916b-ee11-9ae6-000d3a688809' });
    expect(event.sharedVariables['AcceptLang']).toBe('en-US,en;q=0.9');
    expect(event.mode).toBe('Synchronous');
    expect(event.isInTransaction).toBe(true);
    expect(event.owningExtension?.name).toBe('Share RemoteExecutionContext: Create of shko_allfields');
  });
});

describe('06: account Create captured by webhook.site, non-ASCII text', () => {
  it('keeps Cyrillic and Latvian text intact from the UTF-8 bytes', () => {
    const target = targetOf(parse('06-'));
    expect(target.attributes['name']).toBe('АаБбВвГгДдЕеËëЖжЗзИиЙйКкЛлМмНнОоПпРрСсТтУуФфХхЦцЧчШшЩщЪъЫыЬьЭэЮюЯяРРР');
    expect(target.attributes['new_name']).toBe('ĢārūmžīmēščūļōšĶKĢĻČņ');
    expect(target.attributes['processid']).toBe('00000000-0000-0000-0000-000000000000');
  });
});

describe('08: account Update, 2018 legacy shape', () => {
  const event = parse('08-');

  it('parses without the newer context fields', () => {
    expect(event.initiatingUserAgent).toBeNull();
    expect(event.userAzureActiveDirectoryObjectId).toBeNull();
    expect(event.operationCreatedOn?.toISOString()).toBe('2018-05-31T09:05:30.151Z');
    expect(targetOf(event).attributes['telephone1']).toBe('1111');
  });

  it('keeps an EntityReference input parameter', () => {
    expect(event.inputParameters['TargetReference']).toMatchObject({ $type: 'EntityReference', logicalName: 'systemuser' });
  });
});
