import { z } from 'zod';
import { type ColumnKind, columnKind, ROW_ANNOTATIONS } from '../dataverse/reconciledContext';
import type { DataverseClient } from './client';
import { ApiError } from './http';
import { identifier, queryString } from './odata';
import { tableDefinitionPath } from './tableMetadata';

/**
 * Dataverse change tracking through the Web API, as "Use change tracking to synchronize data with
 * external systems" documents it
 * (https://learn.microsoft.com/power-apps/developer/data-platform/use-change-tracking-synchronize-data-external-systems):
 *
 * - a table has change tracking when its definition's `ChangeTrackingEnabled` is true; it can be
 *   turned on (and never off again) when `CanChangeTrackingBeEnabled` allows it;
 * - `GET <entity set>?$select=…` with `Prefer: odata.track-changes` answers every row (a full sync)
 *   and, on its last page, an `@odata.deltaLink` holding a `$deltatoken`; the same query with that
 *   `$deltatoken` answers the rows created or updated since (their current state), then the rows
 *   deleted since, as `{"@odata.context": "…$deletedEntity", "id": …, "reason": "deleted"}` (also
 *   rows created and deleted in between), and a new delta link; `Preference-Applied:
 *   odata.track-changes` says the preference was honoured;
 * - `$select` is allowed; `$filter`, `$orderby`, `$expand` and `$top` are refused with change
 *   tracking, so the app filters rows itself;
 * - more rows than a page (`Prefer: odata.maxpagesize`, at most 5000) come in pages linked by
 *   `@odata.nextLink` ("Page results", …/webapi/query/page-results);
 * - a token older than the organization's `ExpireChangeTrackingInDays` (7 days by default) is
 *   refused ("If there are unprocessed changes older than the configured value, the system throws
 *   an exception"): ExpiredVersionStamp, 0x80044352, "Version stamp associated with the client has
 *   expired. Please perform a full sync." (the code as RetrieveEntityChanges users handle it, e.g.
 *   DFE-Digital/teaching-record-system, CrmEntityChangesService.cs). The Web API answers it as an
 *   error with that code; what it answers for a token it cannot read is not documented, so every
 *   4xx to a request that carries a token (but an authentication, privilege or throttling one) is
 *   taken as a refused token.
 */

/** Dataverse's limit on a page of rows ("Page results": `odata.maxpagesize` above 5000 is not honoured). */
export const MAX_PAGE_SIZE = 5000;
export const EXPIRED_VERSION_STAMP = '0x80044352';

export interface TrackedTable {
  logicalName: string;
  entitySetName: string;
  primaryIdAttribute: string;
  changeTrackingEnabled: boolean;
  /** Every column a change tracking query can return, by logical name, with how its value is written. */
  columns: ReadonlyMap<string, ColumnKind>;
}

const definition = z.object({
  LogicalName: z.string(),
  EntitySetName: z.string(),
  PrimaryIdAttribute: z.string(),
  ChangeTrackingEnabled: z.boolean().nullish(),
  Attributes: z.array(
    z.object({
      LogicalName: z.string(),
      AttributeType: z.string(),
      AttributeTypeName: z.object({ Value: z.string() }).nullish(),
      AttributeOf: z.string().nullish(),
      IsValidForRead: z.boolean().nullish(),
    }),
  ),
});

/** A table's definition as change tracking needs it: one request ("Query table definitions using the Web API"). */
export async function readTrackedTable(client: DataverseClient, logicalName: string): Promise<TrackedTable> {
  const read = await client.get(
    `${tableDefinitionPath(logicalName)}${queryString({
      select: ['LogicalName', 'EntitySetName', 'PrimaryIdAttribute', 'ChangeTrackingEnabled'],
      expand: 'Attributes($select=LogicalName,AttributeType,AttributeTypeName,AttributeOf,IsValidForRead)',
    })}`,
    definition,
  );
  const columns = new Map<string, ColumnKind>();
  for (const attribute of read.Attributes) {
    // A column another one belongs to (a lookup's name, a choice's label) is not a column of its own here.
    if (attribute.AttributeOf || attribute.IsValidForRead === false) continue;
    const kind = columnKind(attribute.AttributeType, attribute.AttributeTypeName?.Value ?? null);
    if (kind) columns.set(attribute.LogicalName, kind);
  }
  return {
    logicalName: read.LogicalName,
    entitySetName: read.EntitySetName,
    primaryIdAttribute: read.PrimaryIdAttribute,
    changeTrackingEnabled: read.ChangeTrackingEnabled === true,
    columns,
  };
}

