import { allow, type DataverseValue, type Decision, decide, type Money, reject } from '../handlerApi';

/**
 * Example of an inline handler: an account's credit limit above a configured amount is refused as
 * the account is saved, before Dataverse writes anything. The declarations below are the whole
 * registration: `register` gives Dataverse synchronous PreValidation steps on account Create, and
 * on account Update filtered on creditlimit, so that other saves of an account never wait for this
 * app. PreValidation runs before the database transaction, which is where Microsoft recommends
 * cancelling an operation (a rejection in PreOperation or PostOperation rolls the transaction
 * back instead).
 *
 * The amount comes from the app setting ACCOUNT_CREDIT_LIMIT_MAX (default 1,000,000 in the
 * organization's base currency). A value that is not a positive amount makes the handler fail with
 * that reason, so the saves it guards fail (closed) and nothing else in the app is affected.
 */
export const DEFAULT_CREDIT_LIMIT_MAX = 1_000_000;

export function creditLimitMaximum(setting: string | undefined): number {
  if (setting === undefined || setting.trim() === '') return DEFAULT_CREDIT_LIMIT_MAX;
  const amount = Number(setting);
  if (!Number.isFinite(amount) || amount <= 0) throw new Error('ACCOUNT_CREDIT_LIMIT_MAX must be a positive amount, such as 250000');
  return amount;
}

/** Where the example reads its amount; tests replace it. */
export const creditLimitPolicy: { maximum: () => number } = { maximum: () => creditLimitMaximum(process.env['ACCOUNT_CREDIT_LIMIT_MAX']) };

/** A Money column's amount (Dataverse sends Money; a decimal is taken as it is); null when it is empty. */
function amountOf(value: DataverseValue | undefined): number | null {
  if (typeof value === 'number') return value;
  if (typeof value === 'object' && value !== null && '$type' in value && value.$type === 'Money') return (value as Money).value;
  return null;
}

/** The decision for a credit limit, from what the save writes (the Target). */
export function checkCreditLimit(creditLimit: DataverseValue | undefined, maximum = creditLimitPolicy.maximum()): Decision {
  const amount = amountOf(creditLimit);
  if (amount === null || amount <= maximum) return allow();
  return reject(
    `A credit limit above ${maximum.toLocaleString('en-US')} needs approval from Finance: ask them to raise it, or save a lower limit.`,
    {
      code: 'credit-limit-exceeded',
    },
  );
}

export const creditLimitOnCreate = decide(
  { name: 'credit-limit-on-create', entity: 'account', message: 'Create', stage: 'PreValidation' },
  // ctx.attribute reads the Target first: what this save writes.
  (_event, ctx) => checkCreditLimit(ctx.attribute('creditlimit')),
);

export const creditLimitOnUpdate = decide(
  { name: 'credit-limit-on-update', entity: 'account', message: 'Update', stage: 'PreValidation', filteringAttributes: ['creditlimit'] },
  (_event, ctx) => checkCreditLimit(ctx.attribute('creditlimit')),
);
