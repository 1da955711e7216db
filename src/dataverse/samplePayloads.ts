import { randomUUID } from 'node:crypto';
import { TRUNCATED_PROPERTIES } from './model';

/**
 * Builders for realistic RemoteExecutionContext JSON, in the DataContract shape Dataverse sends.
 * Used by the benchmark, the tests and `send`; what they build must parse like a real capture.
 */

const CONTRACTS = 'http://schemas.microsoft.com/xrm/2011/Contracts';

export type RawJson = null | boolean | number | string | RawJson[] | { [key: string]: RawJson };

export function dataContractDate(date: Date): string {
  return `/Date(${date.getTime()})/`;
}

export function rawEntityReference(logicalName: string, id: string, name: string | null = null): RawJson {
  return { __type: `EntityReference:${CONTRACTS}`, Id: id, KeyAttributes: [], LogicalName: logicalName, Name: name, RowVersion: null };
}

export function rawOptionSetValue(value: number): RawJson {
  return { __type: `OptionSetValue:${CONTRACTS}`, Value: value };
}

export function rawMoney(value: number): RawJson {
  return { __type: `Money:${CONTRACTS}`, Value: value };
}

export function keyValues(record: Record<string, RawJson>): RawJson[] {
  return Object.entries(record).map(([key, value]) => ({ key, value }));
}

export function rawEntity(
  logicalName: string,
  id: string,
  attributes: Record<string, RawJson>,
  formattedValues: Record<string, string> = {},
): RawJson {
  return {
    __type: `Entity:${CONTRACTS}`,
    Attributes: keyValues(attributes),
    EntityState: null,
    FormattedValues: keyValues(formattedValues),
    Id: id,
    KeyAttributes: [],
    LogicalName: logicalName,
    RelatedEntities: [],
    RowVersion: null,
  };
}

export interface ContextOptions {
  messageName: string;
  entityName: string;
  entityId?: string;
  stage?: number;
  mode?: number;
  depth?: number;
  inputParameters?: Record<string, RawJson>;
  outputParameters?: Record<string, RawJson>;
  preEntityImages?: Record<string, RawJson>;
  postEntityImages?: Record<string, RawJson>;
  operationCreatedOn?: Date;
  organizationName?: string;
  withParentContext?: boolean;
  correlationId?: string;
  operationId?: string;
  requestId?: string | null;
  owningExtensionId?: string;
}

/** A whole RemoteExecutionContext, with the fields a 2024 capture carries. */
export function rawExecutionContext(options: ContextOptions): { [key: string]: RawJson } {
  const userId = '75c2dd85-e89e-e711-8122-000d3aa2331c';
  const entityId = options.entityId ?? randomUUID();
  const operationId = options.operationId ?? randomUUID();
  const context: { [key: string]: RawJson } = {
    BusinessUnitId: 'e2b9dd85-e89e-e711-8122-000d3aa2331c',
    CorrelationId: options.correlationId ?? randomUUID(),
    Depth: options.depth ?? 1,
    InitiatingUserAgent: 'dataverse-webhooks',
    InitiatingUserAzureActiveDirectoryObjectId: '00000000-0000-0000-0000-000000000000',
    InitiatingUserId: userId,
    InputParameters: keyValues(options.inputParameters ?? {}),
    IsExecutingOffline: false,
    IsInTransaction: (options.mode ?? 0) === 0,
    IsOfflinePlayback: false,
    IsolationMode: 1,
    MessageName: options.messageName,
    Mode: options.mode ?? 0,
    OperationCreatedOn: dataContractDate(options.operationCreatedOn ?? new Date()),
    OperationId: operationId,
    OrganizationId: '4ef5b371-e89e-e711-8122-000d3aa2331c',
    OrganizationName: options.organizationName ?? 'contoso',
    OutputParameters: keyValues(options.outputParameters ?? {}),
    OwningExtension: {
      Id: options.owningExtensionId ?? '75417616-4ea2-e711-8122-000d3aa2331c',
      KeyAttributes: [],
      LogicalName: 'sdkmessageprocessingstep',
      Name: `dataverse-webhooks: ${options.messageName} of ${options.entityName}`,
      RowVersion: null,
    },
    ParentContext: null,
    PostEntityImages: keyValues(options.postEntityImages ?? {}),
    PreEntityImages: keyValues(options.preEntityImages ?? {}),
    PrimaryEntityId: entityId,
    PrimaryEntityName: options.entityName,
    RequestId: options.requestId === undefined ? operationId : options.requestId,
    SecondaryEntityName: 'none',
    SharedVariables: keyValues({ IsAutoTransact: true, DefaultsAddedFlag: true }),
    Stage: options.stage ?? 40,
    UserAzureActiveDirectoryObjectId: '00000000-0000-0000-0000-000000000000',
    UserId: userId,
  };
  if (options.withParentContext) {
    const { withParentContext: _, ...parentOptions } = options;
    context['ParentContext'] = { ...rawExecutionContext({ ...parentOptions, stage: 30, entityId, operationId }), OwningExtension: null };
  }
  return context;
}

