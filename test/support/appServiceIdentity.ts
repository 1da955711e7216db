import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A loopback stand-in for the token endpoint App Service (and so Azure Functions) gives an app with
 * a managed identity, in the protocol the clients speak:
 * - Azure/azure-sdk-for-js 06c70f2, sdk/identity/identity/src/credentials/managedIdentityCredential/
 *   appServiceMsi2019.ts: `GET ${IDENTITY_ENDPOINT}?resource=<scope less /.default>&api-version=2019-08-01`
 *   (`&client_id=<id>` for a user-assigned identity), headers `X-IDENTITY-HEADER: ${IDENTITY_HEADER}`
 *   and `Accept: application/json`, over plain HTTP;
 * - @azure/identity 4.x hands the same request to @azure/msal-node (5.6,
 *   src/client/ManagedIdentitySources/AppService.ts: api-version 2019-08-01, `resource`,
 *   `client_id`, `X-IDENTITY-HEADER`; BaseManagedIdentitySource reads `access_token`,
 *   `expires_on` in epoch seconds, `token_type`, `resource`);
 * - the answer's shape is the one App Service documents (learn.microsoft.com, "Managed identities
 *   for App Service and Azure Functions", REST endpoint reference): `access_token`, `expires_on` (a
 *   string of seconds since the epoch), `resource`, `token_type: Bearer`, `client_id`.
 * Where the documentation is silent, this chooses: a wrong or missing secret header gets 401, a
 * wrong api-version or no resource 400, a client id that is not the app's 400.
 *
 * Tokens are JWT-shaped (`aud` the resource, `appid` the client id) and remembered, so a test can
 * check that what reached a service is a token this identity was given, for that audience.
 */
export interface IssuedToken {
  token: string;
  resource: string;
  clientId: string;
}

export interface AppServiceIdentity {
  /** IDENTITY_ENDPOINT, on 127.0.0.1. */
  endpoint: string;
  /** IDENTITY_HEADER. */
  header: string;
  clientId: string;
  issued: IssuedToken[];
  /** Every request, answered or refused. */
  requests: Array<{ query: Record<string, string>; status: number }>;
  /** The token with this text, if this identity issued it. */
  tokenFor(text: string): IssuedToken | undefined;
  close(): Promise<void>;
}

const base64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

export async function startAppServiceIdentity(clientId: string): Promise<AppServiceIdentity> {
  const header = randomUUID();
  const issued: IssuedToken[] = [];
  const requests: AppServiceIdentity['requests'] = [];
  const server: Server = createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://127.0.0.1');
    const query = Object.fromEntries(url.searchParams);
    const answer = (status: number, body: Record<string, unknown>) => {
      requests.push({ query, status });
      response.writeHead(status, { 'content-type': 'application/json' });
      response.end(JSON.stringify(body));
    };
    if (request.method !== 'GET' || url.pathname !== '/msi/token') return answer(404, { error: 'not_found' });
    if (request.headers['x-identity-header'] !== header) return answer(401, { statusCode: 401, message: 'Unauthorized request' });
    if (query['api-version'] !== '2019-08-01' || !query['resource'])
      return answer(400, { statusCode: 400, message: 'api-version 2019-08-01 and resource are required' });
    if ((query['client_id'] ?? clientId) !== clientId)
      return answer(400, {
        statusCode: 400,
        message: 'No User Assigned or Delegated Managed Identity found for specified ClientId/ResourceId/PrincipalId.',
      });
    const expiresOn = Math.floor(Date.now() / 1000) + 24 * 3600;
    const token = `${base64url({ typ: 'JWT', alg: 'none' })}.${base64url({ aud: query['resource'], appid: clientId, exp: expiresOn, jti: randomUUID() })}.stand-in`;
    issued.push({ token, resource: query['resource']!, clientId });
    answer(200, {
      access_token: token,
      expires_on: String(expiresOn),
      resource: query['resource'],
      token_type: 'Bearer',
      client_id: clientId,
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}/msi/token`,
    header,
    clientId,
    issued,
    requests,
    tokenFor: (text) => issued.find((item) => item.token === text),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
