import { isEntityReference, on } from '../handlerApi';

/**
 * Example: one call per created account, whether it was created alone (Create) or in bulk
 * (CreateMultiple). It declares Create only: Dataverse raises the Create event for every record of
 * a CreateMultiple, so this one declaration sees each account once; declaring CreateMultiple too
 * would publish each account twice. `perRecord` gives each account its own effects-once entry and
 * makes `ctx.record` an Entity. When Dataverse truncated the event (an account above 256 KB), the
 * owner is read again from the Web API. It leaves its mode out: `register` registers the
 * asynchronous PostOperation step (the default for a handler that only reacts), and the handler
 * also takes the PostOperation Create of a synchronous step someone registered by hand, such as
 * the real capture samples/06-account-create-sync-postop-webhooksite-unicode.json.
 */
export interface NewAccount {
  accountId: string;
  ownerId: string | null;
}

export const newAccountSink: { publish: (account: NewAccount) => Promise<void> } = {
  publish: async () => undefined,
};

export const accountCreated = on(
  {
    name: 'account-created',
    entity: 'account',
    message: 'Create',
    stage: 'PostOperation',
    perRecord: true,
    rereadTruncated: ['_ownerid_value'],
  },
  async (_event, ctx) => {
    const accountId = ctx.record.id;
    const owner = ctx.record.attributes['ownerid'];
    const rereadOwner = ctx.truncated ? ctx.rereadRecord['_ownerid_value'] : undefined;
    const ownerId = isEntityReference(owner) ? owner.id : typeof rereadOwner === 'string' ? rereadOwner : null;
    await newAccountSink.publish({ accountId, ownerId });
    ctx.log.info('Account created', { accountId });
  },
);
