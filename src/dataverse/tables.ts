import type {
  BooleanManagedProperty,
  DataverseValue,
  Entity,
  EntityCollection,
  EntityReference,
  Money,
  OptionSetValue,
  OptionSetValueCollection,
} from './model';

/**
 * Typed tables: what `dataverse-webhooks types` writes (src/handlers/tables.generated.ts) and how a
 * handler's context is typed from it. The generated module holds one constant, `tables`, with what
 * the organization's metadata says of each column that can appear in a webhook's entities, and adds
 * it to `GeneratedTables` below by declaration merging. Every type here derives from that
 * constant; without the module `GeneratedTables` is empty and every table keeps the generic
 * `Entity`. The value of each kind of column is what the parser produces (normalizeValue.ts), which
 * `columnValueProblem` checks at run time against the same constant.
 */

/** Option value → label, in the language of the identity that generated the module. */
export type OptionLabels = Readonly<Record<number, string>>;

/**
 * One column, by the kind of value the webhook carries for it. `type` is the column's
 * AttributeType, or its AttributeTypeName for the kinds Dataverse reports as `Virtual`
 * (MultiSelectPicklist, Image, File). `label` is its display name; `schemaName` its SchemaName.
 */
export type ColumnSpec = { readonly schemaName?: string; readonly label?: string } & (
  | { readonly type: 'String' | 'Memo' | 'EntityName' | 'Uniqueidentifier' | 'File' }
  | { readonly type: 'Integer' | 'BigInt' | 'Decimal' | 'Double' }
  | { readonly type: 'Boolean' | 'DateTime' | 'Money' | 'Image' | 'PartyList' | 'ManagedProperty' }
  | { readonly type: 'Picklist' | 'State' | 'Status' | 'MultiSelectPicklist'; readonly options: OptionLabels }
  | { readonly type: 'Lookup' | 'Customer' | 'Owner'; readonly targets: readonly string[] }
  | { readonly type: 'Other' }
);

export type ColumnType = ColumnSpec['type'];

export interface TableSpec {
  readonly schemaName: string;
  readonly entitySetName: string;
  readonly primaryIdAttribute: string;
  readonly primaryNameAttribute: string | null;
  readonly columns: { readonly [logicalName: string]: ColumnSpec };
}

/** The generated module's `tables`: table logical name → its columns. */
export type TableCatalog = { readonly [logicalName: string]: TableSpec };

/**
 * Filled by the generated module (`declare module … { interface GeneratedTables { tables: typeof
 * tables } }`); empty until one exists, and then every table is generic.
 */
// biome-ignore lint/suspicious/noEmptyInterface: an interface, so that the generated module can merge into it
export interface GeneratedTables {}

type Catalog = GeneratedTables extends { tables: infer C extends TableCatalog } ? C : Record<never, never>;

/** The tables the generated module knows. `never` without one. */
export type TableName = keyof Catalog & string;

type ColumnsOf<E> = E extends TableName ? Catalog[E]['columns'] : never;

/** A column of a generated table; `never` for a table the module does not know. */
export type ColumnName<E> = keyof ColumnsOf<E> & string;

type OptionValue<Options> = keyof Options extends infer K
  ? K extends number
    ? K
    : K extends `${infer N extends number}`
      ? N
      : never
  : never;

/**
 * The value the parser produces for a column of this kind (src/dataverse/normalizeValue.ts), null
 * aside: text and GUIDs are strings, whole and decimal numbers are numbers, dates are Dates, choices
 * carry their own option values, lookups the tables they may point to. A multi-select choice with
 * no option is an empty array (Dataverse sends a bare array, which says nothing of its kind when
 * empty). Image data is an array of bytes (DataContract JSON writes Byte[] as an array of numbers).
 */
export type ColumnValue<C> = C extends { type: 'String' | 'Memo' | 'EntityName' | 'Uniqueidentifier' | 'File' }
  ? string
  : C extends { type: 'Integer' | 'BigInt' | 'Decimal' | 'Double' }
    ? number
    : C extends { type: 'Boolean' }
      ? boolean
      : C extends { type: 'DateTime' }
        ? Date
        : C extends { type: 'Money' }
          ? Money
          : C extends { type: 'Picklist' | 'State' | 'Status'; options: infer O }
            ? OptionSetValue<OptionValue<O>>
            : C extends { type: 'MultiSelectPicklist'; options: infer O }
              ? OptionSetValueCollection<OptionValue<O>> | []
              : C extends { type: 'Lookup' | 'Customer' | 'Owner'; targets: readonly (infer T extends string)[] }
                ? EntityReference<T>
                : C extends { type: 'Image' }
                  ? number[]
                  : C extends { type: 'PartyList' }
                    ? EntityCollection
                    : C extends { type: 'ManagedProperty' }
                      ? BooleanManagedProperty
                      : DataverseValue;

/** The value of one column of a generated table, or null (cleared, or never set). */
export type ValueOf<E, K extends string> = K extends keyof ColumnsOf<E> ? ColumnValue<ColumnsOf<E>[K]> | null : never;

/**
 * The columns an entity of the table may carry, each optional: a Target holds only what the
 * operation wrote (an Update only the changed columns), an image only the columns it was
 * registered with, and neither holds a column whose value is null in the row.
 */
export type TableAttributes<E, Columns extends string = ColumnName<E>> = {
  // Mapped over the generated columns (filtered, not rebuilt), so each keeps its doc comment.
  -readonly [K in keyof ColumnsOf<E> as K extends Columns ? K : never]?: K extends string ? ValueOf<E, K> : never;
};

