import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  APP_SETTING_NAMES,
  checkSettings,
  readIngestSettings,
  readProcessSettings,
  readReconcileSettings,
  readRetentionSettings,
  SECRET_SETTING_NAMES,
} from '../../src/settings';
import { azdParameters, bicepParams, provisionedAppSettings } from '../support/provisionedSettings';

/**
 * `sites/config appsettings` replaces the Function App's whole settings collection on every
 * `azd provision` and `azd up`: a setting set by hand in the portal is gone after the next one. So
 * every setting the app reads is a parameter of infra/main.bicep fed from the azd environment
 * value of the same name (`azd env set NAME value`), and an unset one is an empty string, which
 * the app reads as its own default. The list is src/settings.ts's (APP_SETTING_NAMES), the
 * provision is computed from the templates as azd reads them (test/support/provisionedSettings.ts).
 */
const ROOT = path.resolve(__dirname, '..', '..');
const read = (file: string) => readFileSync(path.join(ROOT, file), 'utf8');
const PLATFORM = {
  identityClientId: '6f1c2d3e-0000-4000-8000-00000000c1d0',
  storageAccountName: 'stexample',
  applicationInsightsConnectionString: 'InstrumentationKey=00000000-0000-4000-8000-000000000001;IngestionEndpoint=https://example/',
};
const params = bicepParams(read('infra/main.bicep'));
const parameterFile = JSON.parse(read('infra/main.parameters.json')) as { parameters: Record<string, { value: string }> };

/** The main.bicep parameter that main.parameters.json feeds from this azd value. */
function parameterFedBy(name: string): string | undefined {
  return Object.entries(parameterFile.parameters).find(([, { value }]) => value === `\${${name}=}` || value === `\${${name}}`)?.[0];
}

/** Settings the example handlers read (process.env['NAME'] in src/handlers): HANDLER_SETTINGS carries them. */
const HANDLER_SETTINGS_READ = [
  ...new Set(
    readdirSync(path.join(ROOT, 'src', 'handlers'))
      .filter((file) => file.endsWith('.ts') && !file.endsWith('.test.ts'))
      .flatMap((file) => [...read(`src/handlers/${file}`).matchAll(/process\.env\['(\w+)'\]/g)].map((match) => match[1]!)),
  ),
];

