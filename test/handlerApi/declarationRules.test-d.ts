/**
 * What the registry refuses as the app loads, refused by the compiler too (src/handlerApi/
 * declarations.ts `DeclarationRules`): `npm run typecheck` fails when a `@ts-expect-error` line
 * below starts compiling, or when an allowed declaration stops compiling. The handlers are never
 * run.
 */
import { allow, decide, on } from '../../src/handlerApi';

const nothing = () => undefined;

// Asynchronous steps run only in PostOperation.
on({ name: 'ok-async', entity: 'test_widget', message: 'Update', stage: 'PostOperation', mode: 'Asynchronous' }, nothing);
on({ name: 'ok-async-default-stage', entity: 'test_widget', message: 'Update', mode: 'Asynchronous' }, nothing);
on({ name: 'ok-sync-early', entity: 'test_widget', message: 'Update', stage: 'PreOperation', mode: 'Synchronous' }, nothing);
// @ts-expect-error an asynchronous step in PreValidation
on({ name: 'async-prevalidation', entity: 'test_widget', message: 'Update', stage: 'PreValidation', mode: 'Asynchronous' }, nothing);
// @ts-expect-error an asynchronous step in PreOperation
on({ name: 'async-preoperation', entity: 'test_widget', message: 'Update', stage: 'PreOperation', mode: 'Asynchronous' }, nothing);

// decide(…) only on a synchronous step, with its stage.
decide({ name: 'ok-decide', entity: 'test_widget', message: 'Create', stage: 'PreValidation' }, () => allow());
decide({ name: 'ok-decide-sync', entity: 'test_widget', message: 'Create', stage: 'PostOperation', mode: 'Synchronous' }, () => allow());
// @ts-expect-error decide on an asynchronous step: nothing it answers can stop the operation
decide({ name: 'decide-async', entity: 'test_widget', message: 'Create', stage: 'PostOperation', mode: 'Asynchronous' }, () => allow());
// @ts-expect-error decide without its stage
decide({ name: 'decide-no-stage', entity: 'test_widget', message: 'Create' }, () => allow());
// @ts-expect-error decide returns a decision
decide({ name: 'decide-void', entity: 'test_widget', message: 'Create', stage: 'PreValidation' }, () => undefined);

// Images the message or the stage cannot have.
on({ name: 'ok-pre-update', entity: 'test_widget', message: 'Update', images: { pre: { type: 'PreImage' } } }, nothing);
on(
  { name: 'ok-post-create', entity: 'test_widget', message: 'Create', stage: 'PostOperation', images: { post: { type: 'PostImage' } } },
  nothing,
);
on({ name: 'ok-pre-delete', entity: 'test_widget', message: 'Delete', images: { pre: { type: 'PreImage' } } }, nothing);
// @ts-expect-error a Create has no pre-image
on({ name: 'pre-create', entity: 'test_widget', message: 'Create', images: { pre: { type: 'PreImage' } } }, nothing);
// @ts-expect-error nor "Both", which includes one
on({ name: 'both-create', entity: 'test_widget', message: ['Create', 'Update'], images: { both: { type: 'Both' } } }, nothing);
// @ts-expect-error a Delete has no post-image
on({ name: 'post-delete', entity: 'test_widget', message: 'Delete', images: { post: { type: 'PostImage' } } }, nothing);
on(
  // @ts-expect-error a post-image needs PostOperation
  { name: 'post-early', entity: 'test_widget', message: 'Update', stage: 'PreOperation', images: { post: { type: 'PostImage' } } },
  nothing,
);
decide(
  // @ts-expect-error the same for an inline handler
  { name: 'decide-post-early', entity: 'test_widget', message: 'Update', stage: 'PreValidation', images: { post: { type: 'PostImage' } } },
  () => allow(),
);
// @ts-expect-error a bulk message's images are not in the webhook's payload
on({ name: 'bulk-images', entity: 'test_widget', message: 'UpdateMultiple', images: { pre: { type: 'PreImage' } } }, nothing);

// A message and its bulk twin would run the handler twice per record.
on({ name: 'ok-bulk', entity: 'test_widget', message: 'CreateMultiple', perRecord: true }, nothing);
// @ts-expect-error Create with CreateMultiple
on({ name: 'create-twice', entity: 'test_widget', message: ['Create', 'CreateMultiple'] }, nothing);

// A message name that is not a literal (read from elsewhere) is left to the registry.
const message: string = 'Create';
on({ name: 'ok-unknown-message', entity: 'test_widget', message, images: { pre: { type: 'PreImage' } } }, nothing);

// Reconciliation: Create, Update and Delete of a named table, after the commit, without images or filtering attributes.
on({ name: 'ok-reconcile', entity: 'test_widget', message: ['Create', 'Update', 'Delete'], reconcile: true }, nothing);
on(
  { name: 'ok-reconcile-columns', entity: 'test_widget', message: 'Update', stage: 'PostOperation', reconcile: { columns: ['name'] } },
  nothing,
);
// @ts-expect-error a reconciled call has no images
on({ name: 'reconcile-images', entity: 'test_widget', message: 'Update', reconcile: true, images: { pre: { type: 'PreImage' } } }, nothing);
// @ts-expect-error change tracking does not say which columns an update set
on({ name: 'reconcile-filtered', entity: 'test_widget', message: 'Update', reconcile: true, filteringAttributes: ['name'] }, nothing);
// @ts-expect-error change tracking is asked of one named table
on({ name: 'reconcile-any-table', entity: '*', message: 'Update', reconcile: true }, nothing);
// @ts-expect-error change tracking reports creates, updates and deletes only
on({ name: 'reconcile-assign', entity: 'test_widget', message: ['Update', 'Assign'], reconcile: true }, nothing);
// @ts-expect-error nor a message of any name
on({ name: 'reconcile-any-message', entity: 'test_widget', message: '*', reconcile: true }, nothing);
on(
  // @ts-expect-error reconciliation replays committed changes
  { name: 'reconcile-early', entity: 'test_widget', message: 'Update', stage: 'PreOperation', mode: 'Synchronous', reconcile: true },
  nothing,
);
// @ts-expect-error an inline handler's save already happened (or did not): it never reconciles
decide({ name: 'decide-reconcile', entity: 'test_widget', message: 'Update', stage: 'PreValidation', reconcile: true }, () => allow());
