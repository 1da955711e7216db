import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { DATAVERSE_HEADER_NAMES, MSG_SIZE_EXCEEDED_HEADER } from '../dataverse';
import { isGuid } from '../dataverse/rawSchemas';
import {
  dataContractDate,
  type RawJson,
  rawEntity,
  rawEntityReference,
  rawExecutionContext,
  rawMoney,
  rawOptionSetValue,
  withoutTruncatedProperties,
} from '../dataverse/samplePayloads';
import { IMAGE_ALIAS, isBulkMessage, REGISTRABLE_STAGES, STAGES } from '../dataverse/steps';
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
  /** The record ids: one for a single-record message, one per record of a bulk one. */
  ids?: string[];
  /** Records of a CreateMultiple or UpdateMultiple when `ids` is not given (default 2). */
  records?: number;
  /** `name=value` (text) or `name:type=value`; see ATTRIBUTE_TYPES. Every record gets them. */
  attributes?: string[];
  /** `alias:name=value` or `alias:name:type=value`: one column of a pre-image (repeat per column). */
  preImages?: string[];
  postImages?: string[];
  /** 10, 20, 40 or PreValidation, PreOperation, PostOperation. */
  stage?: string;
  /** Default: asynchronous in PostOperation, synchronous before it (the only mode Dataverse allows there). */
  mode?: StepMode;
  organization?: string;
}

const STAGE_BY_NAME: Readonly<Record<string, number>> = Object.fromEntries(
  REGISTRABLE_STAGES.map((name) => [name.toLowerCase(), STAGES[name]]),
);

