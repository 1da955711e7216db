import { randomUUID } from 'node:crypto';
import type { ColumnFacts, TableFacts } from './tableMetadata';

/**
 * Change tracking for the Dataverse stand-in (fakeDataverse.ts), following "Use change tracking to
 * synchronize data with external systems"
 * (https://learn.microsoft.com/power-apps/developer/data-platform/use-change-tracking-synchronize-data-external-systems)
 * and "Page results" (…/webapi/query/page-results):
 *
 * - `GET <entity set>?$select=…` with `Prefer: odata.track-changes` answers every row and, on the
 *   last page, `@odata.deltaLink` = the same query with `$deltatoken=<version>!<MM/dd/yyyy HH:mm:ss>`
 *   (the shape of the documented token `919042!08/22/2017 08:10:44`), and `Preference-Applied:
 *   odata.track-changes`. With the token it answers the rows created or updated since, in their
 *   current state and in version order, then the rows deleted since as
 *   `{"@odata.context": "<root>$metadata#<set>/$deletedEntity", "id", "reason": "deleted"}`, a row
 *   created and deleted in between included ("they'll get the deleted item even if they didn't
 *   have the item to begin with");
 * - `$filter`, `$orderby`, `$expand` and `$top` are refused with the documented message
 *   (`The "$filter" query parameter isn't supported when Change Tracking is enabled.`); `$select`
 *   must name readable columns, a lookup as `_<column>_value`
 *   (…/webapi/query/select-columns#lookup-property-values);
 * - `odata.maxpagesize` (at most 5000) pages the answer with `@odata.nextLink`; the rows of one
 *   query are those changed up to the version of its first page;
 * - each row carries `@odata.etag` W/"<versionnumber>", `modifiedon` and `createdon` to the second
 *   (Dataverse keeps date and time to the second), and, when `odata.include-annotations` asks,
 *   `Microsoft.Dynamics.CRM.lookuplogicalname` of each lookup and the
 *   `OData.Community.Display.V1.FormattedValue` of choices, yes/no columns and lookups (Dataverse
 *   formats more types; the stand-in formats these);
 * - a token older than `ExpireChangeTrackingInDays` (7 by default) is refused with
 *   ExpiredVersionStamp 0x80044352 "Version stamp associated with the client has expired. Please
 *   perform a full sync."; a token it cannot read is refused with a 400 too (its code is not
 *   documented);
 * - a table without change tracking ignores the preference (no delta link, no `Preference-Applied`),
 *   as an OData service does with a preference it does not support, and refuses a `$deltatoken`.
 *
 * Values are kept as the Web API writes them (`_x_value` for a lookup, with its table), so a test
 * writes rows as a Dataverse client would read them.
 */

export type WebApiRow = Record<string, unknown>;

interface StoredRow {
  values: WebApiRow;
  version: number;
}

interface TrackedTableData {
  facts: TableFacts;
  enabled: boolean;
  rows: Map<string, StoredRow>;
  /** Deleted ids, by the version of their deletion. */
  deleted: Map<string, number>;
}

export class ChangeTrackingError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly violation = false,
  ) {
    super(message);
  }
}

export interface ChangeTrackingAnswer {
  body: unknown;
  headers: Record<string, string>;
}

const READ_ONLY_SYSTEM = ['createdon', 'modifiedon', 'versionnumber', 'createdby', 'modifiedby'];
const FORMATTED = '@OData.Community.Display.V1.FormattedValue';
const LOOKUP_TABLE = '@Microsoft.Dynamics.CRM.lookuplogicalname';
const APP_USER = '2f7d6a4b-0c1e-4f6a-9b8d-7e5c4a3b2d1f';

function isLookup(column: ColumnFacts): boolean {
  return ['Lookup', 'Customer', 'Owner'].includes(column.attributeType);
}

