import { readFileSync } from 'node:fs';
import path from 'node:path';

/**
 * The app settings `azd provision` (or `azd up`) writes, computed from the templates themselves:
 * infra/main.parameters.json read the way azd reads it, infra/main.bicep's parameters and the
 * settings objects it builds from them, and infra/modules/functionApp.bicep's `appsettings`. No
 * Bicep compiler runs here (it ships outside npm), so this evaluates only the few expression forms
 * those templates use, and throws on any other: a template change it does not understand fails
 * the tests that use it rather than being guessed at.
 *
 * How azd turns the azd environment into parameters (Azure/azure-dev ae35809,
 * cli/azd/pkg/infra/provisioning/bicep/bicep_provider.go, loadParameters and evalParamEnvSubst):
 * - each parameter of main.parameters.json is substituted on its own, with drone/envsubst
 *   (`${NAME}`, `${NAME=default}`); `AZURE_PRINCIPAL_ID` and `AZURE_PRINCIPAL_TYPE` are the
 *   signed-in principal's, whatever the environment says;
 * - an object or array parameter whose value is a string: the string is substituted, then parsed as
 *   JSON ("Path A"); empty because its variable is unset: left out;
 * - any other parameter: its JSON text (`{"value":"${NAME=}"}`) is substituted, then parsed
 *   ("Path B"): a value with a double quote breaks it, as it does in azd; an empty string because
 *   its variable is unset: left out.
 * A parameter left out takes the template's default.
 */

const ROOT = path.resolve(__dirname, '..', '..');
const read = (file: string) => readFileSync(path.join(ROOT, file), 'utf8');

export interface Principal {
  id: string;
  type: 'User' | 'ServicePrincipal';
}

/** What Azure creates and the module parameters refer to, which no azd value sets. */
export interface PlatformValues {
  identityClientId: string;
  storageAccountName: string;
  applicationInsightsConnectionString: string;
}

interface BicepParam {
  name: string;
  type: string;
  defaultValue: unknown;
  secure: boolean;
}

/** `param name type = default` lines of a template, with `@secure()` noted. */
export function bicepParams(template: string): Map<string, BicepParam> {
  const params = new Map<string, BicepParam>();
  const lines = template.split('\n');
  for (const [index, line] of lines.entries()) {
    const match = /^param (\w+) (\w+)(?: = (.+))?$/.exec(line);
    if (!match) continue;
    const [, name, type, defaultText] = match;
    let secure = false;
    for (let back = index - 1; back >= 0 && lines[back]!.startsWith('@'); back -= 1) if (lines[back] === '@secure()') secure = true;
    params.set(name!, { name: name!, type: type!, defaultValue: defaultText === undefined ? undefined : literal(defaultText), secure });
  }
  return params;
}

function literal(text: string): unknown {
  const trimmed = text.trim();
  if (/^'[^'$]*'$/.test(trimmed)) return trimmed.slice(1, -1);
  if (trimmed === '{}') return {};
  if (/^-?\d+$/.test(trimmed)) return Number(trimmed);
  if (trimmed === 'true' || trimmed === 'false') return trimmed === 'true';
  throw new Error(`a default the settings emulation does not evaluate: ${trimmed}`);
}

/** drone/envsubst's `${NAME}` and `${NAME=default}`, the only forms main.parameters.json uses. */
function envsubst(text: string, lookup: (name: string) => string | undefined): { value: string; unset: boolean } {
  let unset = false;
  const value = text.replace(
    /\$\{([A-Za-z_][A-Za-z0-9_]*)(=([^}]*))?\}/g,
    (_whole, name: string, hasDefault?: string, fallback?: string) => {
      const found = lookup(name);
      if (found !== undefined) return found;
      unset = true;
      return hasDefault ? (fallback ?? '') : '';
    },
  );
  if (/\$\{/.test(value)) throw new Error(`an envsubst form the emulation does not know: ${text}`);
  return { value, unset };
}

/** The parameters azd passes to the deployment of infra/main.bicep for this azd environment. */
export function azdParameters(azdEnv: Readonly<Record<string, string>>, principal: Principal): Record<string, unknown> {
  const file = JSON.parse(read('infra/main.parameters.json')) as { parameters: Record<string, { value: unknown }> };
  const params = bicepParams(read('infra/main.bicep'));
  const lookup = (name: string) =>
    name === 'AZURE_PRINCIPAL_ID' ? principal.id : name === 'AZURE_PRINCIPAL_TYPE' ? principal.type : azdEnv[name];
  const resolved: Record<string, unknown> = {};
  for (const [name, parameter] of Object.entries(file.parameters)) {
    const definition = params.get(name);
    if (!definition) throw new Error(`main.parameters.json passes ${name}, which infra/main.bicep does not declare`);
    if ((definition.type === 'object' || definition.type === 'array') && typeof parameter.value === 'string') {
      const { value, unset } = envsubst(parameter.value, lookup);
      if (value === '' && unset) continue;
      resolved[name] = JSON.parse(value);
      continue;
    }
    const { value, unset } = envsubst(JSON.stringify(parameter), lookup);
    const parsed = JSON.parse(value) as { value?: unknown };
    if (parsed.value === undefined || parsed.value === null) continue;
    if (parsed.value === '' && unset) continue;
    resolved[name] = parsed.value;
  }
  return resolved;
}

