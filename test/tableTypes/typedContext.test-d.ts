/**
 * Compile-time tests of the generated table types: `npm run typecheck` compiles this folder with
 * generated/tables.generated.ts (test/tableTypes/tsconfig.json), so an `expectTypeOf` that no
 * longer holds, or a `@ts-expect-error` line that starts compiling, fails the suite. The handlers
 * are never run. typedContext.test.ts proves the same errors, each by its own message, and that
 * without the module the same declarations compile with the generic types.
 */
import { expectTypeOf } from 'vitest';
import type {
  DataverseValue,
  Entity,
  EntityCollection,
  EntityReference,
  Money,
  OptionSetValue,
  OptionSetValueCollection,
} from '../../src/dataverse';
import type { AttributeChange } from '../../src/dataverse/accessors';
import type { ColumnName, ColumnValue, TableName } from '../../src/dataverse/tables';
import { decide, on } from '../../src/handlerApi';
import { tables } from './generated/tables.generated';

// The generated module is picked up by declaration merging, without an import.
expectTypeOf<TableName>().toEqualTypeOf<'account' | 'contact' | 'shko_allfields'>();
expectTypeOf<'firstname'>().toExtend<ColumnName<'contact'>>();
// Companion columns are not columns: a lookup's name, a choice's label, a lookup's table.
expectTypeOf<'parentcustomeridname'>().not.toExtend<ColumnName<'contact'>>();
expectTypeOf<'gendercodename'>().not.toExtend<ColumnName<'contact'>>();
expectTypeOf<'owneridtype'>().not.toExtend<ColumnName<'contact'>>();
// Base-currency, phonetic, image and not-readable columns are.
expectTypeOf<'creditlimit_base' | 'yomifullname' | 'entityimage' | 'isprivate'>().toExtend<ColumnName<'contact'>>();

// An Update of contact: every column of the Target is optional, typed as the parser gives it.
on(
  {
    name: 'contact-update',
    entity: 'contact',
    message: 'Update',
    filteringAttributes: ['firstname', 'gendercode', 'parentcustomerid'],
    images: { pre: { type: 'PreImage', columns: ['firstname', 'lastname'] }, post: { type: 'PostImage' } },
  },
  (_event, ctx) => {
    const attributes = ctx.record!.attributes;
    expectTypeOf(attributes.firstname).toEqualTypeOf<string | null | undefined>();
    expectTypeOf(attributes.birthdate).toEqualTypeOf<Date | null | undefined>();
    expectTypeOf(attributes.parentcustomerid).toEqualTypeOf<EntityReference<'account' | 'contact'> | null | undefined>();
    expectTypeOf(attributes.ownerid).toEqualTypeOf<EntityReference<'systemuser' | 'team'> | null | undefined>();
    expectTypeOf(attributes.gendercode).toEqualTypeOf<OptionSetValue<1 | 2> | null | undefined>();
    expectTypeOf(attributes.statecode).toEqualTypeOf<OptionSetValue<0 | 1> | null | undefined>();
    expectTypeOf(attributes.creditlimit).toEqualTypeOf<Money | null | undefined>();
    expectTypeOf(attributes.numberofchildren).toEqualTypeOf<number | null | undefined>();
    expectTypeOf(attributes.donotemail).toEqualTypeOf<boolean | null | undefined>();
    expectTypeOf(attributes.entityimage).toEqualTypeOf<number[] | null | undefined>();
    expectTypeOf(ctx.record!.logicalName).toEqualTypeOf<'contact'>();
    // @ts-expect-error an Update carries only the changed columns: firstname may be missing
    const required: string | null = attributes.firstname;
    void required;
    // @ts-expect-error not a column of contact
    void attributes.firstnme;
    // @ts-expect-error a choice admits only its options
    void (attributes.gendercode?.value === 3);
    // The labels are a constant of the module.
    expectTypeOf(tables.contact.columns.gendercode.options[1]).toEqualTypeOf<'Male'>();

    // An image has exactly its declared columns; one declared without columns has them all.
    const pre = ctx.preImage('pre');
    expectTypeOf(pre!.attributes).toEqualTypeOf<{ firstname?: string | null; lastname?: string | null }>();
    // @ts-expect-error the image "pre" does not hold emailaddress1
    void pre?.attributes.emailaddress1;
    expectTypeOf(ctx.postImage('post')!.attributes.emailaddress1).toEqualTypeOf<string | null | undefined>();

    // Changes are typed by column: comparing the name narrows the values.
    for (const change of ctx.changes('pre')) {
      if (change.attribute === 'gendercode') expectTypeOf(change.to).toEqualTypeOf<OptionSetValue<1 | 2> | null>();
      if (change.attribute === 'firstname') expectTypeOf(change.from).toEqualTypeOf<string | null | undefined>();
    }
    // …and still are AttributeChanges, for code written before the types.
    expectTypeOf(ctx.changes('pre')).toExtend<AttributeChange[]>();
    // A typed record is still an Entity.
    expectTypeOf(ctx.record!).toExtend<Entity>();

    expectTypeOf(ctx.attribute('gendercode')).toEqualTypeOf<OptionSetValue<1 | 2> | null | undefined>();
    // @ts-expect-error not a column of contact
    ctx.attribute('gender');
  },
);

