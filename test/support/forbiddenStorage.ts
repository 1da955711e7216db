import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';

/**
 * A loopback HTTPS stand-in for a storage account whose callers have no data role, answering
 * every request the way Azure Storage refuses one (learn.microsoft.com/rest/api/storageservices/
 * common-rest-api-error-codes; status-and-error-codes2):
 * - `Authorization: Bearer <token>` (Entra ID): 403 AuthorizationPermissionMismatch, "This request
 *   is not authorized to perform this operation using this permission.", what a caller without the
 *   service's data role gets;
 * - `Authorization: SharedKey …` (an account key): 403 KeyBasedAuthenticationNotPermitted, "Key based
 *   authentication is not permitted on this storage account.", as on an account with shared key
 *   access off (infra/modules/storage.bicep).
 * Blob and queue errors are XML (`<Error><Code>…</Code><Message>…</Message></Error>`), table
 * errors OData JSON (`{"odata.error": {"code", "message": {"lang", "value"}}}`), all with the
 * `x-ms-error-code` and `x-ms-request-id` headers. Each service has its own path prefix on the one
 * server (`/blob/<account>`, `/queue/<account>`, `/table/<account>`).
 */
export type StorageService = 'blob' | 'queue' | 'table';

export interface ForbiddenStorage {
  /** The `AzureWebJobsStorage__<service>ServiceUri` settings pointing at this server. */
  serviceUris: Record<`AzureWebJobsStorage__${StorageService}ServiceUri`, string>;
  /** The same endpoints, for a connection string. */
  endpoints: Record<StorageService, string>;
  requests: Array<{ service: StorageService | null; method: string; path: string; authorization: string; code: string }>;
  close(): Promise<void>;
}

const MESSAGES = {
  AuthorizationPermissionMismatch: 'This request is not authorized to perform this operation using this permission.',
  KeyBasedAuthenticationNotPermitted: 'Key based authentication is not permitted on this storage account.',
  NoAuthenticationInformation: 'Server failed to authenticate the request. Please refer to the information in the www-authenticate header.',
} as const;

export async function startForbiddenStorage(tls: { key: string; certificate: string }, account = 'stexample'): Promise<ForbiddenStorage> {
  const requests: ForbiddenStorage['requests'] = [];
  const server: Server = createServer({ key: readFileSync(tls.key), cert: readFileSync(tls.certificate) }, (request, response) => {
    request.resume();
    request.on('end', () => {
      const url = new URL(request.url ?? '/', 'https://127.0.0.1');
      const service = (/^\/(blob|queue|table)\//.exec(url.pathname)?.[1] ?? null) as StorageService | null;
      const authorization = request.headers.authorization ?? '';
      const scheme = authorization.split(' ')[0] ?? '';
      const code: keyof typeof MESSAGES =
        scheme === 'Bearer'
          ? 'AuthorizationPermissionMismatch'
          : scheme === 'SharedKey' || scheme === 'SharedKeyLite'
            ? 'KeyBasedAuthenticationNotPermitted'
            : 'NoAuthenticationInformation';
      const status = code === 'NoAuthenticationInformation' ? 401 : 403;
      requests.push({ service, method: request.method ?? '', path: url.pathname, authorization: scheme, code });
      const requestId = randomUUID();
      const message = `${MESSAGES[code]}\nRequestId:${requestId}\nTime:${new Date().toISOString()}`;
      const headers = { 'x-ms-error-code': code, 'x-ms-request-id': requestId, 'x-ms-version': '2025-01-05' };
      if (service === 'table') {
        response.writeHead(status, { ...headers, 'content-type': 'application/json;odata=minimalmetadata;streaming=true;charset=utf-8' });
        response.end(JSON.stringify({ 'odata.error': { code, message: { lang: 'en-US', value: message } } }));
      } else {
        response.writeHead(status, { ...headers, 'content-type': 'application/xml' });
        response.end(`<?xml version="1.0" encoding="utf-8"?><Error><Code>${code}</Code><Message>${message}</Message></Error>`);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const endpoint = (service: StorageService) => `https://127.0.0.1:${port}/${service}/${account}`;
  return {
    serviceUris: {
      AzureWebJobsStorage__blobServiceUri: endpoint('blob'),
      AzureWebJobsStorage__queueServiceUri: endpoint('queue'),
      AzureWebJobsStorage__tableServiceUri: endpoint('table'),
    },
    endpoints: { blob: endpoint('blob'), queue: endpoint('queue'), table: endpoint('table') },
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