/** An entity of a generated table, typed by its columns; the generic `Entity` otherwise. */
export type TableEntity<E, Columns extends string = ColumnName<E>> = [E] extends [TableName]
  ? Entity<E, TableAttributes<E, Columns>>
  : Entity;

/** One column an Update changed, typed by the column (compare `attribute` to narrow `from` and `to`). */
export type TableChange<E, Columns extends string = ColumnName<E>> = {
  [K in Columns]: { attribute: K; from: ValueOf<E, K> | undefined; to: ValueOf<E, K> };
}[Columns];

/** Is this a table the generated module knows? */
export type IsGeneratedTable<E> = [E] extends [never] ? false : [E] extends [TableName] ? true : false;

/** The generated module's file name, without extension, in src/handlers/: where `types` writes it and `register --plan` reads it. */
export const GENERATED_MODULE_NAME = 'tables.generated';

/**
 * Why a value is not what the column's type says, or null when it is. The run-time mirror of
 * `ColumnValue`; test/tableTypes ties the two together.
 */
export function columnValueProblem(column: ColumnSpec, value: DataverseValue | undefined): string | null {
  if (value === null || value === undefined) return null;
  const typed = (type: string) =>
    typeof value === 'object' && !Array.isArray(value) && !(value instanceof Date) && (value as { $type?: unknown }).$type === type;
  const expected = (what: string) => `a ${column.type} column holds ${what}`;
  switch (column.type) {
    case 'String':
    case 'Memo':
    case 'EntityName':
    case 'Uniqueidentifier':
    case 'File':
      return typeof value === 'string' ? null : expected('text');
    case 'Integer':
    case 'BigInt':
    case 'Decimal':
    case 'Double':
      return typeof value === 'number' ? null : expected('a number');
    case 'Boolean':
      return typeof value === 'boolean' ? null : expected('true or false');
    case 'DateTime':
      return value instanceof Date ? null : expected('a Date');
    case 'Money':
      return typed('Money') ? null : expected('a Money');
    case 'Picklist':
    case 'State':
    case 'Status': {
      if (!typed('OptionSetValue')) return expected('an OptionSetValue');
      const option = (value as OptionSetValue).value;
      return Object.hasOwn(column.options, option) ? null : `option ${option} is not one of ${Object.keys(column.options).join(', ')}`;
    }
    case 'MultiSelectPicklist': {
      if (Array.isArray(value) && value.length === 0) return null;
      if (!typed('OptionSetValueCollection')) return expected('an OptionSetValueCollection');
      const unknown = (value as OptionSetValueCollection).values.filter((option) => !Object.hasOwn(column.options, option));
      return unknown.length === 0 ? null : `options ${unknown.join(', ')} are not among ${Object.keys(column.options).join(', ')}`;
    }
    case 'Lookup':
    case 'Customer':
    case 'Owner': {
      if (!typed('EntityReference')) return expected('an EntityReference');
      const table = (value as EntityReference).logicalName;
      return column.targets.includes(table) ? null : `a reference to ${table}, which is not one of ${column.targets.join(', ')}`;
    }
    case 'Image':
      return Array.isArray(value) && value.every((byte) => typeof byte === 'number') ? null : expected('an array of bytes');
    case 'PartyList':
      return typed('EntityCollection') ? null : expected('an EntityCollection');
    case 'ManagedProperty':
      return typed('BooleanManagedProperty') ? null : expected('a BooleanManagedProperty');
    case 'Other':
      return null;
  }
}

/** Every attribute of an entity that its table's columns do not describe, one line each (names, never values). */
export function entityProblems(table: TableSpec, entity: Pick<Entity, 'attributes'>): string[] {
  const problems: string[] = [];
  for (const [name, value] of Object.entries(entity.attributes)) {
    const column = table.columns[name];
    if (!column) problems.push(`${name}: not a column of the table`);
    else {
      const problem = columnValueProblem(column, value);
      if (problem) problems.push(`${name}: ${problem}`);
    }
  }
  return problems;
}

/** What one handler declares that names columns: its filtering attributes and the columns of its images. */
export interface ColumnDeclaration {
  handler: string;
  entity: string;
  filteringAttributes: readonly string[] | null;
  images: ReadonlyArray<{ alias: string; columns: readonly string[] | null }>;
}

/**
 * The columns a declaration names that its table does not have, each as a sentence that says what
 * to change. `columnsOf` gives the table's columns, or null for a table it does not know (then
 * nothing is checked: the table itself is checked when the step is registered).
 */
export function declaredColumnProblems(declaration: ColumnDeclaration, columnsOf: (table: string) => ReadonlySet<string> | null): string[] {
  const columns = declaration.entity === '*' ? null : columnsOf(declaration.entity.toLowerCase());
  if (!columns) return [];
  const problems: string[] = [];
  const check = (where: string, column: string) => {
    if (!columns.has(column))
      problems.push(
        `handler ${declaration.handler}: ${where} "${column}" is not a column of ${declaration.entity}${suggestion(column, columns)}`,
      );
  };
  for (const column of declaration.filteringAttributes ?? []) check('filtering attribute', column);
  for (const image of declaration.images) for (const column of image.columns ?? []) check(`image "${image.alias}" column`, column);
  return problems;
}

/** ` (did you mean "firstname"?)` for a near miss, by edit distance. */
function suggestion(column: string, columns: ReadonlySet<string>): string {
  let best: string | null = null;
  let bestDistance = Math.max(2, Math.floor(column.length / 4)) + 1;
  for (const candidate of columns) {
    const distance = editDistance(column, candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best ? ` (did you mean "${best}"?)` : '';
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const current = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
      previous = current;
    }
  }
  return row[b.length]!;
}