/** Where a run starts: a full sync of these columns, or the changes since a token. */
export type ChangeRequest = { kind: 'initial'; select: readonly string[] } | { kind: 'delta'; select: readonly string[]; token: string };
/** Where a query's pages start: its first request, or a `nextLink` a run stopped at. */
export type PageRequest = ChangeRequest | { kind: 'next'; link: string };

export interface ChangePage {
  /** The page exactly as Dataverse answered it. */
  text: string;
  /** Rows new or changed (their current state), then deleted rows (`$deletedEntity`). */
  rows: unknown[];
  nextLink: string | null;
  /** On the last page: the link, and its `$deltatoken`, that asks for what changes next. */
  deltaLink: string | null;
  deltaToken: string | null;
  /** The answer's `Date` header (epoch ms), the service's clock; null when absent. */
  servedAt: number | null;
}

/** The token was refused (expired, or unreadable): the run must start over from the current state. */
export class ChangeTokenRefusedError extends Error {
  override readonly name = 'ChangeTokenRefusedError';
  constructor(
    readonly status: number,
    readonly code: string | null,
    readonly expired: boolean,
    serviceMessage: string | null,
    /** The refused request was a page link (`@odata.nextLink`), not the token itself. */
    readonly pageLink: boolean,
  ) {
    super(
      `Dataverse refused the change tracking ${pageLink ? 'page link' : 'token'} (HTTP ${status}${code ? ` ${code}` : ''}${serviceMessage ? `: ${serviceMessage}` : ''})`,
    );
  }
}

/** The table answered without a delta link: change tracking is off for it. */
export class ChangeTrackingOffError extends Error {
  override readonly name = 'ChangeTrackingOffError';
}

const page = z.object({
  value: z.array(z.unknown()),
  '@odata.nextLink': z.string().optional(),
  '@odata.deltaLink': z.string().optional(),
});

function firstPath(table: TrackedTable, request: ChangeRequest): string {
  const select = queryString({ select: request.select });
  const path = `${identifier(table.entitySetName)}${select}`;
  return request.kind === 'delta' ? `${path}&$deltatoken=${encodeURIComponent(request.token)}` : path;
}

function preferHeader(maxPageSize: number): string {
  const annotations = ROW_ANNOTATIONS.join(',');
  return `odata.track-changes,odata.maxpagesize=${Math.min(maxPageSize, MAX_PAGE_SIZE)},odata.include-annotations="${annotations}"`;
}

/** `refusable`: the request carries a token or is a page link, so a 4xx is the token's or the link's, not the query's. */
async function fetchPage(
  client: DataverseClient,
  path: string,
  maxPageSize: number,
  refusable: 'token' | 'link' | null,
): Promise<ChangePage> {
  let response: Response;
  try {
    response = await client.send('GET', path, { headers: { Prefer: preferHeader(maxPageSize) } });
  } catch (error) {
    if (refusable && error instanceof ApiError && isTokenRefusal(error.status))
      throw new ChangeTokenRefusedError(
        error.status,
        error.code,
        error.code === EXPIRED_VERSION_STAMP,
        error.serviceMessage,
        refusable === 'link',
      );
    throw error;
  }
  const text = await response.text();
  let parsed: z.infer<typeof page>;
  try {
    parsed = page.parse(JSON.parse(text));
  } catch {
    throw new ApiError(`GET ${path.split('?')[0]}`, response.status, 'UnexpectedResponse', 'a change tracking page is not a collection');
  }
  const deltaLink = parsed['@odata.deltaLink'] ?? null;
  const date = Date.parse(response.headers.get('date') ?? '');
  return {
    text,
    rows: parsed.value,
    nextLink: parsed['@odata.nextLink'] ?? null,
    deltaLink,
    deltaToken: deltaLink ? new URL(deltaLink).searchParams.get('$deltatoken') : null,
    servedAt: Number.isNaN(date) ? null : date,
  };
}

/** Not the token's fault: the caller's sign-in, privileges or pace. */
function isTokenRefusal(status: number): boolean {
  return status >= 400 && status < 500 && ![401, 403, 404, 429].includes(status);
}

/**
 * The pages of one change tracking query, from its first request (or a `nextLink` a run stopped
 * at) to the page with the delta link. The next page is asked for while the caller handles this
 * one: Dataverse takes longer to serve a page than storage takes to keep it.
 */
export async function* changePages(
  client: DataverseClient,
  table: TrackedTable,
  start: PageRequest,
  options: { maxPageSize?: number } = {},
): AsyncGenerator<ChangePage> {
  const maxPageSize = options.maxPageSize ?? MAX_PAGE_SIZE;
  const path = start.kind === 'next' ? start.link : firstPath(table, start);
  const first = start.kind === 'delta' ? 'token' : start.kind === 'next' ? 'link' : null;
  let pending: Promise<ChangePage> | null = fetchPage(client, path, maxPageSize, first);
  while (pending) {
    const current: ChangePage = await pending;
    pending = current.nextLink ? fetchPage(client, current.nextLink, maxPageSize, 'link') : null;
    // Asked for ahead: a failure is the caller's when it gets there, never an unhandled rejection.
    pending?.catch(() => undefined);
    if (!current.nextLink && !current.deltaLink)
      throw new ChangeTrackingOffError(`${table.logicalName} answered without a delta link: change tracking is off for it`);
    yield current;
  }
}

