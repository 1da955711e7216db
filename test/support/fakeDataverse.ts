import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ChangeTrackingError, FakeChangeTracking } from './fakeChangeTracking';
import { attributeCast, attributeProperties, metadataId, optionSetOf, TABLES, type TableFacts, tableProperties } from './tableMetadata';

/**
 * A stand-in for the Dataverse Web API on 127.0.0.1, strict where Dataverse is strict: it checks
 * every request's headers (bearer token, OData versions, Accept, Content-Type, If-Match), every
 * column and `@odata.bind` reference in a body, every `$select`, `$filter` and `$orderby` column,
 * and answers as Dataverse does (`OData-EntityId` on create, 204 on update and delete, 404 and
 * 400 with `{"error": {"code", "message"}}`). Whatever the client sends that Dataverse would not
 * accept is answered with an error and recorded in `violations`.
 */

type ColumnType = 'string' | 'int' | 'bool' | 'guid';

interface TableSchema {
  logicalName: string;
  key: string;
  /** Readable columns and their types (lookups as `_x_value`). */
  columns: Record<string, ColumnType>;
  writable: string[];
  /** Accepted on write, never returned (ServiceEndpoint.authvalue). */
  writeOnly?: string[];
  /** Navigation property → the entity set it references and the lookup column it sets. */
  binds?: Record<string, { set: string; column: string }>;
  /** Columns or navigation properties a create must carry. */
  required?: string[];
  /** Collection-valued navigation properties: the child set and its lookup to this row. */
  children?: Record<string, { set: string; column: string }>;
  defaults?: Record<string, unknown>;
}

const SCHEMAS: Record<string, TableSchema> = {
  serviceendpoints: {
    logicalName: 'serviceendpoint',
    key: 'serviceendpointid',
    columns: {
      name: 'string',
      contract: 'int',
      url: 'string',
      authtype: 'int',
      messageformat: 'int',
      description: 'string',
      isauthvalueset: 'bool',
    },
    writable: ['name', 'contract', 'url', 'authtype', 'authvalue', 'messageformat', 'description'],
    writeOnly: ['authvalue'],
    required: ['name', 'contract'],
    children: { serviceendpoint_sdkmessageprocessingstep: { set: 'sdkmessageprocessingsteps', column: '_eventhandler_value' } },
  },
  sdkmessageprocessingsteps: {
    logicalName: 'sdkmessageprocessingstep',
    key: 'sdkmessageprocessingstepid',
    columns: {
      name: 'string',
      description: 'string',
      stage: 'int',
      mode: 'int',
      rank: 'int',
      asyncautodelete: 'bool',
      filteringattributes: 'string',
      supporteddeployment: 'int',
      statecode: 'int',
      statuscode: 'int',
      _sdkmessageid_value: 'guid',
      _sdkmessagefilterid_value: 'guid',
      _eventhandler_value: 'guid',
    },
    writable: [
      'name',
      'description',
      'stage',
      'mode',
      'rank',
      'asyncautodelete',
      'filteringattributes',
      'supporteddeployment',
      'statecode',
      'statuscode',
    ],
    binds: {
      eventhandler_serviceendpoint: { set: 'serviceendpoints', column: '_eventhandler_value' },
      sdkmessageid: { set: 'sdkmessages', column: '_sdkmessageid_value' },
      sdkmessagefilterid: { set: 'sdkmessagefilters', column: '_sdkmessagefilterid_value' },
    },
    required: ['name', 'stage', 'mode', 'rank', 'eventhandler_serviceendpoint', 'sdkmessageid'],
    children: {
      sdkmessageprocessingstepid_sdkmessageprocessingstepimage: {
        set: 'sdkmessageprocessingstepimages',
        column: '_sdkmessageprocessingstepid_value',
      },
    },
    defaults: { statecode: 0, statuscode: 1, asyncautodelete: false, description: null, filteringattributes: null, supporteddeployment: 0 },
  },
  sdkmessageprocessingstepimages: {
    logicalName: 'sdkmessageprocessingstepimage',
    key: 'sdkmessageprocessingstepimageid',
    columns: {
      name: 'string',
      entityalias: 'string',
      imagetype: 'int',
      attributes: 'string',
      messagepropertyname: 'string',
      _sdkmessageprocessingstepid_value: 'guid',
    },
    writable: ['name', 'entityalias', 'imagetype', 'attributes', 'messagepropertyname'],
    binds: { sdkmessageprocessingstepid: { set: 'sdkmessageprocessingsteps', column: '_sdkmessageprocessingstepid_value' } },
    required: ['entityalias', 'imagetype', 'messagepropertyname', 'sdkmessageprocessingstepid'],
    defaults: { attributes: null },
  },
  sdkmessages: { logicalName: 'sdkmessage', key: 'sdkmessageid', columns: { name: 'string' }, writable: [] },
  sdkmessagefilters: {
    logicalName: 'sdkmessagefilter',
    key: 'sdkmessagefilterid',
    columns: { primaryobjecttypecode: 'string', _sdkmessageid_value: 'guid', iscustomprocessingstepallowed: 'bool' },
    writable: [],
  },
  asyncoperations: {
    logicalName: 'asyncoperation',
    key: 'asyncoperationid',
    columns: {
      name: 'string',
      statuscode: 'int',
      errorcode: 'int',
      message: 'string',
      friendlymessage: 'string',
      completedon: 'string',
      _owningextensionid_value: 'guid',
    },
    writable: [],
  },
  accounts: {
    logicalName: 'account',
    key: 'accountid',
    // A lookup is read as `_<lookup>_value` (https://learn.microsoft.com/power-apps/developer/data-platform/webapi/query/select-columns#lookup-property-values).
    columns: { name: 'string', accountnumber: 'string', revenue: 'int', statecode: 'int', _ownerid_value: 'guid' },
    writable: [],
  },
  // The entity set of this table is not its logical name plus "s": the reader must ask the metadata.
  shko_allfieldses: { logicalName: 'shko_allfields', key: 'shko_allfieldsid', columns: { shko_name: 'string' }, writable: [] },
};

