import { describe, expect, it } from 'vitest';
import { FUNCTION_TIMEOUT_MS, INVOCATION_BUDGET_MS } from '../src/hostConfig';
import {
  APP_SETTING_NAMES,
  checkSettings,
  DATAVERSE_TIMEOUT_MS,
  decisionsBudgetMs,
  readIngestSettings,
  readProcessSettings,
  readRetentionSettings,
} from '../src/settings';
import { provisionedAppSettings } from './support/provisionedSettings';

/** Every optional azd value unset: the app settings exactly as such a provision writes them. */
const asProvisioned = () =>
  provisionedAppSettings(
    {},
    {
      identityClientId: '6f1c2d3e-0000-4000-8000-00000000c1d0',
      storageAccountName: 'stexample',
      applicationInsightsConnectionString: 'InstrumentationKey=00000000-0000-4000-8000-000000000001;IngestionEndpoint=https://example/',
    },
  );

describe('app settings', () => {
  it('as an azd up deployment with no optional parameter writes them, are valid: empty means unset', () => {
    const env = asProvisioned();
    // The emulation found what the templates say (a change to them must be seen here).
    expect(env).toMatchObject({ DATAVERSE_URL: '', WEBHOOK_ALLOWED_ORGANIZATIONS: '', AzureWebJobsStorage__credential: 'managedidentity' });
    expect(checkSettings(env)).toEqual([]);
    expect(readProcessSettings(env).dataverseUrl).toBeNull();
    expect(readIngestSettings(env).allowedOrganizations).toEqual([]);
  });

  it('an empty or blank value of any setting is its default', () => {
    const names = APP_SETTING_NAMES;
    for (const blank of ['', '   ']) {
      const env = Object.fromEntries(names.map((name) => [name, blank]));
      expect(readIngestSettings(env)).toEqual(readIngestSettings({}));
      expect(readProcessSettings(env)).toEqual(readProcessSettings({}));
      expect(readRetentionSettings(env)).toEqual(readRetentionSettings({}));
    }
  });

  it('a bad value is named with what is wrong, never with the value itself', () => {
    const problems = checkSettings({
      PROCESSOR_MAX_DEPTH: 'deep-secret',
      DATAVERSE_URL: 'http://secret-host',
      WEBHOOK_REQUIRED_HEADERS: '{not json secret',
    });
    expect(problems).toHaveLength(3);
    expect(problems.join('\n')).not.toMatch(/secret/);
    expect(problems.find((problem) => problem.startsWith('PROCESSOR_MAX_DEPTH: '))).toBeDefined();
    expect(problems.find((problem) => problem.startsWith('DATAVERSE_URL: '))).toBeDefined();
    expect(problems.find((problem) => problem.startsWith('WEBHOOK_REQUIRED_HEADERS: must be a JSON object'))).toBeDefined();
  });

  it('the lease is short (renewed by its holder, whatever functionTimeout is), and a handler must stop before the invocation has to', () => {
    expect(checkSettings({ PROCESSOR_LEASE_SECONDS: '1' })).toEqual(['PROCESSOR_LEASE_SECONDS: must be at least 2']);
    expect(checkSettings({ PROCESSOR_LEASE_SECONDS: '60', PROCESSOR_DEFER_JITTER_SECONDS: '0' })).toEqual([]);
    expect(checkSettings({ PROCESSOR_DEFER_JITTER_SECONDS: '-1' })).toHaveLength(1);
    expect(checkSettings({ PROCESSOR_HANDLER_TIMEOUT_SECONDS: String(INVOCATION_BUDGET_MS / 1000 + 1) })).toHaveLength(1);
    expect(checkSettings({ PROCESSOR_HANDLER_TIMEOUT_SECONDS: String(INVOCATION_BUDGET_MS / 1000) })).toEqual([]);
    const defaults = readProcessSettings({});
    // A dead worker's units are free again within a minute, long before functionTimeout.
    expect(defaults.leaseMs).toBe(30_000);
    expect(defaults.leaseMs).toBeLessThan(FUNCTION_TIMEOUT_MS);
    expect(defaults.deferJitterMs).toBe(7_500);
    expect(readProcessSettings({ PROCESSOR_LEASE_SECONDS: '60' }).deferJitterMs).toBe(15_000);
    expect(readProcessSettings({ PROCESSOR_DEFER_JITTER_SECONDS: '2' }).deferJitterMs).toBe(2_000);
    expect(defaults.handlerTimeoutMs).toBeLessThanOrEqual(INVOCATION_BUDGET_MS);
  });

  it('an inline handler gets seconds, and the inline handlers and the storage writes together answer before Dataverse’s 60 s', () => {
    const defaults = readIngestSettings({});
    expect(defaults.decisionTimeoutMs).toBe(5_000);
    expect(decisionsBudgetMs(defaults) + defaults.storageDeadlineMs).toBeLessThan(DATAVERSE_TIMEOUT_MS);
    expect(checkSettings({ WEBHOOK_DECISION_TIMEOUT_MS: '45000' })).toEqual([]);
    expect(checkSettings({ WEBHOOK_DECISION_TIMEOUT_MS: '45001' })).toEqual([
      "WEBHOOK_DECISION_TIMEOUT_MS: must be at most 45000 so that, with WEBHOOK_STORAGE_DEADLINE_MS and 5000 ms in hand, the answer comes before Dataverse's 60 s timeout",
    ]);
    expect(checkSettings({ WEBHOOK_DECISION_TIMEOUT_MS: '20000', WEBHOOK_STORAGE_DEADLINE_MS: '40000' })).toHaveLength(1);
    expect(checkSettings({ WEBHOOK_DECISION_TIMEOUT_MS: 'soon' })).toHaveLength(1);
  });
});