// A misspelt column in a declaration does not compile, as a filtering attribute or in an image.
// @ts-expect-error firstnme is not a column of contact
on({ name: 'typo-filter', entity: 'contact', message: 'Update', filteringAttributes: ['firstnme'] }, () => undefined);
on(
  // @ts-expect-error parentcustomeridname is the lookup's name, never in a Target: filter on parentcustomerid
  { name: 'companion-filter', entity: 'contact', message: 'Update', filteringAttributes: ['parentcustomeridname'] },
  () => undefined,
);
on(
  // @ts-expect-error naem is not a column of account
  { name: 'typo-image', entity: 'account', message: 'Update', images: { pre: { type: 'PreImage', columns: ['naem'] } } },
  () => undefined,
);
on(
  { name: 'reconciled-columns', entity: 'account', message: 'Update', reconcile: { columns: ['name', 'accountnumber'] } },
  () => undefined,
);
on(
  // @ts-expect-error naem is not a column of account: the columns a reconciled Target holds are the table's
  { name: 'typo-reconcile', entity: 'account', message: 'Update', reconcile: { columns: ['naem'] } },
  () => undefined,
);

// Create, per record: the record is an Entity of the table; Money, base currency, multi-select choices.
on({ name: 'all-fields', entity: 'shko_allfields', message: 'Create', perRecord: true }, (_event, ctx) => {
  expectTypeOf(ctx.record.attributes.shko_currency).toEqualTypeOf<Money | null | undefined>();
  expectTypeOf(ctx.record.attributes.shko_currency_base).toEqualTypeOf<Money | null | undefined>();
  expectTypeOf(ctx.record.attributes.shko_choices).toEqualTypeOf<
    OptionSetValueCollection<342490000 | 342490001 | 342490002> | [] | null | undefined
  >();
  expectTypeOf(ctx.record.attributes.shko_lookup).toEqualTypeOf<EntityReference<'systemuser'> | null | undefined>();
});

// A table the module does not know, and `*`, keep the generic types; so does a declaration's table held in a string.
on({ name: 'other-table', entity: 'msdyn_agentstatus', message: 'Update', filteringAttributes: ['anything'] }, (_event, ctx) => {
  expectTypeOf(ctx.record).toEqualTypeOf<Entity | null>();
  expectTypeOf(ctx.changes()).toEqualTypeOf<AttributeChange[]>();
  expectTypeOf(ctx.attribute('anything')).toEqualTypeOf<DataverseValue | undefined>();
});
const someTable: string = 'contact';
on({ name: 'string-table', entity: someTable, message: 'Update', filteringAttributes: ['anything'] }, (_event, ctx) => {
  expectTypeOf(ctx.record).toEqualTypeOf<Entity | null>();
});

// Each kind of column, as the parser produces it.
expectTypeOf<ColumnValue<{ type: 'PartyList' }>>().toEqualTypeOf<EntityCollection>();
expectTypeOf<ColumnValue<{ type: 'Uniqueidentifier' }>>().toEqualTypeOf<string>();
expectTypeOf<ColumnValue<{ type: 'Picklist'; options: { '-1': 'Unset'; 1: 'One' } }>>().toEqualTypeOf<OptionSetValue<-1 | 1>>();
expectTypeOf<ColumnValue<{ type: 'Other' }>>().toEqualTypeOf<DataverseValue>();

// An inline handler's declaration is checked against its table as a reacting handler's is.
decide(
  // @ts-expect-error not a column of account
  { name: 'decide-misspelt-filter', entity: 'account', message: 'Update', stage: 'PreValidation', filteringAttributes: ['creditlimt'] },
  () => ({ outcome: 'allow' }),
);
decide(
  { name: 'decide-known-filter', entity: 'account', message: 'Update', stage: 'PreValidation', filteringAttributes: ['creditlimit'] },
  (_event, ctx) => {
    expectTypeOf(ctx.attribute('creditlimit')).toEqualTypeOf<Money | null | undefined>();
    return { outcome: 'allow' };
  },
);
