import { isEntityReference } from '../dataverse';
import { on } from './registry';

/**
 * Example: one call per created account, whether it was created alone (Create) or in bulk
 * (CreateMultiple, with `perRecord`): each record gets its own effects-once entry, so a retry after
 * a failure on record 7 does not repeat records 1 to 6.
 */
export interface NewAccount {
  accountId: string;
  ownerId: string | null;
}

export const newAccountSink: { publish: (account: NewAccount) => Promise<void> } = {
  publish: async () => undefined,
};

for (const message of ['Create', 'CreateMultiple']) {
  on({ name: `account-created.${message}`, entity: 'account', message, stage: 'PostOperation', perRecord: true }, async (event, ctx) => {
    const record = ctx.record;
    // A Create's id is in OutputParameters.id when the Target was sent without one.
    const outputId = event.outputParameters['id'];
    const accountId = record && record.id !== '00000000-0000-0000-0000-000000000000' ? record.id : typeof outputId === 'string' ? outputId : event.primaryEntityId;
    const owner = record?.attributes['ownerid'];
    await newAccountSink.publish({ accountId, ownerId: isEntityReference(owner) ? owner.id : null });
    ctx.log.info('Account created', { accountId });
  });
}
