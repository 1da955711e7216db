import type { WebhookParseError } from '../../dataverse';
import type { AcceptResult, Answer } from './types';

/**
 * The status-code policy: what each case of a webhook request is answered, and why. Dataverse
 * counts any non-2xx as a failure (for a synchronous step, the user's operation rolls back),
 * retries once only on 502/503/504, and gives up after 60 s. So:
 *  - 202 only once the event is in the queue (and its body in Blob storage when large);
 *  - 503 whenever the write could not be confirmed in time (or the app's settings are invalid), so
 *    that Dataverse tries again. "Not confirmed" is not "not stored": a write that reached storage
 *    just as the deadline fired is processed all the same, and Dataverse's retry of it is the same
 *    delivery (one delivery key), so its handlers still run once;
 *  - 400 for a body that can never succeed, and only once that body is kept for inspection;
 *  - 401/403/405/413 for requests that are not ours to take.
 * What inline handlers decide is answered by decisions.ts (422, or 500).
 */

export function answerWith(eventId: string): Answer {
  return (outcome, status, jsonBody, headers) => ({
    outcome,
    eventId,
    response: { status, jsonBody: { eventId, ...jsonBody }, ...(headers ? { headers } : {}) },
  });
}

/** Any method but POST: 405 with `Allow: POST`. */
export function methodNotAllowed(method: string, eventId: string): AcceptResult {
  const result = answerWith(eventId)(
    'method-not-allowed',
    405,
    { error: 'method-not-allowed', message: 'Dataverse webhooks are POSTed' },
    { Allow: 'POST' },
  );
  // A HEAD answer has no body.
  if (method.toUpperCase() === 'HEAD') delete result.response.jsonBody;
  return result;
}

/** The app's settings are invalid: Dataverse is asked to try again, not told to give up. */
export function settingsInvalid(answer: Answer): AcceptResult {
  return answer(
    'settings-invalid',
    503,
    { error: 'settings-invalid', message: 'The receiver is misconfigured; try again later' },
    { 'Retry-After': '1' },
  );
}

/** An HttpHeader or HttpQueryString credential is missing or wrong. */
export function unauthorized(answer: Answer): AcceptResult {
  return answer('unauthorized', 401, { error: 'unauthorized', message: 'The request does not carry the expected credentials' });
}

/**
 * 413, with the rest of the body left unread: the answer asks for the connection to be closed
 * rather than kept, since keeping it would mean reading (and discarding) the rest first ("the
 * server MAY close the connection", RFC 9110 §15.5.14).
 */
export function tooLarge(answer: Answer, maxBodyBytes: number): AcceptResult {
  return answer(
    'too-large',
    413,
    { error: 'too-large', message: `The body is larger than ${maxBodyBytes} bytes` },
    { Connection: 'close' },
  );
}

/** A body that can never succeed, once it is kept for inspection (until then: `unavailable`). */
export function rejectedBody(answer: Answer, error: WebhookParseError): AcceptResult {
  return { ...answer('rejected-body', 400, error.toJSON()), reason: error.kind };
}

export function forbiddenOrganization(answer: Answer): AcceptResult {
  return answer('forbidden-organization', 403, { error: 'forbidden', message: 'This organization may not send events here' });
}

/** Stored: the event is in the queue (its body in Blob storage when large); the inline handlers' decisions, when any ran. */
export function accepted(answer: Answer, decisions: ReadonlyArray<{ handler: string; outcome: string }> = []): AcceptResult {
  return answer('accepted', 202, { status: 'accepted', ...(decisions.length > 0 ? { decisions } : {}) });
}

/** A write that could not be confirmed in time: Dataverse retries (the same delivery, so its handlers still run once). */
export function unavailable(answer: Answer): AcceptResult {
  return answer(
    'storage-unavailable',
    503,
    { error: 'storage-unavailable', message: 'The event could not be confirmed as stored; try again' },
    { 'Retry-After': '1' },
  );
}
