import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { DATAVERSE_HEADER_NAMES, MSG_SIZE_EXCEEDED_HEADER } from '../dataverse';
import { isGuid } from '../dataverse/rawSchemas';
import {
  dataContractDate,
  rawEntity,
  rawEntityReference,
  rawExecutionContext,
  withoutTruncatedProperties,
  rawMoney,
  rawOptionSetValue,
  type RawJson,
} from '../dataverse/samplePayloads';
import { UsageError } from './io';

/**
 * The request Dataverse would send for one event: the DataContract body and the headers it adds.
 * `send` posts it; tests parse it with the app's own parser.
 */
export interface WebhookRequestToSend {
  body: string;
  headers: Record<string, string>;
}

export const DEFAULT_ORGANIZATION = 'contoso.crm.dynamics.com';

export type StepMode = 'sync' | 'async';

export interface GeneratedEventOptions {
  entity: string;
  message: string;
  id?: string;
  /** `name=value` (text) or `name:type=value`; see ATTRIBUTE_TYPES. */
  attributes?: string[];
  /** 10, 20, 40 or PreValidation, PreOperation, PostOperation. */
  stage?: string;
  mode?: StepMode;
  organization?: string;
}

const STAGES: Readonly<Record<string, number>> = { prevalidation: 10, preoperation: 20, postoperation: 40 };
const REGISTRABLE_STAGES = new Set([10, 20, 40]);

function stageNumber(text: string | undefined): number {
  if (text === undefined) return 40;
  const stage = STAGES[text.toLowerCase()] ?? Number(text);
  if (!REGISTRABLE_STAGES.has(stage)) throw new UsageError(`--stage must be 10, 20 or 40 (PreValidation, PreOperation, PostOperation), got "${text}"`);
  return stage;
}

/** `--attribute name:type=value`: how each type is written in the DataContract JSON. */
export const ATTRIBUTE_TYPES: Readonly<Record<string, (value: string, name: string) => RawJson>> = {
  string: (value) => value,
  int: (value, name) => {
    const number = Number(value);
    if (!Number.isInteger(number)) throw new UsageError(`--attribute ${name}:int needs a whole number`);
    return number;
  },
  decimal: (value, name) => finiteNumber(value, name, 'decimal'),
  bool: (value, name) => {
    if (value !== 'true' && value !== 'false') throw new UsageError(`--attribute ${name}:bool needs true or false`);
    return value === 'true';
  },
  money: (value, name) => rawMoney(finiteNumber(value, name, 'money')),
  choice: (value, name) => {
    const number = Number(value);
    if (!Number.isInteger(number)) throw new UsageError(`--attribute ${name}:choice needs the option's whole-number value`);
    return rawOptionSetValue(number);
  },
  date: (value, name) => {
    const date = new Date(value);
    if (Number.isNaN(date.getTime())) throw new UsageError(`--attribute ${name}:date needs an ISO 8601 date`);
    return dataContractDate(date);
  },
  lookup: (value, name) => {
    const [table, id, ...rest] = value.split('/');
    if (!table || !id || rest.length > 0 || !isGuid(id)) throw new UsageError(`--attribute ${name}:lookup needs table/GUID`);
    return rawEntityReference(table, id);
  },
  null: () => null,
};

function finiteNumber(value: string, name: string, type: string): number {
  const number = Number(value);
  if (value.trim() === '' || !Number.isFinite(number)) throw new UsageError(`--attribute ${name}:${type} needs a number`);
  return number;
}

function parseAttribute(text: string): [string, RawJson] {
  const equals = text.indexOf('=');
  if (equals <= 0) throw new UsageError('--attribute expects name=value or name:type=value');
  const [name, type = 'string', ...extra] = text.slice(0, equals).split(':');
  const toRaw = ATTRIBUTE_TYPES[type];
  if (!name || extra.length > 0 || !toRaw) {
    throw new UsageError(`--attribute types are ${Object.keys(ATTRIBUTE_TYPES).join(', ')}; got "${text.slice(0, equals)}"`);
  }
  return [name, toRaw(text.slice(equals + 1), name)];
}