/** A row of a change tracking page: a new or changed row, or the id of a deleted one. */
export type ChangedRow = { kind: 'changed'; id: string; row: Record<string, unknown> } | { kind: 'deleted'; id: string };

const DELETED = /\$deletedEntity$/;

/** A `$deletedEntity` row: a row of a page that says a row was deleted. */
export function isDeletedRow(raw: unknown): boolean {
  if (typeof raw !== 'object' || raw === null) return false;
  const context = (raw as Record<string, unknown>)['@odata.context'];
  return typeof context === 'string' && DELETED.test(context);
}

/** Reads one row of a page; null for something that is neither (left out, never guessed at). */
export function changedRow(table: Pick<TrackedTable, 'primaryIdAttribute'>, raw: unknown): ChangedRow | null {
  if (typeof raw !== 'object' || raw === null) return null;
  const row = raw as Record<string, unknown>;
  if (isDeletedRow(row)) return typeof row.id === 'string' ? { kind: 'deleted', id: row.id } : null;
  const id = row[table.primaryIdAttribute];
  return typeof id === 'string' ? { kind: 'changed', id, row } : null;
}

/** The row's version number from its `@odata.etag` (W/"915244"); null when absent. */
export function rowVersionOf(row: Readonly<Record<string, unknown>>): string | null {
  const etag = row['@odata.etag'];
  const match = typeof etag === 'string' ? /^W\/"(\d+)"$/.exec(etag) : null;
  return match?.[1] ?? null;
}

const whoAmI = z.object({ OrganizationId: z.string(), UserId: z.string(), BusinessUnitId: z.string() });

/** The organization and the identity the app signs in as (the WhoAmI function). */
export async function whoAmIOf(client: DataverseClient): Promise<{ organizationId: string; userId: string }> {
  const answer = await client.get('WhoAmI', whoAmI);
  return { organizationId: answer.OrganizationId, userId: answer.UserId };
}

const fullDefinition = z.record(z.string(), z.unknown());

/**
 * Turns change tracking on for a table, as "Create and update table definitions using the Web
 * API" says a definition is changed: PUT of the whole definition (PATCH is not supported; a PUT
 * replaces it, so it is read first and sent back with `ChangeTrackingEnabled` true, labels merged
 * with `MSCRM.MergeLabels: true`), then PublishXml for the table. Once on, it cannot be turned off.
 * Returns false when it was on already.
 */
export async function enableChangeTracking(client: DataverseClient, logicalName: string): Promise<boolean> {
  const current = await client.get(tableDefinitionPath(logicalName), fullDefinition);
  if (current.ChangeTrackingEnabled === true) return false;
  const managed = current.CanChangeTrackingBeEnabled as { Value?: unknown } | undefined;
  if (managed && managed.Value === false)
    throw new Error(`Dataverse does not allow change tracking on ${logicalName} (CanChangeTrackingBeEnabled is false)`);
  const metadataId = current.MetadataId;
  if (typeof metadataId !== 'string') throw new Error(`the definition of ${logicalName} has no MetadataId`);
  const body = Object.fromEntries(Object.entries(current).filter(([name]) => !name.startsWith('@odata.')));
  const put = await client.send('PUT', `EntityDefinitions(${metadataId})`, {
    headers: { 'MSCRM.MergeLabels': 'true' },
    body: { ...body, ChangeTrackingEnabled: true },
  });
  await put.body?.cancel();
  const published = await client.send('POST', 'PublishXml', {
    body: { ParameterXml: `<importexportxml><entities><entity>${identifier(logicalName)}</entity></entities></importexportxml>` },
  });
  await published.body?.cancel();
  return true;
}

/** Whether each table has change tracking on (one definition read each). */
export async function changeTrackingOf(client: DataverseClient, tables: readonly string[]): Promise<Map<string, boolean>> {
  const states = await Promise.all(
    tables.map(async (table) => {
      const read = await client.get(
        `${tableDefinitionPath(table)}${queryString({ select: ['ChangeTrackingEnabled'] })}`,
        z.object({ ChangeTrackingEnabled: z.boolean().nullish() }),
      );
      return [table, read.ChangeTrackingEnabled === true] as const;
    }),
  );
  return new Map(states);
}