function stageNumber(text: string | undefined): number {
  if (text === undefined) return STAGES.PostOperation;
  const stage = STAGE_BY_NAME[text.toLowerCase()] ?? Number(text);
  if (!REGISTRABLE_STAGES.some((name) => STAGES[name] === stage))
    throw new UsageError(`--stage must be 10, 20 or 40 (PreValidation, PreOperation, PostOperation), got "${text}"`);
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

function parseAttribute(text: string, option = '--attribute'): [string, RawJson] {
  const equals = text.indexOf('=');
  if (equals <= 0) throw new UsageError(`${option} expects name=value or name:type=value`);
  const [name, type = 'string', ...extra] = text.slice(0, equals).split(':');
  const toRaw = ATTRIBUTE_TYPES[type];
  if (!name || extra.length > 0 || !toRaw) {
    throw new UsageError(`${option} types are ${Object.keys(ATTRIBUTE_TYPES).join(', ')}; got "${text.slice(0, equals)}"`);
  }
  return [name, toRaw(text.slice(equals + 1), name)];
}

/** `alias:name[:type]=value` options → the columns of each image, by alias. */
function parseImages(texts: string[], option: string): Map<string, Record<string, RawJson>> {
  const images = new Map<string, Record<string, RawJson>>();
  for (const text of texts) {
    const colon = text.indexOf(':');
    const alias = text.slice(0, colon);
    if (colon <= 0 || !IMAGE_ALIAS.test(alias))
      throw new UsageError(`${option} expects alias:name=value (or alias:name:type=value), e.g. ${option} pre:firstname=Ann`);
    const [name, value] = parseAttribute(text.slice(colon + 1), option);
    images.set(alias, { ...images.get(alias), [name]: value });
  }
  return images;
}

const EMPTY_GUID = '00000000-0000-0000-0000-000000000000';
const CONTRACTS = 'http://schemas.microsoft.com/xrm/2011/Contracts';

/**
 * A RemoteExecutionContext for one event, shaped as Dataverse sends it: Target is the record for
 * Create, Update and other messages (with its primary key), an EntityReference for Delete; Create
 * returns the new id in OutputParameters. CreateMultiple and UpdateMultiple carry `Targets`, an
 * EntityCollection of the records, and a CreateMultiple returns their `Ids` (CreateMultipleResponse.Ids,
 * https://learn.microsoft.com/power-apps/developer/data-platform/bulk-operations). Images are
 * keyed by alias, as the step registered them.
 */
export function generatedWebhookRequest(options: GeneratedEventOptions): WebhookRequestToSend {
  const stage = stageNumber(options.stage);
  const mode = options.mode ?? (stage === STAGES.PostOperation ? 'async' : 'sync');
  if (mode === 'async' && stage !== STAGES.PostOperation)
    throw new UsageError('Dataverse runs asynchronous steps only in PostOperation (--stage 40)');
  const { entity, message } = options;
  const ids = recordIds(options);
  const attributes = Object.fromEntries((options.attributes ?? []).map((text) => parseAttribute(text)));
  const preImages = parseImages(options.preImages ?? [], '--pre-image');
  const postImages = parseImages(options.postImages ?? [], '--post-image');
  checkWhatTheMessageCarries(message, stage, Object.keys(attributes).length, preImages.size, postImages.size);
  const id = ids[0]!;
  const images = (columns: Map<string, Record<string, RawJson>>) =>
    Object.fromEntries([...columns].map(([alias, image]) => [alias, rawEntity(entity, id, image)]));
  const context = rawExecutionContext({
    messageName: message,
    entityName: entity,
    // Which id a bulk operation's context names is not documented; the empty GUID says "several".
    entityId: isBulkMessage(message) ? EMPTY_GUID : id,
    stage,
    mode: mode === 'sync' ? 0 : 1,
    ...parametersOf(entity, message, stage, ids, attributes),
    preEntityImages: images(preImages),
    postEntityImages: images(postImages),
    organizationName: organizationNameOf(options.organization ?? DEFAULT_ORGANIZATION),
  });
  return {
    body: JSON.stringify(context),
    headers: dataverseHeaders({ organization: options.organization ?? DEFAULT_ORGANIZATION, entity, message }),
  };
}

const sameMessage = (message: string, name: string) => message.toLowerCase() === name.toLowerCase();

/** The records' ids: those given, or new ones (two for a bulk message unless --records says). */
function recordIds(options: GeneratedEventOptions): string[] {
  const { message } = options;
  const bulk = isBulkMessage(message);
  for (const id of options.ids ?? []) if (!isGuid(id)) throw new UsageError('--id must be a GUID');
  if (!bulk && (options.ids?.length ?? 0) > 1)
    throw new UsageError(`${message} is about one record: give --id once (several are for CreateMultiple and UpdateMultiple)`);
  if (!bulk && options.records !== undefined) throw new UsageError('--records is for CreateMultiple and UpdateMultiple');
  const count = options.ids?.length || options.records || (bulk ? 2 : 1);
  if (!Number.isInteger(count) || count < 1 || count > 1000) throw new UsageError('--records takes a whole number from 1 to 1000');
  return options.ids?.length ? options.ids : Array.from({ length: count }, () => randomUUID());
}

/** What Dataverse never sends for this message and stage (attributes of a Delete, images it has not). */
function checkWhatTheMessageCarries(message: string, stage: number, attributes: number, preImages: number, postImages: number): void {
  if (sameMessage(message, 'Delete') && attributes > 0)
    throw new UsageError('a Delete carries no attributes, only a reference to the record');
  if (isBulkMessage(message) && preImages + postImages > 0)
    throw new UsageError(
      `images of a ${message} are kept per record, which a webhook payload does not document: send the ${message.replace(/Multiple$/, '')} of each record instead`,
    );
  if (preImages > 0 && sameMessage(message, 'Create')) throw new UsageError('a Create has no pre-image: the row does not exist yet');
  if (postImages > 0 && sameMessage(message, 'Delete')) throw new UsageError('a Delete has no post-image: the row no longer exists');
  if (postImages > 0 && stage !== STAGES.PostOperation) throw new UsageError('a post-image exists only in PostOperation (--stage 40)');
}

/** The Target (or the Targets of a bulk message), and the ids a create returns in PostOperation. */
function parametersOf(
  entity: string,
  message: string,
  stage: number,
  ids: string[],
  attributes: Record<string, RawJson>,
): { inputParameters: Record<string, RawJson>; outputParameters: Record<string, RawJson> } {
  const record = (recordId: string) => rawEntity(entity, recordId, { [`${entity}id`]: recordId, ...attributes });
  const id = ids[0]!;
  if (!isBulkMessage(message)) {
    const inputParameters = { Target: sameMessage(message, 'Delete') ? rawEntityReference(entity, id) : record(id) };
    return { inputParameters, outputParameters: sameMessage(message, 'Create') && stage === STAGES.PostOperation ? { id } : {} };
  }
  const inputParameters = {
    Targets: {
      __type: `EntityCollection:${CONTRACTS}`,
      Entities: ids.map(record),
      EntityName: entity,
      MinActiveRowVersion: null,
      MoreRecords: false,
      PagingCookie: null,
      TotalRecordCount: -1,
      TotalRecordCountLimitExceeded: false,
    },
  };
  // A Guid[] in a DataContract JSON parameter is a bare array, as multi-select choices are.
  // "The OutputParameters are not populated until after the database transaction, so they are only
  // available … in the PostOperation stage" (https://learn.microsoft.com/power-apps/developer/data-platform/understand-the-data-context#output-parameters).
  return {
    inputParameters,
    outputParameters: sameMessage(message, 'CreateMultiple') && stage === STAGES.PostOperation ? { Ids: ids } : {},
  };
}

/** The unique name Dataverse gives an organization: the first label of its host name. */
function organizationNameOf(host: string): string {
  return host.split('.')[0] ?? host;
}

const identifyingFields = z.object({ PrimaryEntityName: z.string(), MessageName: z.string(), OrganizationName: z.string() }).partial();

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
  const organization =
    options.organization ?? (fields.OrganizationName ? `${fields.OrganizationName.toLowerCase()}.crm.dynamics.com` : DEFAULT_ORGANIZATION);
  return { body: text, headers: dataverseHeaders({ organization, entity: fields.PrimaryEntityName, message: fields.MessageName }) };
}

function dataverseHeaders(identity: {
  organization: string;
  entity: string | undefined;
  message: string | undefined;
}): Record<string, string> {
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
  if (typeof context !== 'object' || context === null || Array.isArray(context))
    throw new UsageError('--truncated needs a JSON object body');
  return {
    body: JSON.stringify(withoutTruncatedProperties(context as Record<string, unknown>)),
    headers: { ...request.headers, [MSG_SIZE_EXCEEDED_HEADER]: 'true' },
  };
}
