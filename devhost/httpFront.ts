import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { RpcHttpCookie, RpcHttpData, RpcNullableString, RpcTypedData } from './functionsCore';
import type { HostLog } from './hostLog';
import type { HostWorker } from './hostWorker';
import { type HttpFunction, matchHttpRequest } from './httpRoutes';

/**
 * The local host's HTTP side: it listens on loopback, routes each request to its HTTP function
 * (httpRoutes.ts) under host.json's route prefix, hands it to the worker as the host does, and
 * writes the function's answer back. While the host stops it answers 503, as the host does.
 */

/**
 * func start's Kestrel limit on a request body (StartHostAction.cs `MaxRequestBodySize =
 * Constants.DefaultMaxRequestBodySize`, 100 MB).
 */
const MAX_REQUEST_BODY_BYTES = 104_857_600;

export interface HttpFrontOptions {
  /** The port; 0 lets the system choose. */
  port: number;
  /** host.json `extensions.http.routePrefix`. */
  routePrefix: string;
  log: HostLog;
}

export class HttpFront {
  /** The worker and its HTTP functions, once it has loaded the app: until then every request is a 404. */
  private functions: { worker: HostWorker; routes: HttpFunction[] } | undefined;
  private readonly active = new Set<Promise<void>>();
  private stopping = false;
  private servers: Server[] = [];

  private constructor(private readonly options: HttpFrontOptions) {}

  static async start(options: HttpFrontOptions): Promise<HttpFront> {
    const front = new HttpFront(options);
    front.servers = await listen((req, res) => front.answer(req, res), options.port);
    return front;
  }

  /** Routes requests to these functions of the worker. */
  serve(worker: HostWorker, routes: HttpFunction[]): void {
    this.functions = { worker, routes };
  }

  get port(): number {
    return (this.servers[0]!.address() as AddressInfo).port;
  }

  /**
   * No new connections; `meanwhile` runs (the other listeners stop), the requests in flight
   * finish, and the servers close.
   */
  async stop(meanwhile: () => Promise<unknown>): Promise<void> {
    this.stopping = true;
    const closed = Promise.all(this.servers.map((server) => new Promise((resolve) => server.close(resolve))));
    await meanwhile();
    await Promise.allSettled([...this.active]);
    for (const server of this.servers) server.closeAllConnections();
    await closed;
  }

  private answer(req: IncomingMessage, res: ServerResponse): void {
    const handled = this.handle(req, res).catch((error: unknown) => {
      this.options.log.system(
        'error',
        `The local host could not answer ${req.method} ${req.url}: ${error instanceof Error ? error.message : String(error)}`,
      );
      if (!res.headersSent) res.writeHead(500).end();
    });
    this.active.add(handled);
    void handled.finally(() => this.active.delete(handled));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (this.stopping) {
      // The host answers 503 while it is not running (a restart, a shutdown); a caller retries.
      req.resume();
      res.writeHead(503, { 'retry-after': '1' }).end();
      return;
    }
    const url = new URL(req.url ?? '/', `http://${req.headers.host ?? `localhost:${this.port}`}`);
    const match = matchHttpRequest(this.functions?.routes ?? [], this.options.routePrefix, req.method ?? 'GET', url.pathname);
    if (!match || !this.functions) {
      req.resume();
      res.writeHead(404).end();
      return;
    }
    const body = await readBody(req);
    if (body === 'too-large') {
      res.writeHead(413).end();
      return;
    }
    const { route, params } = match;
    try {
      const response = await this.functions.worker.invoke({
        functionId: route.functionId,
        functionName: route.functionName,
        reason: 'This function was programmatically called via the host APIs.',
        inputData: [{ name: route.triggerName, data: { http: toRpcHttp(req, url, params, body) } }],
        triggerMetadata: {},
        ...(typeof req.headers['traceparent'] === 'string' ? { traceParent: req.headers['traceparent'] } : {}),
      });
      const output =
        route.outputName === '$return'
          ? response.returnValue
          : response.outputData?.find((binding) => binding.name === route.outputName)?.data;
      writeHttpResponse(res, output?.http);
    } catch {
      // The host answers a failed HTTP invocation with an empty 500.
      if (!res.headersSent) res.writeHead(500).end();
    }
  }
}

