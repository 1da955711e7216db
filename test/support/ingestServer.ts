import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { webhookUrl } from '../../src/functionNames';
import { silentLog } from '../../src/observability/log';
import { acceptWebhook } from '../../src/pipeline/accept';
import type { HandlerRegistry } from '../../src/pipeline/handlerRegistry';
import { type IngestSettings, readIngestSettings } from '../../src/settings';
import type { StorageClients } from '../../src/storage/clients';

export interface IngestServer {
  /** `http://127.0.0.1:<free port>/api/dataverse/webhook` (webhookUrl) */
  url: string;
  /** The URL of every request received. */
  urls: URL[];
  close(): Promise<void>;
}

/**
 * The app's real acceptWebhook behind a loopback HTTP server, on the storage given (its own names in
 * the test Azurite); with `handlers`, their inline handlers decide synchronous events, as in the app.
 */
export async function startIngestServer(
  storage: StorageClients,
  settings: Partial<IngestSettings> = {},
  handlers?: HandlerRegistry,
): Promise<IngestServer> {
  const urls: URL[] = [];
  // The request's own stream is the body, read no further than the size limit; after a 413 (which
  // says Connection: close) Node's server closes the connection rather than read the rest.
  const server: Server = createServer(async (request: IncomingMessage, response) => {
    const url = new URL(request.url ?? '/', `http://${request.headers.host}`);
    urls.push(url);
    const headers = new Headers();
    for (const [name, value] of Object.entries(request.headers)) {
      for (const item of [value ?? []].flat()) headers.append(name, item);
    }
    const result = await acceptWebhook(
      { method: request.method ?? 'GET', url: url.toString(), headers, body: () => request },
      {
        settings: { ...readIngestSettings({}), ...settings },
        storage,
        log: silentLog,
        ...(handlers ? { decisions: { handlers, ledger: storage.ledger } } : {}),
      },
    );
    response.writeHead(result.response.status, { 'content-type': 'application/json', ...result.response.headers });
    response.end(JSON.stringify(result.response.jsonBody ?? {}));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: webhookUrl(`http://127.0.0.1:${port}`),
    urls,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