const SERVICE_ROOT = '/api/data/v9.2/';
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export type Row = Record<string, unknown>;

export interface RecordedRequest {
  method: string;
  /** Decoded, relative to the service root: `serviceendpoints?$select=…`. */
  path: string;
  headers: Record<string, string | string[] | undefined>;
  body: Row | undefined;
}

export interface InjectedFailure {
  method?: string;
  /** Matches the start of the decoded path. */
  path: string;
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
  times?: number;
}

export interface FakeDataverse {
  /** `http://127.0.0.1:<port>`, the organization URL. */
  url: string;
  token: string;
  requests: RecordedRequest[];
  /** What the client sent that Dataverse would have refused. */
  violations: string[];
  writes(): RecordedRequest[];
  rows(entitySet: string): Row[];
  row(entitySet: string, id: string): Row | undefined;
  insert(entitySet: string, row: Row): string;
  /** Adds the SdkMessages and their SdkMessageFilters for these tables. */
  seedMessages(messages: string[], tables: string[]): void;
  fail(failure: InjectedFailure): void;
  /** Forgets the recorded requests, violations and pending failures (the rows stay). */
  reset(): void;
  /** Rows per page; beyond it a collection answers with `@odata.nextLink`. */
  pageSize: number;
  /** Tables whose rows the stand-in serves with change tracking (fakeChangeTracking.ts), its clock and WhoAmI. */
  changeTracking: FakeChangeTracking;
  close(): Promise<void>;
}

