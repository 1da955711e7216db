import { describe, expect, it } from 'vitest';
import { generatedEvent, runHandler } from '../handlerApi/testing';
import { checkCreditLimit, creditLimitMaximum, creditLimitOnCreate, creditLimitOnUpdate, DEFAULT_CREDIT_LIMIT_MAX } from './creditLimit';

const save = (message: 'Create' | 'Update', ...attributes: string[]) =>
  generatedEvent({ entity: 'account', message, stage: 'PreValidation', attributes });

describe('credit-limit', () => {
  it('refuses a credit limit above the maximum as the account is saved, and allows one at or below it, or none', async () => {
    expect(
      (await runHandler(creditLimitOnCreate, save('Create', 'name=Contoso', `creditlimit:money=${DEFAULT_CREDIT_LIMIT_MAX + 1}`))).decision,
    ).toEqual({
      outcome: 'reject',
      reason: 'A credit limit above 1,000,000 needs approval from Finance: ask them to raise it, or save a lower limit.',
      code: 'credit-limit-exceeded',
    });
    expect((await runHandler(creditLimitOnCreate, save('Create', `creditlimit:money=${DEFAULT_CREDIT_LIMIT_MAX}`))).decision).toEqual({
      outcome: 'allow',
    });
    expect((await runHandler(creditLimitOnCreate, save('Create', 'name=Contoso'))).decision).toEqual({ outcome: 'allow' });
    expect((await runHandler(creditLimitOnUpdate, save('Update', 'creditlimit:money=2500000'))).decision).toMatchObject({
      outcome: 'reject',
    });
  });

  it('decides only the saves its steps cover: an Update that does not write the credit limit never waits for it', async () => {
    expect((await runHandler(creditLimitOnUpdate, save('Update', 'name=Contoso'))).matched).toBe(false);
    expect(checkCreditLimit(null, 1_000_000)).toEqual({ outcome: 'allow' });
  });

  it('reads its amount from ACCOUNT_CREDIT_LIMIT_MAX: empty is the default, and a value that is not an amount fails the decision, closed', () => {
    expect(creditLimitMaximum(undefined)).toBe(DEFAULT_CREDIT_LIMIT_MAX);
    expect(creditLimitMaximum('  ')).toBe(DEFAULT_CREDIT_LIMIT_MAX);
    expect(creditLimitMaximum('250000')).toBe(250_000);
    expect(() => creditLimitMaximum('lots')).toThrow('ACCOUNT_CREDIT_LIMIT_MAX must be a positive amount, such as 250000');
  });
});
