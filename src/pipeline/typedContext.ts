import type { AttributeChange } from '../dataverse/accessors';
import type { DataverseValue, Entity } from '../dataverse/model';
import type { ImageType } from '../dataverse/steps';
import type { ColumnName, IsGeneratedTable, TableChange, TableEntity, ValueOf } from '../dataverse/tables';

/**
 * How a handler's declaration picks up the generated table types (src/dataverse/tables.ts): when
 * its `entity` is a table the generated module knows, the record, images, changes and attributes
 * of its context are typed by that table's columns, and its filtering attributes and image columns
 * must be columns of it. For any other table (or none generated) each type is the generic one.
 */

type TableOf<O> = O extends { entity: infer E extends string } ? E : never;
type Typed<O> = IsGeneratedTable<TableOf<O>>;

/** `ctx.record`: the Target, or one record of Targets. */
export type RecordOf<O> = Typed<O> extends true ? TableEntity<TableOf<O>> : Entity;

/** The columns an image holds: those it declares, or every column of the table. */
type ImageColumns<O, Alias> = O extends { images: infer Images }
  ? Alias extends keyof Images
    ? Images[Alias] extends { columns: readonly (infer Column extends string)[] }
      ? Column
      : ColumnName<TableOf<O>>
    : never
  : never;

/** `ctx.preImage(alias)` / `ctx.postImage(alias)`: an image with exactly the declared columns. */
export type ImageOf<O, Alias> = Typed<O> extends true ? TableEntity<TableOf<O>, ImageColumns<O, Alias> & ColumnName<TableOf<O>>> : Entity;

/** `ctx.changes(…)`: each change typed by its column; compare `attribute` to narrow `from` and `to`. */
export type ChangeOf<O> = Typed<O> extends true ? TableChange<TableOf<O>> : AttributeChange;

/** `ctx.attribute(name)`: a column of the table, and its value. */
export type AttributeReader<O> =
  Typed<O> extends true
    ? <K extends ColumnName<TableOf<O>>>(name: K) => ValueOf<TableOf<O>, K> | undefined
    : (name: string) => DataverseValue | undefined;

/** Added to a declaration's type: its filtering attributes, image columns and reconciled columns are columns of its table. */
export type DeclaredColumns<O> =
  Typed<O> extends true
    ? {
        filteringAttributes?: readonly ColumnName<TableOf<O>>[];
        images?: { readonly [alias: string]: { readonly type: ImageType; readonly columns?: readonly ColumnName<TableOf<O>>[] } };
        reconcile?: true | { readonly columns: readonly ColumnName<TableOf<O>>[] };
      }
    : unknown;