/** Listens on both loopback addresses, so `localhost` reaches it whichever one it resolves to. */
async function listen(handler: (req: IncomingMessage, res: ServerResponse) => void, port: number): Promise<Server[]> {
  const open = (host: string, wanted: number) =>
    new Promise<Server>((resolve, reject) => {
      const server = createServer(handler);
      server.once('error', reject);
      server.listen({ port: wanted, host }, () => {
        server.off('error', reject);
        resolve(server);
      });
    });
  let first: Server;
  try {
    first = await open('127.0.0.1', port);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EADDRINUSE') {
      throw new Error(`Port ${port} is in use: stop what uses it, or choose another with --port.`, { cause: error });
    }
    throw error;
  }
  const servers = [first];
  try {
    servers.push(await open('::1', (first.address() as AddressInfo).port));
  } catch {
    // No IPv6 loopback here (or the port is taken on it): 127.0.0.1 alone.
  }
  return servers;
}

function readBody(req: IncomingMessage): Promise<Buffer | 'too-large'> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_REQUEST_BODY_BYTES) tooLarge = true;
      else chunks.push(chunk);
    });
    req.on('end', () => resolve(tooLarge ? 'too-large' : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/**
 * The request as the host hands it to the Node worker (GrpcMessageConversionExtensions.cs
 * `ToRpcHttp`, with the worker's capabilities RpcHttpBodyOnly, RawHttpBodyBytes and
 * UseNullableValueDictionaryForHttp): header names lower-cased, repeated values joined with
 * commas, route parameters, and the body as bytes, only when the request has a Content-Length
 * above 0.
 */
function toRpcHttp(req: IncomingMessage, url: URL, params: Record<string, string>, body: Buffer): RpcHttpData {
  const headers: Record<string, RpcNullableString> = {};
  for (let index = 0; index < req.rawHeaders.length; index += 2) {
    const name = req.rawHeaders[index]!.toLowerCase();
    const value = req.rawHeaders[index + 1]!;
    headers[name] = { value: headers[name] ? `${headers[name].value},${value}` : value };
  }
  const query: Record<string, RpcNullableString> = {};
  for (const key of new Set(url.searchParams.keys())) query[key] = { value: url.searchParams.getAll(key).join(',') };
  const contentLength = Number(req.headers['content-length'] ?? 0);
  return {
    method: req.method ?? 'GET',
    url: url.toString(),
    nullableHeaders: headers,
    nullableQuery: query,
    nullableParams: Object.fromEntries(Object.entries(params).map(([name, value]) => [name, { value }])),
    ...(contentLength > 0 ? { body: { bytes: new Uint8Array(body) } } : {}),
  };
}

function bytesOf(data: RpcTypedData | null | undefined): Buffer {
  if (!data) return Buffer.alloc(0);
  if (data.bytes) return Buffer.from(data.bytes);
  if (data.stream) return Buffer.from(data.stream);
  if (typeof data.string === 'string') return Buffer.from(data.string, 'utf8');
  if (typeof data.json === 'string') return Buffer.from(data.json, 'utf8');
  if (typeof data.int === 'number' || typeof data.double === 'number') return Buffer.from(String(data.int ?? data.double), 'utf8');
  return Buffer.alloc(0);
}

function setCookie(cookie: RpcHttpCookie): string {
  const parts = [`${cookie.name ?? ''}=${cookie.value ?? ''}`];
  if (cookie.domain?.value) parts.push(`Domain=${cookie.domain.value}`);
  if (cookie.path?.value) parts.push(`Path=${cookie.path.value}`);
  const seconds = cookie.expires?.value?.seconds;
  if (typeof seconds === 'number') parts.push(`Expires=${new Date(seconds * 1000).toUTCString()}`);
  if (typeof cookie.maxAge?.value === 'number') parts.push(`Max-Age=${cookie.maxAge.value}`);
  if (cookie.secure?.value) parts.push('Secure');
  if (cookie.httpOnly?.value) parts.push('HttpOnly');
  const sameSite = { lax: 'Lax', strict: 'Strict', explicitNone: 'None', none: null }[cookie.sameSite ?? 'none'];
  if (sameSite) parts.push(`SameSite=${sameSite}`);
  return parts.join('; ');
}

/** The function's HTTP answer, as the host writes it; no answer at all is 204 No Content. */
function writeHttpResponse(res: ServerResponse, http: RpcHttpData | null | undefined): void {
  if (!http) {
    res.writeHead(204).end();
    return;
  }
  const headers: Record<string, string | string[]> = { ...(http.headers ?? {}) };
  const cookies = (http.cookies ?? []).map(setCookie);
  if (cookies.length > 0) headers['set-cookie'] = cookies;
  const body = bytesOf(http.body);
  res.writeHead(Number(http.statusCode ?? 200) || 200, headers);
  res.end(body);
}