/**
 * A RemoteExecutionContext for one event, shaped as Dataverse sends it: Target is the record for
 * Create, Update and other messages (with its primary key), an EntityReference for Delete; Create
 * returns the new id in OutputParameters.
 */
export function generatedWebhookRequest(options: GeneratedEventOptions): WebhookRequestToSend {
  const stage = stageNumber(options.stage);
  const mode = options.mode ?? 'async';
  if (mode === 'async' && stage !== 40) throw new UsageError('Dataverse runs asynchronous steps only in PostOperation (--stage 40)');
  const id = options.id ?? randomUUID();
  if (!isGuid(id)) throw new UsageError('--id must be a GUID');

  const attributes = Object.fromEntries((options.attributes ?? []).map(parseAttribute));
  const isDelete = options.message.toLowerCase() === 'delete';
  if (isDelete && Object.keys(attributes).length > 0) throw new UsageError('a Delete carries no attributes, only a reference to the record');
  const target = isDelete
    ? rawEntityReference(options.entity, id)
    : rawEntity(options.entity, id, { [`${options.entity}id`]: id, ...attributes });
  const context = rawExecutionContext({
    messageName: options.message,
    entityName: options.entity,
    entityId: id,
    stage,
    mode: mode === 'sync' ? 0 : 1,
    inputParameters: { Target: target },
    outputParameters: options.message.toLowerCase() === 'create' ? { id } : {},
    organizationName: organizationNameOf(options.organization ?? DEFAULT_ORGANIZATION),
  });
  return {
    body: JSON.stringify(context),
    headers: dataverseHeaders({ organization: options.organization ?? DEFAULT_ORGANIZATION, entity: options.entity, message: options.message }),
  };
}

/** The unique name Dataverse gives an organization: the first label of its host name. */
function organizationNameOf(host: string): string {
  return host.split('.')[0] ?? host;
}

const identifyingFields = z
  .object({ PrimaryEntityName: z.string(), MessageName: z.string(), OrganizationName: z.string() })
  .partial();

/**
 * A payload file sent as it is (a fixture, a captured body). The headers come from its own
 * fields where it has them; a body that is not a context is still sent, to see the app refuse it.
 */
export function fileWebhookRequest(body: Buffer, options: { organization?: string } = {}): WebhookRequestToSend {
  const text = body.toString('utf8');
  let fields: z.infer<typeof identifyingFields> = {};
  try {
    fields = identifyingFields.catch({}).parse(JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text));
  } catch {
    // Not JSON: sent as it is all the same.
  }
  const organization = options.organization ?? (fields.OrganizationName ? `${fields.OrganizationName.toLowerCase()}.crm.dynamics.com` : DEFAULT_ORGANIZATION);
  return { body: text, headers: dataverseHeaders({ organization, entity: fields.PrimaryEntityName, message: fields.MessageName }) };
}

function dataverseHeaders(identity: { organization: string; entity: string | undefined; message: string | undefined }): Record<string, string> {
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    [DATAVERSE_HEADER_NAMES.organization]: identity.organization,
    [DATAVERSE_HEADER_NAMES.correlationRequestId]: randomUUID(),
  };
  if (identity.entity) headers[DATAVERSE_HEADER_NAMES.entityName] = identity.entity;
  if (identity.message) headers[DATAVERSE_HEADER_NAMES.requestName] = identity.message;
  return headers;
}

/**
 * What Dataverse does to a body above 256 KB: removes ParentContext, InputParameters,
 * PreEntityImages and PostEntityImages, and says so in a header.
 */
export function truncated(request: WebhookRequestToSend): WebhookRequestToSend {
  let context: unknown;
  try {
    context = JSON.parse(request.body);
  } catch {
    throw new UsageError('--truncated needs a JSON body to remove properties from');
  }
  if (typeof context !== 'object' || context === null || Array.isArray(context)) throw new UsageError('--truncated needs a JSON object body');
  return { body: JSON.stringify(withoutTruncatedProperties(context as Record<string, unknown>)), headers: { ...request.headers, [MSG_SIZE_EXCEEDED_HEADER]: 'true' } };
}