/** The lines `KEY: expression` of the object literal that starts on the line matching `opening`. */
function objectLiteral(template: string, opening: RegExp): Array<[string, string]> {
  const lines = template.split('\n');
  const start = lines.findIndex((line) => opening.test(line));
  if (start < 0) throw new Error(`no ${opening} in the template`);
  const indent = /^\s*/.exec(lines[start]!)![0].length;
  const entries: Array<[string, string]> = [];
  for (let index = start + 1; index < lines.length; index += 1) {
    const line = lines[index]!;
    if (new RegExp(`^\\s{${indent}}\\}`).test(line)) return entries;
    if (/^\s*\/\//.test(line) || !line.trim()) continue;
    const entry = /^\s*(\w+): (.+)$/.exec(line);
    if (!entry) throw new Error(`a line the settings emulation does not read: ${line.trim()}`);
    entries.push([entry[1]!, entry[2]!.trim()]);
  }
  throw new Error(`the object at ${opening} does not close`);
}

/** The few expression forms the settings use: a parameter, `a.b`, a string with `${…}`, `empty(x) ? '' : string(x)`. */
function evaluate(expression: string, scope: Readonly<Record<string, unknown>>): string {
  const lookup = (name: string) => {
    if (!(name in scope)) throw new Error(`the settings emulation has no value for ${name}`);
    return scope[name];
  };
  const asText = (value: unknown) => {
    if (typeof value === 'string') return value;
    if (typeof value === 'number') return String(value);
    // Bicep's string() of an object: its compact JSON.
    if (typeof value === 'object' && value !== null) return JSON.stringify(value);
    throw new Error(`a value the settings emulation does not turn into text: ${String(value)}`);
  };
  if (/^[\w.]+$/.test(expression)) return asText(lookup(expression));
  const interpolated = /^'([^']*)'$/.exec(expression);
  if (interpolated) return interpolated[1]!.replace(/\$\{([\w.]+)\}/g, (_whole, name: string) => asText(lookup(name)));
  const jsonOrEmpty = /^empty\((\w+)\) \? '' : string\(\1\)$/.exec(expression);
  if (jsonOrEmpty) {
    const value = lookup(jsonOrEmpty[1]!);
    const isEmpty = value === '' || (typeof value === 'object' && value !== null && Object.keys(value).length === 0);
    return isEmpty ? '' : asText(value);
  }
  throw new Error(`an expression the settings emulation does not evaluate: ${expression}`);
}

/**
 * The whole `appsettings` collection the Function App gets from a provision with this azd
 * environment (an empty one: every optional parameter unset).
 */
export function provisionedAppSettings(
  azdEnv: Readonly<Record<string, string>>,
  platform: PlatformValues,
  principal: Principal = { id: '00000000-0000-0000-0000-0000000000d1', type: 'User' },
): Record<string, string> {
  const main = read('infra/main.bicep');
  const functionApp = read('infra/modules/functionApp.bicep');
  const given = azdParameters(azdEnv, principal);
  const scope: Record<string, unknown> = {};
  for (const param of bicepParams(main).values()) scope[param.name] = param.name in given ? given[param.name] : param.defaultValue;

  const build = (name: string) =>
    Object.fromEntries(
      objectLiteral(main, new RegExp(`^var ${name} = \\{$`)).map(([key, expression]) => [key, evaluate(expression, scope)]),
    );
  const appSettings = build('appSettings');
  const secretAppSettings = build('secretAppSettings');
  // `toObject(items(x), entry => entry.key, entry => string(entry.value))`: the same keys, as text.
  const asTextObject = (name: string) => {
    if (
      !new RegExp(`^var \\w+ = toObject\\(items\\(${name}\\), entry => entry\\.key, entry => string\\(entry\\.value\\)\\)$`, 'm').test(main)
    )
      throw new Error(`infra/main.bicep no longer turns ${name} into text the way the emulation reads it`);
    return Object.fromEntries(
      Object.entries((scope[name] ?? {}) as Record<string, unknown>).map(([key, value]) => [key, evaluate('x', { x: value })]),
    );
  };
  for (const [param, handlerObject, engineObject] of [
    ['appSettings', 'handlerAppSettings', 'appSettings'],
    ['secretAppSettings', 'handlerSecretAppSettings', 'secretAppSettings'],
  ] as const) {
    if (!new RegExp(`^\\s+${param}: union\\(${handlerObject}, ${engineObject}\\)$`, 'm').test(main))
      throw new Error(`infra/main.bicep no longer passes ${param} to functionApp the way the emulation reads it`);
  }
  const moduleAppSettings = { ...asTextObject('handlerSettings'), ...appSettings };
  const moduleSecretAppSettings = { ...asTextObject('handlerSecretSettings'), ...secretAppSettings };

  if (!/properties: union\(appSettings, secretAppSettings, \{$/m.test(functionApp))
    throw new Error('infra/modules/functionApp.bicep no longer writes union(appSettings, secretAppSettings, {…})');
  const platformScope = {
    identityClientId: platform.identityClientId,
    'storage.name': platform.storageAccountName,
    applicationInsightsConnectionString: platform.applicationInsightsConnectionString,
  };
  const platformSettings = Object.fromEntries(
    objectLiteral(functionApp, /properties: union\(appSettings, secretAppSettings, \{$/).map(([key, expression]) => [
      key,
      evaluate(expression, platformScope),
    ]),
  );
  return { ...moduleAppSettings, ...moduleSecretAppSettings, ...platformSettings };
}