describe('the settings a provision writes', () => {
  it('include every setting src/settings.ts reads, each fed by the azd value of the same name', () => {
    expect(APP_SETTING_NAMES.length).toBeGreaterThanOrEqual(13);
    const unset = provisionedAppSettings({}, PLATFORM);
    const missing = APP_SETTING_NAMES.filter((name) => !(name in unset) || parameterFedBy(name) === undefined);
    expect(missing, 'settings no Bicep parameter writes from the azd environment').toEqual([]);
    for (const name of APP_SETTING_NAMES) {
      const param = params.get(parameterFedBy(name)!)!;
      const value = param.type === 'object' ? '{"x-api-key": ["current \\"one\\"", "next"]}' : `value of ${name}`;
      const written = provisionedAppSettings({ [name]: value }, PLATFORM)[name];
      if (param.type === 'object') expect(JSON.parse(written!), name).toEqual(JSON.parse(value));
      else expect(written, name).toBe(value);
    }
  });

  it('keep the credentials in @secure() parameters', () => {
    expect(SECRET_SETTING_NAMES.length).toBeGreaterThan(0);
    for (const name of SECRET_SETTING_NAMES) expect(params.get(parameterFedBy(name)!)?.secure, name).toBe(true);
    expect(params.get('handlerSecretSettings')?.secure).toBe(true);
    expect(read('infra/modules/functionApp.bicep')).toMatch(/@secure\(\)\n@description\([^\n]*\)\nparam secretAppSettings object/);
  });

  it('an unset one is an empty string, which the app reads as its own default', () => {
    const unset = provisionedAppSettings({}, PLATFORM);
    for (const name of APP_SETTING_NAMES) expect(unset[name], name).toBe('');
    expect(checkSettings(unset)).toEqual([]);
    expect(readIngestSettings(unset)).toEqual(readIngestSettings({}));
    expect(readProcessSettings(unset)).toEqual(readProcessSettings({}));
    expect(readRetentionSettings(unset)).toEqual(readRetentionSettings({}));
    expect(readReconcileSettings(unset)).toEqual(readReconcileSettings({}));
  });

  it('carry what an operator set through to the app, JSON credentials included', () => {
    const written = provisionedAppSettings(
      {
        WEBHOOK_REQUIRED_HEADERS: '{"x-webhook-key": ["current", "next"]}',
        WEBHOOK_REQUIRED_QUERY: '{"token": "abc"}',
        WEBHOOK_ALLOWED_ORGANIZATIONS: 'contoso.crm.dynamics.com',
        PROCESSOR_LEASE_SECONDS: '45',
        RETENTION_DAYS: '14',
        HANDLER_SETTINGS: '{"ACCOUNT_CREDIT_LIMIT_MAX": "250000", "OTHER": 3}',
      },
      PLATFORM,
    );
    expect(checkSettings(written)).toEqual([]);
    expect(readIngestSettings(written)).toMatchObject({
      requiredHeaders: [{ name: 'x-webhook-key', values: ['current', 'next'] }],
      requiredQuery: [{ name: 'token', values: ['abc'] }],
      allowedOrganizations: ['contoso.crm.dynamics.com'],
    });
    expect(readProcessSettings(written).leaseMs).toBe(45_000);
    expect(readRetentionSettings(written).retentionMs).toBe(14 * 24 * 3600 * 1000);
    expect(written).toMatchObject({ ACCOUNT_CREDIT_LIMIT_MAX: '250000', OTHER: '3' });
    // The platform's settings win over a handler setting of the same name.
    const clash = provisionedAppSettings({ HANDLER_SETTINGS: '{"AZURE_CLIENT_ID": "not-the-app", "DATAVERSE_URL": "x"}' }, PLATFORM);
    expect(clash).toMatchObject({ AZURE_CLIENT_ID: PLATFORM.identityClientId, DATAVERSE_URL: '' });
  });

  it('as azd reads them: a JSON credential in a string parameter would break, so those are object parameters', () => {
    // azd substitutes a string parameter inside its JSON text: a double quote in the value breaks it.
    expect(() => azdParameters({ ALERT_EMAIL: 'a"b' }, { id: 'p', type: 'User' })).toThrow(SyntaxError);
    for (const name of SECRET_SETTING_NAMES) expect(params.get(parameterFedBy(name)!)?.type, name).toBe('object');
    // The deploying principal comes from azd itself, not from a value anyone sets.
    expect(azdParameters({}, { id: 'principal-1', type: 'ServicePrincipal' })).toMatchObject({
      principalId: 'principal-1',
      principalType: 'ServicePrincipal',
    });
  });

  it('docs/settings.md names no setting that a provision does not write', () => {
    const documented = [...read('docs/settings.md').matchAll(/^\| `(\w+)` \|/gm)].map((match) => match[1]!);
    expect(documented).toEqual(expect.arrayContaining([...APP_SETTING_NAMES]));
    const written = provisionedAppSettings({}, PLATFORM);
    const notWritten = documented.filter(
      (name) =>
        !(name in written) && !Object.keys(written).some((key) => key.startsWith(`${name}__`)) && !HANDLER_SETTINGS_READ.includes(name),
    );
    expect(notWritten).toEqual([]);
    // A handler's setting is documented as going through HANDLER_SETTINGS.
    for (const name of HANDLER_SETTINGS_READ)
      expect(read('docs/settings.md')).toMatch(new RegExp(`\\| \`${name}\` \\|[^\\n]*HANDLER_SETTINGS`));
  });

  it('docs/deploy.md sets only azd values that the templates read, and nothing on the app by hand', () => {
    const deploy = read('docs/deploy.md');
    const set = [...deploy.matchAll(/azd env set (\w+)/g)].map((match) => match[1]!);
    expect(set.length).toBeGreaterThan(3);
    for (const name of set) expect(parameterFedBy(name), name).toBeDefined();
    expect(deploy).not.toMatch(/az functionapp config appsettings set/);
  });
});
