import { app, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { invocationLog } from '../observability/log';
import { telemetry } from '../observability/telemetry';
import { acceptWebhook } from '../pipeline/accept';
import { ingestSettings } from '../settings';
import { getStorageClients } from '../storage/clients';

/** `https://<app>.azurewebsites.net/api/dataverse/webhook?code=<function key>` */
export const WEBHOOK_ROUTE = 'dataverse/webhook';

export async function receiveDataverseWebhook(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  const result = await acceptWebhook(
    {
      method: request.method,
      url: request.url,
      headers: request.headers,
      body: async () => Buffer.from(await request.arrayBuffer()),
    },
    { settings: ingestSettings(), storage: getStorageClients(), log: invocationLog(context), telemetry: telemetry() },
  );
  return result.response;
}

// authLevel 'function': the host itself checks the key a WebhookKey registration sends as ?code=.
app.http('dataverseWebhook', {
  route: WEBHOOK_ROUTE,
  methods: ['POST'],
  authLevel: 'function',
  handler: receiveDataverseWebhook,
});

// The host answers a method no function registered with 404; this answers the other methods on
// the same route with 405 and `Allow: POST`, so a misconfigured sender learns what is wrong.
app.http('dataverseWebhookOtherMethods', {
  route: WEBHOOK_ROUTE,
  methods: ['GET', 'PUT', 'PATCH', 'DELETE'],
  authLevel: 'function',
  handler: receiveDataverseWebhook,
});
