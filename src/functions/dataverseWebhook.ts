import { app, type HttpMethod, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { FUNCTION_NAMES, WEBHOOK_ROUTE } from '../functionNames';
import { appHandlers, HandlerLoadError } from '../handlerApi/load';
import { handlerFiles } from '../handlers';
import { invocationLog } from '../observability/log';
import { type Telemetry, telemetry } from '../observability/telemetry';
import { acceptWebhook, refuseMethod } from '../pipeline/accept';
import type { HandlerRegistry } from '../pipeline/handlerRegistry';
import { type IngestSettings, ingestSettings, type SettingsError, settingsOrError } from '../settings';
import { getStorageClients, type StorageClients } from '../storage/clients';

/**
 * Every method of @azure/functions' `HttpMethod` but POST, and but TRACE and CONNECT: the Fetch
 * standard forbids those two, so the library's HttpRequest (undici's Request) cannot be built for
 * them and such a function could only fail.
 */
export const OTHER_METHODS: HttpMethod[] = ['GET', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'];

/** A request without a body: the host passes none without a Content-Length (see docs/events.md). */
const NO_BODY: AsyncIterable<Uint8Array> = { async *[Symbol.asyncIterator]() {} };

/** What the webhook function runs on: the app's own, or a test's (its storage, its handlers). */
export interface WebhookFunctionDependencies {
  settings: () => IngestSettings | SettingsError;
  storage: () => Pick<StorageClients, 'eventsQueue' | 'payloads' | 'rejected' | 'ledger'>;
  /**
   * The app's handlers: the inline ones (`decide(…)`) decide synchronous events inside the request.
   * When they do not load, every request gets 503 (Dataverse retries; nothing is accepted, so
   * nothing is lost) until the declaration is fixed; the start-up log has the one line why.
   */
  handlers: HandlerRegistry | HandlerLoadError | (() => HandlerRegistry | HandlerLoadError);
  telemetry: () => Telemetry;
}

export function createWebhookFunction(deps: WebhookFunctionDependencies) {
  return async function receiveDataverseWebhook(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
    const handlers = typeof deps.handlers === 'function' ? deps.handlers() : deps.handlers;
    if (handlers instanceof HandlerLoadError) {
      invocationLog(context).error('Webhook not taken: the handlers do not load (see the start-up log); answering 503', {
        reason: handlers.message,
      });
      return {
        status: 503,
        headers: { 'Retry-After': '1' },
        jsonBody: { error: 'handlers-invalid', message: 'The receiver is misconfigured; try again later' },
      };
    }
    const storage = deps.storage();
    const result = await acceptWebhook(
      {
        method: request.method,
        url: request.url,
        headers: request.headers,
        // The body's stream, read only as far as the size limit (without streams enabled, the
        // host has sent it whole; reading it chunk by chunk still never copies what is past the limit).
        body: () => request.body ?? NO_BODY,
      },
      {
        settings: deps.settings(),
        storage,
        log: invocationLog(context),
        telemetry: deps.telemetry(),
        decisions: { handlers, ledger: storage.ledger },
      },
    );
    return result.response;
  };
}

export const receiveDataverseWebhook = createWebhookFunction({
  settings: () => settingsOrError(ingestSettings),
  storage: getStorageClients,
  // Built on first use (after every entry point has loaded), once per worker.
  handlers: () => appHandlers(handlerFiles),
  telemetry,
});

export async function refuseOtherMethods(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  return (await refuseMethod(request, { log: invocationLog(context), telemetry: telemetry() })).response;
}

// authLevel 'function': the host itself checks the key a WebhookKey registration sends as ?code=.
app.http(FUNCTION_NAMES.webhook, {
  route: WEBHOOK_ROUTE,
  methods: ['POST'],
  authLevel: 'function',
  handler: receiveDataverseWebhook,
});

// The host answers a method no function registered on a route with 404. This answers every other
// method with 405 and `Allow: POST`, so a misconfigured sender learns what is wrong. It is
// anonymous (behind the key, the host would answer its own empty 401 first) and stores nothing.
app.http(FUNCTION_NAMES.webhookOtherMethods, {
  route: WEBHOOK_ROUTE,
  methods: OTHER_METHODS,
  authLevel: 'anonymous',
  handler: refuseOtherMethods,
});
