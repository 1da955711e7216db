import { createHash, timingSafeEqual } from 'node:crypto';
import type { ExpectedCredential } from '../../settings';
import { unauthorized } from './answers';
import type { AcceptResult, Reception } from './types';

/**
 * The credentials an HttpHeader or HttpQueryString registration sends (a WebhookKey registration's
 * `?code=` is checked by the Functions host itself), compared in constant time: 401 unless each
 * matches one of its values.
 */
export function checkCredentials({ request, settings, eventId, log, answer }: Reception): AcceptResult | null {
  const missing =
    firstMismatch(settings.requiredHeaders, (name) => request.headers.get(name)) ??
    (settings.requiredQuery.length > 0 ? firstMismatch(settings.requiredQuery, queryReader(request.url)) : null);
  if (!missing) return null;
  log.warn('Webhook refused: credentials did not match', { eventId, credential: missing });
  return unauthorized(answer);
}

function queryReader(url: string): (name: string) => string | null {
  const query = new URL(url).searchParams;
  return (name) => query.get(name);
}

/** Returns the name of the first expected credential that is missing or wrong, or null. */
function firstMismatch(expected: ExpectedCredential[], actual: (name: string) => string | null): string | null {
  for (const credential of expected) {
    const value = actual(credential.name);
    // Every candidate is compared, so the time taken does not reveal which one (or whether any) matched.
    let matched = false;
    for (const candidate of credential.values) matched = constantTimeEquals(value ?? '', candidate) || matched;
    if (value === null || !matched) return credential.name;
  }
  return null;
}

/** Compares digests, so neither the length nor the content of the secret leaks through timing. */
function constantTimeEquals(actual: string, expected: string): boolean {
  const digest = (text: string) => createHash('sha256').update(text, 'utf8').digest();
  return timingSafeEqual(digest(actual), digest(expected));
}
