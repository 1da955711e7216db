import { z } from 'zod';
import type { DataverseClient } from '../dataverseApi';
import { guidLiteral, queryString, rowPath, stringLiteral } from '../dataverseApi/odata';
import { WEBHOOK_CONTRACT } from './definition';

/**
 * The Dataverse rows registration reads and writes, by their Web API names: entity sets,
 * columns, navigation properties. One place, so a misspelt name cannot hide in one query.
 */
export const ENTITY_SETS = {
  serviceEndpoints: 'serviceendpoints',
  steps: 'sdkmessageprocessingsteps',
  images: 'sdkmessageprocessingstepimages',
  messages: 'sdkmessages',
  messageFilters: 'sdkmessagefilters',
  asyncOperations: 'asyncoperations',
} as const;

/** Single-valued navigation properties, for `@odata.bind`. */
export const BINDINGS = {
  stepEventHandler: 'eventhandler_serviceendpoint@odata.bind',
  stepMessage: 'sdkmessageid@odata.bind',
  stepMessageFilter: 'sdkmessagefilterid@odata.bind',
  imageStep: 'sdkmessageprocessingstepid@odata.bind',
} as const;

/** Collection-valued navigation properties. */
const ENDPOINT_STEPS = 'serviceendpoint_sdkmessageprocessingstep';
const STEP_IMAGES = 'sdkmessageprocessingstepid_sdkmessageprocessingstepimage';

const id = z.string().transform((text) => text.toLowerCase());
const optionalText = z
  .string()
  .nullish()
  .transform((text) => text ?? null);

export const endpointRow = z.object({
  serviceendpointid: id,
  name: z.string(),
  contract: z.number().int(),
  url: optionalText,
  authtype: z.number().int().nullable(),
  messageformat: z.number().int().nullable(),
  description: optionalText,
  /** authvalue itself can never be read back. */
  isauthvalueset: z.boolean().nullable(),
});
export type EndpointRow = z.infer<typeof endpointRow>;
export const isWebhookEndpoint = (endpoint: EndpointRow): boolean => endpoint.contract === WEBHOOK_CONTRACT;
const ENDPOINT_COLUMNS = ['serviceendpointid', 'name', 'contract', 'url', 'authtype', 'messageformat', 'description', 'isauthvalueset'];

export const stepRow = z.object({
  sdkmessageprocessingstepid: id,
  name: z.string(),
  description: optionalText,
  stage: z.number().int(),
  mode: z.number().int(),
  rank: z.number().int(),
  asyncautodelete: z.boolean().nullable(),
  filteringattributes: optionalText,
  statecode: z.number().int(),
  _sdkmessageid_value: id.nullable(),
  _sdkmessagefilterid_value: id.nullable(),
});
export type StepRow = z.infer<typeof stepRow>;
const STEP_COLUMNS = [
  'sdkmessageprocessingstepid',
  'name',
  'description',
  'stage',
  'mode',
  'rank',
  'asyncautodelete',
  'filteringattributes',
  'statecode',
  '_sdkmessageid_value',
  '_sdkmessagefilterid_value',
];

export const imageRow = z.object({
  sdkmessageprocessingstepimageid: id,
  name: z.string(),
  entityalias: z.string(),
  imagetype: z.number().int(),
  attributes: optionalText,
  messagepropertyname: optionalText,
});
export type ImageRow = z.infer<typeof imageRow>;
const IMAGE_COLUMNS = ['sdkmessageprocessingstepimageid', 'name', 'entityalias', 'imagetype', 'attributes', 'messagepropertyname'];

export const failedJobRow = z.object({
  asyncoperationid: id,
  name: optionalText,
  errorcode: z.number().int().nullable(),
  friendlymessage: optionalText,
  message: optionalText,
  completedon: optionalText,
});
export type FailedJobRow = z.infer<typeof failedJobRow>;

/** AsyncOperation.statuscode: Failed. */
export const FAILED_STATUS = 31;

