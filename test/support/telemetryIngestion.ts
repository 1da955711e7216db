import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { loopbackCertificate } from './loopbackTls';

/**
 * A local HTTPS stand-in for Application Insights' ingestion endpoint (`IngestionEndpoint` of the
 * connection string, also given as `LiveEndpoint`), with a certificate made for 127.0.0.1 that a
 * child process trusts through NODE_EXTRA_CA_CERTS. It keeps every request: its path, its
 * `Authorization` header and the telemetry items it carried (v2.1/track takes a JSON array, gzip
 * or not; the older form is one JSON object a line), and accepts them all.
 */
export interface IngestedItem {
  name: string;
  iKey: string;
  tags: Record<string, string>;
  data: { baseType: string; baseData: Record<string, unknown> };
}

export interface IngestionRequest {
  path: string;
  encoding: string | undefined;
  authorization: string | undefined;
  items: IngestedItem[];
}

export interface IngestionEndpoint {
  /** https://127.0.0.1:<port>/ */
  url: string;
  /** The PEM file to give the child as NODE_EXTRA_CA_CERTS. */
  certificate: string;
  received: IngestionRequest[];
  close(): Promise<void>;
}

export async function startIngestionEndpoint(dir: string): Promise<IngestionEndpoint> {
  const { key, certificate } = await loopbackCertificate(dir);
  const received: IngestionRequest[] = [];
  const server: Server = createServer({ key: readFileSync(key), cert: readFileSync(certificate) }, (request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const raw = Buffer.concat(chunks);
      const encoding = request.headers['content-encoding'];
      const text = (encoding === 'gzip' ? gunzipSync(raw) : raw).toString('utf8');
      let items: IngestedItem[] = [];
      if (request.url?.includes('/track') && text) {
        items = text.trimStart().startsWith('[')
          ? JSON.parse(text)
          : text
              .split('\n')
              .filter(Boolean)
              .map((line) => JSON.parse(line));
      }
      received.push({ path: request.url ?? '', encoding, authorization: request.headers.authorization, items });
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ itemsReceived: items.length, itemsAccepted: items.length, errors: [] }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `https://127.0.0.1:${port}/`,
    certificate,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The telemetry requests (v2/track, v2.1/track) among those received. */
export function trackRequests(received: IngestionRequest[]): IngestionRequest[] {
  return received.filter((request) => /^\/v2(\.1)?\/track/.test(request.path));
}
