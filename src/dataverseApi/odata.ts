import { isGuid } from '../dataverse/rawSchemas';

/** OData v4 literals and query strings, built so no value can change the shape of a query. */

export class ODataValueError extends Error {
  override readonly name = 'ODataValueError';
}

/** `'O''Brien'`: a string literal, single quotes doubled as OData requires. */
export function stringLiteral(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

/** A GUID, unquoted as OData writes them; anything else is refused rather than spliced into a URL. */
export function guidLiteral(id: string): string {
  if (!isGuid(id)) throw new ODataValueError(`Not a GUID: ${JSON.stringify(String(id).slice(0, 64))}`);
  return id.toLowerCase();
}

/** `accounts(00000000-…)`, the key segment of a row. */
export function rowPath(entitySet: string, id: string): string {
  return `${identifier(entitySet)}(${guidLiteral(id)})`;
}

/** The value of an `@odata.bind` property: a reference to an existing row. */
export function bindReference(entitySet: string, id: string): string {
  return `/${rowPath(entitySet, id)}`;
}

/** Logical names, entity set names and column names: lowercase letters, digits and underscores. */
export function identifier(name: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new ODataValueError(`Not a valid Dataverse name: ${JSON.stringify(name.slice(0, 64))}`);
  return name;
}

export interface QueryOptions {
  select?: readonly string[];
  filter?: string;
  expand?: string;
  orderby?: string;
  top?: number;
}

/** `?$select=a,b&$filter=…`, each value percent-encoded. */
export function queryString(options: QueryOptions): string {
  const parts: string[] = [];
  const add = (name: string, value: string) => parts.push(`${name}=${encodeURIComponent(value)}`);
  if (options.select) add('$select', options.select.map(identifier).join(','));
  if (options.filter) add('$filter', options.filter);
  if (options.expand) add('$expand', options.expand);
  if (options.orderby) add('$orderby', options.orderby);
  if (options.top !== undefined) add('$top', String(options.top));
  return parts.length === 0 ? '' : `?${parts.join('&')}`;
}

/** `https://org.crm.dynamics.com/api/data/v9.2/serviceendpoints(id)` → the id. */
export function idFromEntityIdHeader(header: string | null): string | null {
  const match = header?.match(/\(([0-9a-fA-F-]{36})\)\s*$/);
  return match?.[1] && isGuid(match[1]) ? match[1].toLowerCase() : null;
}
