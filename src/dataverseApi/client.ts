import { z } from 'zod';
import { issueList, zodIssues } from '../dataverse/issues';
import { ApiError, createHttpClient, type HttpMethod, type HttpOptions, readJson } from './http';
import { identifier, idFromEntityIdHeader, rowPath } from './odata';

/** The Web API version every path is relative to. */
export const WEB_API_VERSION = 'v9.2';

const ODATA_HEADERS = { 'OData-MaxVersion': '4.0', 'OData-Version': '4.0' } as const;

export interface DataverseClient {
  /** `https://contoso.crm.dynamics.com` */
  readonly organizationUrl: string;
  /** `https://contoso.crm.dynamics.com/api/data/v9.2/` */
  readonly serviceRoot: string;
  /** GETs a path relative to the service root (`EntityDefinitions(LogicalName='account')?$select=…`). */
  get<T>(path: string, schema: z.ZodType<T>): Promise<T>;
  /** GETs a collection, following `@odata.nextLink` to the last page. */
  list<T>(path: string, rowSchema: z.ZodType<T>): Promise<T[]>;
  /** POSTs a new row and returns its id, read from the `OData-EntityId` header. */
  create(entitySet: string, body: Record<string, unknown>): Promise<string>;
  /** PATCHes an existing row; `If-Match: *` so a row deleted meanwhile is a 404, never re-created. */
  update(entitySet: string, id: string, body: Record<string, unknown>): Promise<void>;
  delete(entitySet: string, id: string): Promise<void>;
  /**
   * Sends any request relative to the service root (or an absolute link Dataverse returned, which
   * must be under the service root) and returns the successful response unread, with its headers:
   * for answers whose text or headers matter (change tracking pages, their `Preference-Applied`).
   */
  send(method: HttpMethod, path: string, options?: { headers?: Record<string, string>; body?: unknown }): Promise<Response>;
}

export class OrganizationUrlError extends Error {
  override readonly name = 'OrganizationUrlError';
}

/**
 * `https://contoso.crm.dynamics.com` from what a user types (a trailing slash or path is dropped).
 * Plain http is accepted for loopback only, where the tests' stand-in for Dataverse listens. With
 * `requireDomain`, a bare name ("contoso") is refused rather than sent a token as
 * `https://contoso`: organization hosts have a domain (`<org>.crm.dynamics.com`, `.crm4.`, …).
 */
export function parseOrganizationUrl(text: string, options: { requireDomain?: boolean } = {}): URL {
  const hint = 'give it as https://<org>.crm.dynamics.com (Power Apps: Settings > Session details > Instance url)';
  let url: URL;
  try {
    url = new URL(text.includes('://') ? text : `https://${text}`);
  } catch {
    throw new OrganizationUrlError(
      `The organization ${text.includes('@') ? '' : `${JSON.stringify(text.slice(0, 200))} `}is not a URL: ${hint}`,
    );
  }
  if (url.username || url.password) throw new OrganizationUrlError('The organization URL must not carry a user name or password');
  const loopback = ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname);
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback)) {
    throw new OrganizationUrlError(`The organization URL must be https: ${url.origin}`);
  }
  if (options.requireDomain && !loopback && !url.hostname.includes('.'))
    throw new OrganizationUrlError(`The organization "${url.hostname}" is not a host name: ${hint}`);
  return new URL(url.origin);
}

/** The token scope for an organization: `https://contoso.crm.dynamics.com/.default`. */
export function dataverseScope(organizationUrl: URL): string {
  return `${organizationUrl.origin}/.default`;
}

const collectionPage = z.object({ value: z.array(z.unknown()), '@odata.nextLink': z.string().optional() });

/** A request as errors name it: its method and its decoded path. */
function describe(method: HttpMethod, path: string): string {
  let readable = path;
  try {
    readable = decodeURIComponent(path);
  } catch {
    // keep the encoded form
  }
  return `${method} ${readable}`;
}

/** A request relative to the service root, with the organization's token and the OData headers. */
type Send = (method: HttpMethod, path: string, extra?: { headers?: Record<string, string>; body?: unknown }) => Promise<Response>;

export function createDataverseClient(organization: string | URL, options: HttpOptions): DataverseClient {
  const organizationUrl = typeof organization === 'string' ? parseOrganizationUrl(organization) : parseOrganizationUrl(organization.href);
  const serviceRoot = `${organizationUrl.origin}/api/data/${WEB_API_VERSION}/`;
  const scope = dataverseScope(organizationUrl);
  const http = createHttpClient(options);
  const send: Send = (method, path, extra = {}) =>
    http.send(
      { method, url: new URL(path, serviceRoot), scope, headers: { ...ODATA_HEADERS, ...extra.headers }, body: extra.body },
      describe(method, path),
    );
  /** The token goes only where the first request went: a link Dataverse returned must be under the service root. */
  const relativeLink = (method: HttpMethod, link: string, what: string) => {
    if (!/^https?:\/\//.test(link)) return link;
    if (!link.startsWith(serviceRoot))
      throw new ApiError(describe(method, link), 0, 'UnexpectedResponse', `${what} points outside the organization`);
    return link.slice(serviceRoot.length);
  };

  return {
    organizationUrl: organizationUrl.origin,
    serviceRoot,
    get: async (path, schema) => readJson(await send('GET', path), schema, describe('GET', path)),
    list: (path, rowSchema) => listRows(send, serviceRoot, path, rowSchema),
    async create(entitySet, body) {
      const path = identifier(entitySet);
      const response = await send('POST', path, { body });
      const id = idFromEntityIdHeader(response.headers.get('odata-entityid'));
      await response.body?.cancel();
      if (!id)
        throw new ApiError(describe('POST', path), response.status, 'UnexpectedResponse', 'no OData-EntityId header with the new row id');
      return id;
    },
    async update(entitySet, id, body) {
      const response = await send('PATCH', rowPath(entitySet, id), { body, headers: { 'If-Match': '*' } });
      await response.body?.cancel();
    },
    async delete(entitySet, id) {
      const response = await send('DELETE', rowPath(entitySet, id));
      await response.body?.cancel();
    },
    send: (method, path, extra = {}) => send(method, relativeLink(method, path, 'the link'), extra),
  };
}

/** A collection's rows, page after page (`@odata.nextLink`), each checked against its schema. */
async function listRows<T>(send: Send, serviceRoot: string, path: string, rowSchema: z.ZodType<T>): Promise<T[]> {
  const rows: T[] = [];
  let next: string | undefined = path;
  while (next !== undefined) {
    const page: z.infer<typeof collectionPage> = await readJson(await send('GET', next), collectionPage, describe('GET', next));
    for (const [index, row] of page.value.entries()) {
      const parsed = rowSchema.safeParse(row);
      if (!parsed.success) {
        const issue = issueList(zodIssues(parsed.error, { at: ['value', index], limit: 1 }));
        throw new ApiError(describe('GET', path), 200, 'UnexpectedResponse', `row ${index} does not have the expected shape (${issue})`);
      }
      rows.push(parsed.data);
    }
    const nextLink: string | undefined = page['@odata.nextLink'];
    // The token goes only where the first request went.
    if (nextLink !== undefined && !nextLink.startsWith(serviceRoot)) {
      throw new ApiError(describe('GET', path), 200, 'UnexpectedResponse', 'the next page link points outside the organization');
    }
    next = nextLink?.slice(serviceRoot.length);
  }
  return rows;
}