/** The token's time, as the documented example writes it: MM/dd/yyyy HH:mm:ss (UTC). */
function tokenTime(ms: number): string {
  const d = new Date(ms);
  const two = (n: number) => String(n).padStart(2, '0');
  return `${two(d.getUTCMonth() + 1)}/${two(d.getUTCDate())}/${d.getUTCFullYear()} ${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())}`;
}

function parseToken(token: string): { version: number; time: number } | null {
  const match = /^(\d+)!(\d\d)\/(\d\d)\/(\d{4}) (\d\d):(\d\d):(\d\d)$/.exec(token);
  if (!match) return null;
  const [, version, month, day, year, hours, minutes, seconds] = match.map(Number) as number[];
  return { version: version!, time: Date.UTC(year!, month! - 1, day!, hours!, minutes!, seconds!) };
}

/** Seconds precision, as Dataverse stores date and time columns. */
function secondsIso(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

export class FakeChangeTracking {
  private readonly tables = new Map<string, TrackedTableData>();
  private version = 1_000;
  /** The stand-in's clock (epoch ms): what `modifiedon`, tokens and their expiry are counted on. */
  clock: () => number = Date.now;
  /** Organization.ExpireChangeTrackingInDays. */
  expireChangeTrackingInDays = 7;
  readonly organizationId = randomUUID();
  readonly userId = APP_USER;

  constructor(private readonly facts: (logicalName: string) => TableFacts | undefined) {}

  /** Serves the table's rows from its entity set, with change tracking on (or off, to turn on by `register`). */
  table(logicalName: string, options: { enabled?: boolean } = {}): void {
    const facts = this.facts(logicalName);
    if (!facts) throw new Error(`the stand-in has no definition of ${logicalName}`);
    this.tables.set(logicalName, { facts, enabled: options.enabled ?? true, rows: new Map(), deleted: new Map() });
  }

  isTracked(logicalName: string): boolean | null {
    const table = this.tables.get(logicalName);
    return table ? table.enabled : null;
  }

  enable(logicalName: string): void {
    const table = this.tables.get(logicalName);
    if (table) table.enabled = true;
  }

  /** The table whose entity set this is, if the stand-in serves its rows. */
  servesSet(entitySet: string): boolean {
    return [...this.tables.values()].some((table) => table.facts.entitySetName === entitySet);
  }

  private data(logicalName: string): TrackedTableData {
    const table = this.tables.get(logicalName);
    if (!table) throw new Error(`the stand-in does not serve rows of ${logicalName}: call table() first`);
    return table;
  }

  /** Creates a row (values as the Web API writes them); returns its id. */
  create(logicalName: string, values: WebApiRow = {}, by: string = APP_USER): string {
    const table = this.data(logicalName);
    const key = table.facts.primaryIdAttribute;
    const id = typeof values[key] === 'string' ? String(values[key]) : randomUUID();
    const now = secondsIso(this.clock());
    const version = ++this.version;
    table.deleted.delete(id);
    table.rows.set(id, {
      version,
      values: {
        ...values,
        [key]: id,
        createdon: now,
        modifiedon: now,
        versionnumber: version,
        _createdby_value: by,
        [`_createdby_value${LOOKUP_TABLE}`]: 'systemuser',
        _modifiedby_value: by,
        [`_modifiedby_value${LOOKUP_TABLE}`]: 'systemuser',
      },
    });
    return id;
  }

  update(logicalName: string, id: string, values: WebApiRow, by: string = APP_USER): void {
    const table = this.data(logicalName);
    const row = table.rows.get(id);
    if (!row) throw new Error(`no ${logicalName} ${id}`);
    for (const column of READ_ONLY_SYSTEM) if (column in values) throw new Error(`${column} is set by Dataverse`);
    row.version = ++this.version;
    Object.assign(row.values, values, {
      modifiedon: secondsIso(this.clock()),
      versionnumber: row.version,
      _modifiedby_value: by,
    });
  }

  delete(logicalName: string, id: string): void {
    const table = this.data(logicalName);
    if (!table.rows.delete(id)) throw new Error(`no ${logicalName} ${id}`);
    table.deleted.set(id, ++this.version);
  }

  row(logicalName: string, id: string): WebApiRow | undefined {
    return this.data(logicalName).rows.get(id)?.values;
  }

  ids(logicalName: string): string[] {
    return [...this.data(logicalName).rows.keys()];
  }

  /** GET <entity set>: the rows, with change tracking as documented (see above). */
  answer(entitySet: string, query: URLSearchParams, prefer: string, serviceRoot: string): ChangeTrackingAnswer {
    const table = [...this.tables.values()].find((candidate) => candidate.facts.entitySetName === entitySet)!;
    const preferences = parsePrefer(prefer);
    const tracking = table.enabled && preferences.has('odata.track-changes');
    const continued = query.get('$skiptoken');
    const token = query.get('$deltatoken');
    for (const name of query.keys()) {
      if (['$filter', '$orderby', '$expand', '$top'].includes(name) && tracking)
        throw new ChangeTrackingError(
          400,
          '0x80060888',
          `The "${name}" query parameter isn't supported when Change Tracking is enabled.`,
          true,
        );
      if (!['$select', '$deltatoken', '$skiptoken'].includes(name))
        throw new ChangeTrackingError(400, '0x80060888', `The stand-in does not support ${name} here`, true);
    }
    if (token !== null && !table.enabled)
      throw new ChangeTrackingError(400, '0x80060888', `Change tracking is not enabled for ${table.facts.logicalName}`, true);
    const select = this.checkSelect(table.facts, query.get('$select'));
    const window = continued ? decodeSkipToken(continued) : this.window(token);
    const maxPageSize = Math.min(Number(preferences.get('odata.maxpagesize') ?? 5000), 5000);
    const changes = this.changesIn(table, window.from, window.to);
    const page = changes.slice(window.offset, window.offset + maxPageSize);
    const annotations = preferences.get('odata.include-annotations') ?? '';
    const value = page.map((change) =>
      change.kind === 'deleted'
        ? { '@odata.context': `${serviceRoot}$metadata#${entitySet}/$deletedEntity`, id: change.id, reason: 'deleted' }
        : this.project(table.facts, change.row, select, annotations),
    );
    const body: Record<string, unknown> = {
      '@odata.context': `${serviceRoot}$metadata#${entitySet}(${select.join(',')})${token || continued ? '/$delta' : ''}`,
      value,
    };
    const base = `${serviceRoot}${entitySet}?$select=${select.join(',')}`;
    if (window.offset + maxPageSize < changes.length) {
      body['@odata.nextLink'] =
        `${base}&$skiptoken=${encodeURIComponent(encodeSkipToken({ ...window, offset: window.offset + maxPageSize }))}`;
    } else if (tracking) {
      body['@odata.deltaLink'] = `${base}&$deltatoken=${encodeURIComponent(`${window.to}!${tokenTime(this.clock())}`)}`;
    }
    const applied = [
      tracking ? 'odata.track-changes' : null,
      preferences.has('odata.maxpagesize') ? `odata.maxpagesize=${maxPageSize}` : null,
    ];
    return {
      body,
      headers: {
        Date: new Date(this.clock()).toUTCString(),
        ...(applied.some(Boolean) ? { 'Preference-Applied': applied.filter(Boolean).join(',') } : {}),
      },
    };
  }

  /** The versions a query covers: from its token (exclusive; 0 for a full sync) to now. */
  private window(token: string | null): { from: number; to: number; offset: number } {
    if (token === null) return { from: 0, to: this.version, offset: 0 };
    const parsed = parseToken(token);
    if (!parsed) throw new ChangeTrackingError(400, '0x80040203', 'The delta token is not valid.');
    if (parsed.time < this.clock() - this.expireChangeTrackingInDays * 24 * 60 * 60 * 1000)
      throw new ChangeTrackingError(400, '0x80044352', 'Version stamp associated with the client has expired. Please perform a full sync.');
    return { from: parsed.version, to: this.version, offset: 0 };
  }

  private changesIn(table: TrackedTableData, from: number, to: number) {
    const changed = [...table.rows.entries()]
      .filter(([, row]) => row.version > from && row.version <= to)
      .sort(([, a], [, b]) => a.version - b.version)
      .map(([id, row]) => ({ kind: 'changed' as const, id, row: row.values }));
    // A full sync returns the rows there are; "Deleted objects are not returned".
    const deleted =
      from === 0
        ? []
        : [...table.deleted.entries()]
            .filter(([, version]) => version > from && version <= to)
            .sort(([, a], [, b]) => a - b)
            .map(([id]) => ({ kind: 'deleted' as const, id }));
    return [...changed, ...deleted];
  }

  private checkSelect(facts: TableFacts, select: string | null): string[] {
    const readable = new Map<string, ColumnFacts>();
    for (const column of facts.columns) {
      if (!column.isValidForRead || column.attributeOf) continue;
      readable.set(isLookup(column) ? `_${column.logicalName}_value` : column.logicalName, column);
    }
    const names = select === null ? [...readable.keys()] : select.split(',');
    for (const name of names)
      if (!readable.has(name))
        throw new ChangeTrackingError(
          400,
          '0x80060888',
          `Could not find a property named '${name}' on type 'Microsoft.Dynamics.CRM.${facts.logicalName}'.`,
          true,
        );
    return names;
  }

  private project(facts: TableFacts, values: WebApiRow, select: string[], annotations: string): WebApiRow {
    const row: WebApiRow = { '@odata.etag': `W/"${String(values.versionnumber)}"` };
    const wants = (annotation: string) => annotations === '*' || annotations.split(',').includes(annotation);
    for (const name of [...select, facts.primaryIdAttribute]) {
      row[name] = values[name] ?? null;
      const column = facts.columns.find(
        (candidate) => (isLookup(candidate) ? `_${candidate.logicalName}_value` : candidate.logicalName) === name,
      );
      if (!column || row[name] === null) continue;
      if (isLookup(column) && wants('Microsoft.Dynamics.CRM.lookuplogicalname'))
        row[`${name}${LOOKUP_TABLE}`] = values[`${name}${LOOKUP_TABLE}`] ?? null;
      if (!wants('OData.Community.Display.V1.FormattedValue')) continue;
      if (isLookup(column) && typeof values[`${name}${FORMATTED}`] === 'string') row[`${name}${FORMATTED}`] = values[`${name}${FORMATTED}`];
      const option = column.options?.find(([value]) => value === values[name]);
      if (option) row[`${name}${FORMATTED}`] = option[1];
      if (column.attributeType === 'Boolean') row[`${name}${FORMATTED}`] = values[name] ? 'Yes' : 'No';
    }
    return row;
  }
}

/** `odata.track-changes,odata.maxpagesize=100,odata.include-annotations="a,b"` → name → value. */
function parsePrefer(header: string): Map<string, string | null> {
  const preferences = new Map<string, string | null>();
  for (const part of header.match(/[^,"]+(?:"[^"]*")?/g) ?? []) {
    const [name, value] = part.trim().split(/=(.*)/s) as [string, string | undefined];
    if (name) preferences.set(name.trim(), value === undefined ? null : value.replace(/^"|"$/g, ''));
  }
  return preferences;
}

function encodeSkipToken(window: { from: number; to: number; offset: number }): string {
  return Buffer.from(JSON.stringify(window)).toString('base64url');
}

function decodeSkipToken(token: string): { from: number; to: number; offset: number } {
  try {
    return JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as { from: number; to: number; offset: number };
  } catch {
    throw new ChangeTrackingError(400, '0x80060888', 'The $skiptoken is not valid.');
  }
}