export async function findEndpointsByName(client: DataverseClient, name: string): Promise<EndpointRow[]> {
  return client.list(
    `${ENTITY_SETS.serviceEndpoints}${queryString({ select: ENDPOINT_COLUMNS, filter: `name eq ${stringLiteral(name)}` })}`,
    endpointRow,
  );
}

export async function listWebhookEndpoints(client: DataverseClient): Promise<EndpointRow[]> {
  return client.list(
    `${ENTITY_SETS.serviceEndpoints}${queryString({ select: ENDPOINT_COLUMNS, filter: `contract eq ${WEBHOOK_CONTRACT}`, orderby: 'name asc' })}`,
    endpointRow,
  );
}

export async function listEndpointSteps(client: DataverseClient, endpointId: string): Promise<StepRow[]> {
  return client.list(
    `${rowPath(ENTITY_SETS.serviceEndpoints, endpointId)}/${ENDPOINT_STEPS}${queryString({ select: STEP_COLUMNS, orderby: 'name asc' })}`,
    stepRow,
  );
}

export async function listStepImages(client: DataverseClient, stepId: string): Promise<ImageRow[]> {
  return client.list(`${rowPath(ENTITY_SETS.steps, stepId)}/${STEP_IMAGES}${queryString({ select: IMAGE_COLUMNS })}`, imageRow);
}

export async function listFailedJobs(client: DataverseClient, stepId: string, top: number): Promise<FailedJobRow[]> {
  const query = queryString({
    select: ['asyncoperationid', 'name', 'errorcode', 'friendlymessage', 'message', 'completedon'],
    filter: `statuscode eq ${FAILED_STATUS} and _owningextensionid_value eq ${guidLiteral(stepId)}`,
    orderby: 'completedon desc',
    top,
  });
  return client.list(`${ENTITY_SETS.asyncOperations}${query}`, failedJobRow);
}

export class LookupError extends Error {
  override readonly name = 'LookupError';
}

const messageRow = z.object({ sdkmessageid: id, name: z.string() });
const filterRow = z.object({ sdkmessagefilterid: id, iscustomprocessingstepallowed: z.boolean().nullable() });

/** The SdkMessage and SdkMessageFilter ids of message-on-table, each looked up once per run. */
export function createMessageLookup(client: DataverseClient) {
  const messages = new Map<string, Promise<string>>();
  const filters = new Map<string, Promise<string>>();

  const messageId = (message: string): Promise<string> => {
    let pending = messages.get(message);
    if (!pending) {
      pending = client
        .list(
          `${ENTITY_SETS.messages}${queryString({ select: ['sdkmessageid', 'name'], filter: `name eq ${stringLiteral(message)}` })}`,
          messageRow,
        )
        .then((rows) => {
          const [row, ...others] = rows;
          if (!row) throw new LookupError(`Dataverse has no SDK message named "${message}"`);
          if (others.length > 0) throw new LookupError(`Dataverse has ${rows.length} SDK messages named "${message}"`);
          return row.sdkmessageid;
        });
      messages.set(message, pending);
    }
    return pending;
  };

  return {
    messageId,
    async filterId(message: string, table: string): Promise<{ messageId: string; filterId: string }> {
      const resolvedMessageId = await messageId(message);
      const key = `${message}\n${table}`;
      let pending = filters.get(key);
      if (!pending) {
        const filter = `_sdkmessageid_value eq ${guidLiteral(resolvedMessageId)} and primaryobjecttypecode eq ${stringLiteral(table)}`;
        pending = client
          .list(
            `${ENTITY_SETS.messageFilters}${queryString({ select: ['sdkmessagefilterid', 'iscustomprocessingstepallowed'], filter })}`,
            filterRow,
          )
          .then((rows) => {
            const [row] = rows;
            if (!row)
              throw new LookupError(`Dataverse has no "${message}" message for the table "${table}": check the table's logical name`);
            if (row.iscustomprocessingstepallowed === false)
              throw new LookupError(`Dataverse does not allow steps for "${message}" on "${table}"`);
            return row.sdkmessagefilterid;
          });
        filters.set(key, pending);
      }
      return { messageId: resolvedMessageId, filterId: await pending };
    },
  };
}
