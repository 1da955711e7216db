import type { AuthDefinition } from './definition';

/**
 * ServiceEndpoint.authvalue for each authentication type: the bare key for WebhookKey (Dataverse
 * sends it as `?code=`), and for HttpHeader / HttpQueryString the name/value pairs as
 * `<settings><setting name="…" value="…" /></settings>`.
 */

export class AuthValueError extends Error {
  override readonly name = 'AuthValueError';
}

function xmlAttribute(text: string): string {
  return text.replaceAll('&', '&amp;').replaceAll('"', '&quot;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll("'", '&apos;');
}

export function settingsXml(settings: ReadonlyArray<{ name: string; value: string }>): string {
  return `<settings>${settings.map((setting) => `<setting name="${xmlAttribute(setting.name)}" value="${xmlAttribute(setting.value)}" />`).join('')}</settings>`;
}

/**
 * The authvalue for an HttpHeader or HttpQueryString registration, each value read from the
 * environment variable the file names. A missing variable is named; a value is never echoed.
 */
export function settingsAuthValue(auth: Exclude<AuthDefinition, { type: 'WebhookKey' }>, env: NodeJS.ProcessEnv): string {
  const missing = auth.settings.filter((setting) => !env[setting.valueFromEnv]);
  if (missing.length > 0) {
    throw new AuthValueError(
      `${auth.type} registration: set ${missing.map((setting) => setting.valueFromEnv).join(', ')} (the value of ${missing.map((setting) => `"${setting.name}"`).join(', ')})`,
    );
  }
  return settingsXml(auth.settings.map((setting) => ({ name: setting.name, value: env[setting.valueFromEnv] ?? '' })));
}