class ODataError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** `tables`: table definitions served besides the stand-in's own (test/support/realTableDefinitions.ts reads real ones). */
export async function startFakeDataverse(options: { tables?: Readonly<Record<string, TableFacts>> } = {}): Promise<FakeDataverse> {
  const tables = new Map<string, Map<string, Row>>(Object.keys(SCHEMAS).map((set) => [set, new Map()]));
  const requests: RecordedRequest[] = [];
  const violations: string[] = [];
  const failures: InjectedFailure[] = [];
  const token = `test-token-${randomUUID()}`;
  let origin = '';
  const changeTracking = new FakeChangeTracking((logicalName) => options.tables?.[logicalName] ?? TABLES[logicalName]);
  /** Definitions PUT and not yet published (PublishXml), by table. */
  const unpublished = new Map<string, Row>();

  const table = (set: string) => {
    const rows = tables.get(set);
    if (!rows) throw new ODataError(404, '0x80060888', `Resource not found for the segment '${set}'.`);
    return rows;
  };
  const schemaOf = (set: string): TableSchema => {
    const schema = SCHEMAS[set];
    if (!schema) throw new ODataError(404, '0x80060888', `Resource not found for the segment '${set}'.`);
    return schema;
  };
  const refuse = (status: number, code: string, message: string): never => {
    violations.push(message);
    throw new ODataError(status, code, message);
  };
  const notFound = (schema: TableSchema, id: string): never => {
    throw new ODataError(404, '0x80040217', `${schema.logicalName} With Id = ${id} Does Not Exist`);
  };

  const project = (schema: TableSchema, row: Row, select: string[] | null): Row => {
    const columns = select ?? [schema.key, ...Object.keys(schema.columns)];
    const result: Row = { '@odata.etag': `W/"${String(row.__version)}"` };
    for (const column of columns) {
      if (column === 'isauthvalueset') result[column] = typeof row.authvalue === 'string' && row.authvalue.length > 0;
      else result[column] = row[column] ?? null;
    }
    if (!columns.includes(schema.key)) result[schema.key] = row[schema.key];
    return result;
  };

  const checkSelect = (schema: TableSchema, select: string | null): string[] | null => {
    if (select === null) return null;
    const columns = select.split(',');
    for (const column of columns) {
      if (column !== schema.key && !(column in schema.columns))
        refuse(400, '0x80060888', `Could not find a property named '${column}' on type 'Microsoft.Dynamics.CRM.${schema.logicalName}'.`);
    }
    return columns;
  };

  const parseLiteral = (text: string): unknown => {
    if (text.startsWith("'") && text.endsWith("'")) {
      const inner = text.slice(1, -1);
      if (inner.replaceAll("''", '').includes("'")) refuse(400, '0x80060888', `Syntax error in $filter literal ${text}`);
      return inner.replaceAll("''", "'");
    }
    if (GUID.test(text)) return text;
    if (/^-?\d+$/.test(text)) return Number(text);
    if (text === 'true' || text === 'false') return text === 'true';
    if (text === 'null') return null;
    return refuse(400, '0x80060888', `Syntax error in $filter literal ${text}`);
  };

  /** `a eq 'x' and b eq 8`: the only filters registration, status and the reader send. */
  const checkFilter = (schema: TableSchema, filter: string | null): ((row: Row) => boolean) => {
    if (filter === null) return () => true;
    const clauses = filter.split(/ and (?=(?:[^']*'[^']*')*[^']*$)/).map((clause) => {
      const match = clause.match(/^([A-Za-z_][A-Za-z0-9_]*) eq (.+)$/);
      if (!match) return refuse(400, '0x80060888', `Unsupported $filter clause: ${clause}`);
      const [, column, literal] = match as unknown as [string, string, string];
      if (column !== schema.key && !(column in schema.columns))
        refuse(400, '0x80060888', `Could not find a property named '${column}' on type 'Microsoft.Dynamics.CRM.${schema.logicalName}'.`);
      const expected = parseLiteral(literal);
      if (schema.columns[column] === 'guid' && typeof expected === 'string' && !GUID.test(expected))
        refuse(400, '0x80060888', `${column} compares to a GUID, not a string`);
      return (row: Row) => {
        const actual = column === 'isauthvalueset' ? Boolean(row.authvalue) : row[column];
        return typeof actual === 'string' && typeof expected === 'string'
          ? actual.toLowerCase() === expected.toLowerCase()
          : actual === expected;
      };
    });
    return (row) => clauses.every((clause) => clause(row));
  };

  const checkOrderBy = (schema: TableSchema, orderby: string | null): ((a: Row, b: Row) => number) | null => {
    if (orderby === null) return null;
    const match = orderby.match(/^([A-Za-z_][A-Za-z0-9_]*) (asc|desc)$/);
    if (!match) return refuse(400, '0x80060888', `Unsupported $orderby: ${orderby}`);
    const [, column, direction] = match as unknown as [string, string, string];
    if (!(column in schema.columns))
      refuse(400, '0x80060888', `Could not find a property named '${column}' on type 'Microsoft.Dynamics.CRM.${schema.logicalName}'.`);
    const sign = direction === 'desc' ? -1 : 1;
    return (a, b) => sign * String(a[column] ?? '').localeCompare(String(b[column] ?? ''));
  };

  const checkQueryOptions = (query: URLSearchParams, allowed: string[]) => {
    for (const name of query.keys())
      if (!allowed.includes(name)) refuse(400, '0x80060888', `The query parameter '${name}' is not supported here`);
  };

  const collection = (schema: TableSchema, rows: Row[], query: URLSearchParams, path: string, contextSet: string) => {
    checkQueryOptions(query, ['$select', '$filter', '$orderby', '$top', '$skiptoken']);
    const select = checkSelect(schema, query.get('$select'));
    const matches = rows.filter(checkFilter(schema, query.get('$filter')));
    const order = checkOrderBy(schema, query.get('$orderby'));
    if (order) matches.sort(order);
    const top = query.get('$top');
    const limited = top === null ? matches : matches.slice(0, Number(top));
    const skip = Number(query.get('$skiptoken') ?? 0);
    const page = limited.slice(skip, skip + fake.pageSize);
    const body: Row = {
      '@odata.context': `${origin}${SERVICE_ROOT}$metadata#${contextSet}`,
      value: page.map((row) => project(schema, row, select)),
    };
    if (skip + fake.pageSize < limited.length) {
      const next = new URLSearchParams(query);
      next.set('$skiptoken', String(skip + fake.pageSize));
      body['@odata.nextLink'] = `${origin}${SERVICE_ROOT}${path}?${next.toString()}`;
    }
    return body;
  };

  const resolveBinds = (schema: TableSchema, body: Row, row: Row) => {
    for (const [property, value] of Object.entries(body)) {
      if (!property.endsWith('@odata.bind')) continue;
      const navigation = property.slice(0, -'@odata.bind'.length);
      const target = schema.binds?.[navigation];
      if (!target)
        refuse(
          400,
          '0x80060888',
          `An undeclared property '${navigation}' which only has property annotations in the payload but no property value was found in the payload.`,
        );
      const match = typeof value === 'string' ? value.match(/^\/([a-z_]+)\(([0-9a-f-]{36})\)$/) : null;
      if (!match) return refuse(400, '0x80060891', `A URL was either not a valid entity reference: ${property} = ${JSON.stringify(value)}`);
      const [, set, id] = match as unknown as [string, string, string];
      if (set !== target!.set) refuse(400, '0x80060891', `${property} must reference ${target!.set}, not ${set}`);
      if (!table(set).has(id)) notFound(schemaOf(set), id);
      row[target!.column] = id;
    }
  };

  const checkColumns = (schema: TableSchema, body: Row) => {
    for (const [column, value] of Object.entries(body)) {
      if (column.endsWith('@odata.bind')) continue;
      if (!schema.writable.includes(column))
        refuse(
          400,
          '0x80060888',
          `The property '${column}' does not exist on type 'Microsoft.Dynamics.CRM.${schema.logicalName}'. Make sure to only use property names that are defined by the type.`,
        );
      const type = column === 'authvalue' ? 'string' : schema.columns[column];
      const ok =
        value === null ||
        (type === 'string' && typeof value === 'string') ||
        (type === 'int' && Number.isInteger(value)) ||
        (type === 'bool' && typeof value === 'boolean');
      if (!ok)
        refuse(
          400,
          '0x80048d19',
          `Error identified in Payload provided by the user for Entity :'${schema.logicalName}', property '${column}' has the wrong type`,
        );
    }
  };

  /** Rules Dataverse applies to a whole step or image row, on create and update alike. */
  const checkRow = (set: string, row: Row): void => {
    if (set === 'sdkmessageprocessingsteps' && row.mode === 1 && row.stage !== 40) {
      // "When you register for the PostOperation stage, you can register the step to run in Asynchronous
      // Execution Mode" (https://learn.microsoft.com/power-apps/developer/data-platform/event-framework#asynchronous-plug-in-steps).
      refuse(400, '0x80040203', 'An asynchronous step must be registered in the PostOperation stage (40)');
    }
    if (set === 'sdkmessageprocessingstepimages') {
      // An image is taken of the request property that names the record: Id for Create (the id
      // exists only once created), EntityMoniker for SetState, Target for Update, Delete and the rest.
      // The Plug-in Registration Tool fills it in the same way (Innofactor/PluginRegistration,
      // GetMessagePropertyName; https://learn.microsoft.com/power-apps/developer/data-platform/register-plug-in#define-entity-images).
      const step = table('sdkmessageprocessingsteps').get(String(row._sdkmessageprocessingstepid_value));
      const message = String(table('sdkmessages').get(String(step?._sdkmessageid_value))?.name ?? '');
      const expected =
        message === 'Create' ? 'Id' : message === 'SetState' || message === 'SetStateDynamicEntity' ? 'EntityMoniker' : 'Target';
      if (row.messagepropertyname !== expected)
        refuse(
          400,
          '0x80040203',
          `The image's message property name for ${message} is ${expected}, not ${String(row.messagepropertyname)}`,
        );
    }
  };

  /** `a,b(c;d),e` → [`a`, `b(c;d)`, `e`]: OData lists, split at top-level commas only. */
  const splitList = (text: string | null): string[] => {
    if (text === null || text === '') return [];
    const items: string[] = [];
    let depth = 0;
    let start = 0;
    for (let i = 0; i < text.length; i++) {
      if (text[i] === '(') depth++;
      else if (text[i] === ')') depth--;
      else if (text[i] === ',' && depth === 0) {
        items.push(text.slice(start, i));
        start = i + 1;
      }
    }
    items.push(text.slice(start));
    return items;
  };

  /** `Name(opt=…;opt=…)` → the name and its nested query options. */
  const expandItem = (item: string): { name: string; options: URLSearchParams } => {
    const match = item.match(/^([A-Za-z]+)(?:\((.*)\))?$/);
    if (!match) return refuse(400, '0x80060888', `Syntax error in $expand: ${item}`);
    return {
      name: match[1]!,
      options: new URLSearchParams(
        (match[2] ?? '')
          .split(';')
          .filter(Boolean)
          .map((part) => part.split('=', 2) as [string, string]),
      ),
    };
  };

  const selectFrom = (available: Record<string, unknown>, select: string | null, type: string): Record<string, unknown> => {
    const names = select === null ? Object.keys(available) : splitList(select);
    const result: Record<string, unknown> = {};
    for (const name of names) {
      if (!(name in available))
        refuse(400, '0x80060888', `Could not find a property named '${name}' on type 'Microsoft.Dynamics.CRM.${type}'.`);
      result[name] = available[name];
    }
    // "The MetadataId property value is always returned" (Query table definitions using the Web API).
    if ('MetadataId' in available) result.MetadataId = available.MetadataId;
    return result;
  };

  /**
   * `EntityDefinitions(LogicalName='x')` with $select and $expand=Attributes($select=…), and the
   * casts of its Attributes collection (`…/Attributes/Microsoft.Dynamics.CRM.PicklistAttributeMetadata`)
   * with $select and $expand=OptionSet,GlobalOptionSet (choices) or $select=Targets (lookups), as
   * "Query table definitions using the Web API" documents them; anything else is refused.
   */
  const tableDefinition = (logicalName: string, segments: string[], query: URLSearchParams): Row => {
    const facts = options.tables?.[logicalName] ?? TABLES[logicalName];
    const entitySet = Object.entries(SCHEMAS).find(([, schema]) => schema.logicalName === logicalName)?.[0] ?? facts?.entitySetName;
    if (!entitySet) throw new ODataError(404, '0x80040217', `Could not find entity with logical name ${logicalName}`);
    const context = `${origin}${SERVICE_ROOT}$metadata#EntityDefinitions`;
    if (segments.length === 0) {
      checkQueryOptions(query, ['$select', '$expand']);
      const available = facts
        ? { ...tableProperties(facts), ...changeTrackingProperties(logicalName) }
        : { LogicalName: logicalName, EntitySetName: entitySet, MetadataId: randomUUID() };
      const body: Row = {
        '@odata.context': `${context}(${query.get('$select') ?? ''})/$entity`,
        ...selectFrom(available, query.get('$select'), 'EntityMetadata'),
      };
      for (const item of splitList(query.get('$expand'))) {
        const { name, options } = expandItem(item);
        if (name !== 'Attributes')
          refuse(400, '0x80060888', `Could not find a property named '${name}' on type 'Microsoft.Dynamics.CRM.EntityMetadata'.`);
        for (const option of options.keys())
          if (option !== '$select') refuse(400, '0x80060888', `The query option '${option}' is not supported in this $expand`);
        if (!facts) return refuse(501, 'FakeDataverse', `The stand-in has no column definitions of ${logicalName}`);
        body.Attributes = facts.columns.map((column) => {
          const cast = attributeCast(column);
          return {
            ...(cast ? { '@odata.type': `#Microsoft.Dynamics.CRM.${cast}` } : {}),
            ...selectFrom(attributeProperties(logicalName, column), options.get('$select'), 'AttributeMetadata'),
          };
        });
      }
      return body;
    }
    const [collection, cast, ...rest] = segments;
    const castName = cast?.startsWith('Microsoft.Dynamics.CRM.') ? cast.slice('Microsoft.Dynamics.CRM.'.length) : null;
    if (collection !== 'Attributes' || !castName || rest.length > 0)
      return refuse(400, '0x80060888', `Unsupported EntityDefinitions path: ${segments.join('/')}`);
    // "you cannot cast the attributes to this type" (EnumAttributeMetadata), per the same article.
    if (castName === 'EnumAttributeMetadata' || castName === 'AttributeMetadata')
      refuse(400, '0x80060888', `The type '${cast}' cannot be used to cast Attributes here`);
    if (!facts) return refuse(501, 'FakeDataverse', `The stand-in has no column definitions of ${logicalName}`);
    checkQueryOptions(query, ['$select', '$expand']);
    const enumCast = [
      'PicklistAttributeMetadata',
      'MultiSelectPicklistAttributeMetadata',
      'StateAttributeMetadata',
      'StatusAttributeMetadata',
    ].includes(castName);
    const rows = facts.columns.filter((column) => attributeCast(column) === castName);
    const expand = splitList(query.get('$expand')).map(expandItem);
    for (const { name, options } of expand) {
      if (!enumCast || (name !== 'OptionSet' && name !== 'GlobalOptionSet'))
        refuse(400, '0x80060888', `Could not find a property named '${name}' on type 'Microsoft.Dynamics.CRM.${castName}'.`);
      for (const option of options.keys())
        if (option !== '$select') refuse(400, '0x80060888', `The query option '${option}' is not supported in this $expand`);
    }
    const value = rows.map((column) => {
      const available: Record<string, unknown> = { ...attributeProperties(logicalName, column) };
      if (castName === 'LookupAttributeMetadata') available.Targets = column.targets ?? [];
      const row: Row = selectFrom(available, query.get('$select'), castName);
      for (const { name, options } of expand) {
        const set = name === 'GlobalOptionSet' && !column.globalChoice ? null : optionSetOf(logicalName, column);
        row[name] = set === null ? null : selectFrom(set, options.get('$select'), 'OptionSetMetadata');
      }
      return row;
    });
    return { '@odata.context': `${context}('${logicalName}')/Attributes/${cast}`, value };
  };

  /** ChangeTrackingEnabled and the managed property that allows turning it on (EntityMetadata). */
  const changeTrackingProperties = (logicalName: string): Row => ({
    ChangeTrackingEnabled: changeTracking.isTracked(logicalName) === true,
    CanChangeTrackingBeEnabled: { Value: true, CanBeChanged: false, ManagedPropertyLogicalName: 'canchangetrackingbeenabled' },
  });

  /**
   * PUT EntityDefinitions(<MetadataId>): "You can't use the PATCH method to update data model
   * entities … you must use the PUT method … be careful to include all the existing properties",
   * with `MSCRM.MergeLabels: true` (without it, labels in other languages are lost); the change
   * applies once published (PublishXml). (Create and update table definitions using the Web API.)
   */
  const putDefinition = (id: string, body: Row | undefined, headers: IncomingMessage['headers']) => {
    const facts = Object.values({ ...TABLES, ...options.tables }).find((candidate) => metadataId(candidate.logicalName) === id);
    if (!facts) throw new ODataError(404, '0x80040217', `Could not find entity with MetadataId ${id}`);
    if (headers['mscrm.mergelabels'] !== 'true')
      refuse(400, 'FakeDataverse', 'A definition PUT without MSCRM.MergeLabels: true drops the labels of other languages');
    const current = { ...tableProperties(facts), ...changeTrackingProperties(facts.logicalName) };
    const missing = Object.keys(current).filter((name) => !(name in (body ?? {})));
    if (missing.length > 0) refuse(400, 'FakeDataverse', `A PUT replaces the whole definition; it lacks ${missing.join(', ')}`);
    if (current.ChangeTrackingEnabled && body?.ChangeTrackingEnabled === false)
      refuse(400, '0x80040203', 'Once change tracking has been enabled for a table, it is not possible to disable it');
    unpublished.set(facts.logicalName, body!);
    return { status: 204 };
  };

  /** POST PublishXml: applies what was PUT for the tables its ParameterXml names. */
  const publishXml = (body: Row | undefined) => {
    const xml = typeof body?.ParameterXml === 'string' ? body.ParameterXml : '';
    const match = /^<importexportxml><entities>((?:<entity>[a-z_0-9]+<\/entity>)+)<\/entities><\/importexportxml>$/.exec(xml);
    if (!match) return refuse(400, '0x80040203', `PublishXml: unexpected ParameterXml ${JSON.stringify(xml.slice(0, 200))}`);
    for (const [, name] of match[1]!.matchAll(/<entity>([a-z_0-9]+)<\/entity>/g)) {
      const definition = unpublished.get(name!);
      if (definition?.ChangeTrackingEnabled === true) changeTracking.enable(name!);
      unpublished.delete(name!);
    }
    return { status: 204 };
  };

  const handle = (
    method: string,
    path: string,
    query: URLSearchParams,
    body: Row | undefined,
    headers: IncomingMessage['headers'],
  ): { status: number; body?: unknown; headers?: Record<string, string> } => {
    const [first = '', navigation] = path.split('/');
    const definition = first.match(/^EntityDefinitions\(LogicalName='([^']*)'\)$/);
    if (definition) {
      if (method !== 'GET') refuse(405, '0x80060888', 'EntityDefinitions are read here');
      return { status: 200, body: tableDefinition(definition[1]!, path.split('/').slice(1), query) };
    }
    const byId = first.match(/^EntityDefinitions\(([0-9a-f-]{36})\)$/);
    if (byId && method === 'PUT' && navigation === undefined) return putDefinition(byId[1]!, body, headers);
    if (first === 'PublishXml' && method === 'POST') return publishXml(body);
    if (first === 'WhoAmI' && method === 'GET') {
      const whoAmI = { BusinessUnitId: randomUUID(), UserId: changeTracking.userId, OrganizationId: changeTracking.organizationId };
      return {
        status: 200,
        body: { '@odata.context': `${origin}${SERVICE_ROOT}$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse`, ...whoAmI },
      };
    }
    if (method === 'GET' && navigation === undefined && changeTracking.servesSet(first)) {
      try {
        const answer = changeTracking.answer(first, query, String(headers.prefer ?? ''), `${origin}${SERVICE_ROOT}`);
        return { status: 200, body: answer.body, headers: answer.headers };
      } catch (error) {
        if (!(error instanceof ChangeTrackingError)) throw error;
        if (error.violation) violations.push(error.message);
        throw new ODataError(error.status, error.code, error.message);
      }
    }
    const keyed = first.match(/^([a-z_]+)\(([^)]*)\)$/);
    const set = keyed ? keyed[1]! : first;
    const schema = schemaOf(set);
    const rows = table(set);
    const id = keyed?.[2];
    if (id !== undefined && !GUID.test(id)) refuse(400, '0x80060888', `Bad key segment ${first}`);

    if (method === 'GET') {
      if (id === undefined) return { status: 200, body: collection(schema, [...rows.values()], query, path, set) };
      const row = rows.get(id) ?? notFound(schema, id);
      if (navigation !== undefined) {
        const child =
          schema.children?.[navigation] ??
          refuse(
            400,
            '0x80060888',
            `Could not find a property named '${navigation}' on type 'Microsoft.Dynamics.CRM.${schema.logicalName}'.`,
          );
        const childRows = [...table(child.set).values()].filter((candidate) => candidate[child.column] === id);
        return { status: 200, body: collection(schemaOf(child.set), childRows, query, path, child.set) };
      }
      checkQueryOptions(query, ['$select']);
      return {
        status: 200,
        body: {
          '@odata.context': `${origin}${SERVICE_ROOT}$metadata#${set}/$entity`,
          ...project(schema, row, checkSelect(schema, query.get('$select'))),
        },
      };
    }

    if ([...query.keys()].length > 0) refuse(400, '0x80060888', `${method} takes no query options`);
    if (method === 'POST' && id === undefined && navigation === undefined) {
      if (!body) return refuse(400, '0x80060888', 'A POST needs a body');
      checkColumns(schema, body);
      for (const required of schema.required ?? []) {
        if (!(required in body) && !(`${required}@odata.bind` in body))
          refuse(400, '0x80040200', `${schema.logicalName}: ${required} is required`);
      }
      const newId = randomUUID();
      const row: Row = { ...schema.defaults, [schema.key]: newId, __version: 1 };
      for (const [column, value] of Object.entries(body)) if (!column.endsWith('@odata.bind')) row[column] = value;
      resolveBinds(schema, body, row);
      if (set === 'sdkmessageprocessingsteps' && row._sdkmessagefilterid_value) {
        const filter = table('sdkmessagefilters').get(String(row._sdkmessagefilterid_value));
        if (filter?._sdkmessageid_value !== row._sdkmessageid_value)
          refuse(400, '0x80040203', 'The message filter does not belong to the step’s message');
      }
      checkRow(set, row);
      rows.set(newId, row);
      const entityId = `${origin}${SERVICE_ROOT}${set}(${newId})`;
      if (String(headers.prefer ?? '').includes('return=representation'))
        return { status: 201, body: project(schema, row, null), headers: { 'OData-EntityId': entityId } };
      return { status: 204, headers: { 'OData-EntityId': entityId } };
    }
    if (method === 'PATCH' && id !== undefined && navigation === undefined) {
      if (headers['if-match'] !== '*')
        refuse(400, 'FakeDataverse', 'A PATCH without If-Match: * would create the row if it was deleted meanwhile (upsert)');
      if (!body) return refuse(400, '0x80060888', 'A PATCH needs a body');
      const row = rows.get(id) ?? notFound(schema, id);
      checkColumns(schema, body);
      const updated: Row = { ...row };
      for (const [column, value] of Object.entries(body)) if (!column.endsWith('@odata.bind')) updated[column] = value;
      resolveBinds(schema, body, updated);
      checkRow(set, updated);
      Object.assign(row, updated);
      row.__version = Number(row.__version) + 1;
      return { status: 204 };
    }
    if (method === 'DELETE' && id !== undefined && navigation === undefined) {
      if (!rows.has(id)) notFound(schema, id);
      rows.delete(id);
      // Images and steps cascade with their parent, as in Dataverse.
      for (const child of Object.values(schema.children ?? {})) {
        for (const [childId, childRow] of table(child.set)) if (childRow[child.column] === id) table(child.set).delete(childId);
      }
      return { status: 204 };
    }
    return refuse(405, '0x80060888', `${method} is not supported on ${path}`);
  };

  const checkHeaders = (request: IncomingMessage, hasBody: boolean): void => {
    const expect = (name: string, ok: boolean) => {
      if (!ok)
        refuse(
          400,
          'FakeDataverse.Header',
          `${request.method} ${request.url}: header ${name} is missing or wrong (${JSON.stringify(request.headers[name.toLowerCase()] ?? null)})`,
        );
    };
    expect('OData-MaxVersion', request.headers['odata-maxversion'] === '4.0');
    expect('OData-Version', request.headers['odata-version'] === '4.0');
    expect('Accept', String(request.headers.accept ?? '').includes('application/json'));
    if (hasBody) expect('Content-Type', String(request.headers['content-type'] ?? '').startsWith('application/json'));
  };

  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const send = (status: number, body?: unknown, headers: Record<string, string> = {}) => {
        response.writeHead(
          status,
          body === undefined ? headers : { 'Content-Type': 'application/json; odata.metadata=minimal', 'OData-Version': '4.0', ...headers },
        );
        response.end(body === undefined ? undefined : JSON.stringify(body));
      };
      const url = new URL(request.url ?? '/', origin);
      const method = request.method ?? 'GET';
      let body: Row | undefined;
      const text = Buffer.concat(chunks).toString('utf8');
      const relative = decodeURIComponent(url.pathname.startsWith(SERVICE_ROOT) ? url.pathname.slice(SERVICE_ROOT.length) : url.pathname);
      const recorded: RecordedRequest = {
        method,
        path: `${relative}${url.search ? `?${decodeURIComponent(url.search.slice(1))}` : ''}`,
        headers: request.headers,
        body: undefined,
      };
      requests.push(recorded);
      try {
        if (text.length > 0) {
          try {
            body = JSON.parse(text) as Row;
          } catch {
            refuse(400, '0x80060888', 'The body is not JSON');
          }
          recorded.body = body;
        }
        if (request.headers.authorization !== `Bearer ${token}`) {
          send(401, undefined, {
            'WWW-Authenticate': 'Bearer authorization_uri=https://login.microsoftonline.com/common/oauth2/authorize',
          });
          return;
        }
        if (!url.pathname.startsWith(SERVICE_ROOT)) refuse(404, 'FakeDataverse', `Not under ${SERVICE_ROOT}: ${url.pathname}`);
        checkHeaders(request, text.length > 0);
        const failure = failures.find((candidate) => (candidate.method ?? method) === method && recorded.path.startsWith(candidate.path));
        if (failure) {
          failure.times = (failure.times ?? 1) - 1;
          if (failure.times <= 0) failures.splice(failures.indexOf(failure), 1);
          send(failure.status, failure.body, failure.headers);
          return;
        }
        const result = handle(method, relative, url.searchParams, body, request.headers);
        send(result.status, result.body, result.headers);
      } catch (error) {
        if (error instanceof ODataError) send(error.status, { error: { code: error.code, message: error.message } });
        else send(500, { error: { code: 'FakeDataverse.Bug', message: error instanceof Error ? error.message : String(error) } });
      }
    });
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const fake: FakeDataverse = {
    url: origin,
    token,
    requests,
    violations,
    pageSize: 5000,
    changeTracking,
    writes: () => requests.filter((request) => request.method !== 'GET'),
    rows: (set) => [...table(set).values()],
    row: (set, id) => table(set).get(id),
    insert(set, row) {
      const schema = schemaOf(set);
      const id = typeof row[schema.key] === 'string' ? String(row[schema.key]) : randomUUID();
      table(set).set(id, { ...schema.defaults, ...row, [schema.key]: id, __version: 1 });
      return id;
    },
    seedMessages(messages, tableNames) {
      for (const message of messages) {
        const messageId = fake.insert('sdkmessages', { name: message });
        for (const tableName of tableNames)
          fake.insert('sdkmessagefilters', {
            primaryobjecttypecode: tableName,
            _sdkmessageid_value: messageId,
            iscustomprocessingstepallowed: true,
          });
      }
    },
    fail: (failure) => failures.push(failure),
    reset() {
      requests.length = 0;
      violations.length = 0;
      failures.length = 0;
      fake.pageSize = 5000;
    },
    close: () => new Promise<void>((resolve, reject) => server.close((error) => (error ? reject(error) : resolve()))),
  };
  return fake;
}