/** An account with the attribute types a real record carries: text, dates, lookups, choices, money. */
export function sampleAccount(index: number, id: string = randomUUID()): RawJson {
  const created = new Date(Date.UTC(2024, 10, 8, 8, 5, 6) + index * 1000);
  const owner = rawEntityReference('systemuser', '3570e963-e69c-ef11-8a6b-000d3a318589', 'Avery Howard');
  return rawEntity(
    'account',
    id,
    {
      accountid: id,
      name: `Contoso Pharmaceuticals ${index} – Заказчик №${index}`,
      accountnumber: `ACC-${String(index).padStart(6, '0')}`,
      telephone1: '+1 425 555 0100',
      emailaddress1: `contact${index}@contoso.example`,
      websiteurl: 'https://contoso.example',
      address1_line1: '1 Microsoft Way',
      address1_city: 'Redmond',
      address1_postalcode: '98052',
      revenue: rawMoney(1_250_000 + index),
      revenue_base: rawMoney(1_250_000 + index),
      exchangerate: 1,
      numberofemployees: 250 + index,
      creditonhold: false,
      donotemail: index % 2 === 0,
      industrycode: rawOptionSetValue(1 + (index % 30)),
      statecode: rawOptionSetValue(0),
      statuscode: rawOptionSetValue(1),
      createdon: dataContractDate(created),
      modifiedon: dataContractDate(created),
      ownerid: owner,
      createdby: owner,
      modifiedby: owner,
      transactioncurrencyid: rawEntityReference('transactioncurrency', '4de444aa-375f-ee11-8def-000d3adbef1f', 'US Dollar'),
      description: 'Key account. Quarterly business review scheduled; renewal under negotiation.',
    },
    { revenue: `$${(1_250_000 + index).toLocaleString('en-US')}.00`, statecode: 'Active', statuscode: 'Active', creditonhold: 'No' },
  );
}

/** A CreateMultiple of `accounts` sample accounts, with ids 00000000-0000-4000-8000-00000000000N. */
export function createMultipleOfAccounts(accounts: number): { [key: string]: RawJson } {
  return rawExecutionContext({
    messageName: 'CreateMultiple',
    entityName: 'account',
    inputParameters: {
      Targets: {
        __type: `EntityCollection:${CONTRACTS}`,
        Entities: Array.from({ length: accounts }, (_, i) => sampleAccount(i, `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`)),
        EntityName: 'account',
        MinActiveRowVersion: null,
        MoreRecords: false,
        PagingCookie: null,
        TotalRecordCount: -1,
        TotalRecordCountLimitExceeded: false,
      },
    },
  });
}

/** A CreateMultiple whose Targets collection makes the body about `targetBytes` long. */
export function largeCreateMultiple(targetBytes: number): string {
  const build = (count: number) => JSON.stringify(createMultipleOfAccounts(count));
  const perRecord = Buffer.byteLength(build(2)) - Buffer.byteLength(build(1));
  const base = Buffer.byteLength(build(0));
  return build(Math.max(1, Math.round((targetBytes - base) / perRecord)));
}

/** A context as Dataverse sends it above 256 KB: ParentContext, InputParameters and the images removed. */
export function withoutTruncatedProperties<T>(context: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(context).filter(([name]) => !(TRUNCATED_PROPERTIES as readonly string[]).includes(name)));
}
