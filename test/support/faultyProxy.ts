import { type AddressInfo, createServer, type Server, Socket } from 'node:net';
import { inject } from 'vitest';
import { type AzuritePorts, connectionStringFor } from '../../devhost/azurite';

/**
 * A TCP proxy in front of one of Azurite's services, on loopback, that the test can break: the real
 * storage behind it, the faults of a network in front. Everything passes through unchanged until
 * the test says otherwise.
 *
 *  - `down('reset')`: every open connection is cut and new ones are closed as they arrive (storage
 *    unreachable: the SDK sees ECONNRESET and retries);
 *  - `down('hang')`: connections are accepted and requests swallowed, nothing is answered (the SDK
 *    waits for its try timeout, a deadline fires first);
 *  - `delayAnswers(ms)`: requests reach storage at once, and its answers come back late (the write
 *    happened, the caller does not know yet);
 *  - `dropReplies(select)`: each request `select` picks reaches storage and is answered there, and
 *    then the client's connection is cut instead of the answer passing: the write landed, its reply
 *    was lost. The SDK sees the connection closed (ECONNRESET) and sends the same request again,
 *    which meets what the first one wrote (409 for an insert, 412 for a write conditioned on the
 *    old ETag);
 *  - `hold(select)`: the first request `select` picks waits, unsent, until the test releases it
 *    (to do something else in between, deterministically).
 *
 * To pick requests, the proxy reads each connection's requests as they pass (request line, headers,
 * a Content-Length or chunked body: the bytes themselves are forwarded unchanged), and the client
 * sends the next request on a connection only after the answer to the last (Node's agent does not
 * pipeline), so the first bytes storage sends after a picked request are its answer.
 */
export type Fault = 'reset' | 'hang';

/**
 * A request as the proxy saw it pass: `index` counts every request through this proxy, from 0;
 * `clientRequestId` is the SDK's `x-ms-client-request-id`, the same on each retry of one call.
 */
export interface SeenRequest {
  method: string;
  path: string;
  clientRequestId: string | undefined;
  index: number;
}

export interface FaultyProxy {
  readonly port: number;
  down(fault?: Fault): void;
  up(): void;
  delayAnswers(ms: number): void;
  /** Lets each request `select` picks land, then drops its reply; null: every reply passes again. */
  dropReplies(select: ((request: SeenRequest) => boolean) | null): void;
  /** The requests whose replies were dropped, in order. */
  readonly dropped: readonly SeenRequest[];
  /** Holds the first request `select` picks (and its connection) until `release`; `held` says which, once it came. */
  hold(select: (request: SeenRequest) => boolean): { held: Promise<SeenRequest>; release(): void };
  /** Connections accepted so far (to tell that a client really went through the proxy). */
  readonly connections: number;
  close(): Promise<void>;
}

export async function startFaultyProxy(targetPort: number): Promise<FaultyProxy> {
  let fault: Fault | null = null;
  let delayMs = 0;
  let connections = 0;
  let select: ((request: SeenRequest) => boolean) | null = null;
  let seen = 0;
  const dropped: SeenRequest[] = [];
  let holding: { select: (request: SeenRequest) => boolean; seen: (request: SeenRequest) => void } | null = null;
  const open = new Set<Socket>();

  const releases = new Map<SeenRequest, () => void>();
  const server: Server = createServer((client) => {
    connections++;
    open.add(client);
    client.on('close', () => open.delete(client));
    client.on('error', () => undefined);
    if (fault === 'reset') {
      client.resetAndDestroy();
      return;
    }
    if (fault === 'hang') {
      client.resume();
      return;
    }
    const upstream = new Socket();
    open.add(upstream);
    upstream.on('close', () => {
      open.delete(upstream);
      client.destroy();
    });
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.connect(targetPort, '127.0.0.1');
    /** A picked request was sent: the next bytes from storage are its answer, which never passes. */
    let dropNextAnswer = false;
    /** A held request's bytes (and whatever follows them), until it is released. */
    let held: Buffer[] | null = null;
    const requests = new RequestReader((method, path, clientRequestId) => {
      const request = { method, path, clientRequestId, index: seen++ };
      if (select?.(request)) {
        dropped.push(request);
        dropNextAnswer = true;
      }
      if (holding?.select(request)) {
        const hold = holding;
        holding = null;
        const bytes: Buffer[] = [];
        held = bytes;
        hold.seen(request);
        releases.set(request, () => {
          if (held !== bytes) return;
          held = null;
          for (const chunk of bytes) upstream.write(chunk);
        });
      }
    });
    client.on('data', (chunk: Buffer) => {
      if (fault === 'hang') return;
      requests.read(chunk);
      if (held) held.push(chunk);
      else upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (fault === 'hang') return;
      if (dropNextAnswer) {
        // Storage answered, so the write happened; the client never hears of it.
        client.destroy();
        upstream.destroy();
        return;
      }
      if (delayMs > 0) setTimeout(() => client.writable && client.write(chunk), delayMs);
      else client.write(chunk);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));

  return {
    port: (server.address() as AddressInfo).port,
    get connections() {
      return connections;
    },
    down(kind: Fault = 'reset') {
      fault = kind;
      if (kind === 'reset') for (const socket of open) socket.resetAndDestroy();
    },
    up() {
      fault = null;
    },
    delayAnswers(ms: number) {
      delayMs = ms;
    },
    dropReplies(picked) {
      select = picked;
    },
    dropped,
    hold(pick) {
      let seenRequest: SeenRequest | null = null;
      const held = new Promise<SeenRequest>((resolve) => {
        holding = {
          select: pick,
          seen: (request) => {
            seenRequest = request;
            resolve(request);
          },
        };
      });
      return {
        held,
        release: () => {
          if (seenRequest) releases.get(seenRequest)?.();
          else holding = null;
        },
      };
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of open) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * Finds where each HTTP/1.1 request of a connection starts, and calls `onRequest` with its method
 * and path once its head has passed: request line and headers up to the blank line, then a body of
 * Content-Length bytes or of chunks up to the last (RFC 9112 §6.3, §7.1).
 */
class RequestReader {
  private pending = Buffer.alloc(0);
  /** What is being read: the head, `body` bytes left, or chunked framing. */
  private phase:
    | { kind: 'head' }
    | { kind: 'body'; left: number }
    | { kind: 'chunk-size' }
    | { kind: 'chunk'; left: number }
    | { kind: 'trailer' } = {
    kind: 'head',
  };

  constructor(private readonly onRequest: (method: string, path: string, clientRequestId: string | undefined) => void) {}

  read(chunk: Buffer): void {
    this.pending = Buffer.concat([this.pending, chunk]);
    for (;;) {
      const phase = this.phase;
      if (phase.kind === 'body' || phase.kind === 'chunk') {
        const taken = Math.min(phase.left, this.pending.length);
        this.pending = this.pending.subarray(taken);
        phase.left -= taken;
        if (phase.left > 0) return;
        // A chunk's data is followed by CRLF, read as the next size line's empty prefix.
        this.phase = phase.kind === 'body' ? { kind: 'head' } : { kind: 'chunk-size' };
        continue;
      }
      const end = this.pending.indexOf(phase.kind === 'head' ? '\r\n\r\n' : '\r\n');
      if (end < 0) return;
      const text = this.pending.subarray(0, end).toString('latin1');
      this.pending = this.pending.subarray(end + (phase.kind === 'head' ? 4 : 2));
      if (phase.kind === 'chunk-size') {
        if (text === '') continue;
        const size = Number.parseInt(text.split(';')[0]!, 16);
        this.phase = size === 0 ? { kind: 'trailer' } : { kind: 'chunk', left: size };
      } else if (phase.kind === 'trailer') {
        // Trailer fields end with an empty line.
        if (text === '') this.phase = { kind: 'head' };
      } else {
        const [requestLine = '', ...fields] = text.split('\r\n');
        const [method = '', path = ''] = requestLine.split(' ');
        const header = (name: string) =>
          fields
            .find((field) => field.toLowerCase().startsWith(`${name}:`))
            ?.slice(name.length + 1)
            .trim();
        this.onRequest(method, path, header('x-ms-client-request-id'));
        const length = Number(header('content-length') ?? 0);
        if (header('transfer-encoding')?.toLowerCase().includes('chunked')) this.phase = { kind: 'chunk-size' };
        else if (length > 0) this.phase = { kind: 'body', left: length };
      }
    }
  }
}

export interface FaultyStorage {
  connectionString: string;
  blob: FaultyProxy;
  queue: FaultyProxy;
  table: FaultyProxy;
  /** All three services at once. */
  down(fault?: Fault): void;
  up(): void;
  close(): Promise<void>;
}

/** The test Azurite (or the one whose ports are given) behind three faulty proxies, one per service. */
export async function faultyStorage(ports: AzuritePorts = azuritePorts(inject('azuriteConnectionString'))): Promise<FaultyStorage> {
  const [blob, queue, table] = await Promise.all([
    startFaultyProxy(ports.blob),
    startFaultyProxy(ports.queue),
    startFaultyProxy(ports.table),
  ]);
  const all = [blob, queue, table];
  return {
    connectionString: connectionStringFor({ blob: blob.port, queue: queue.port, table: table.port }),
    blob,
    queue,
    table,
    down: (fault) => all.forEach((proxy) => proxy.down(fault)),
    up: () => all.forEach((proxy) => proxy.up()),
    close: async () => {
      await Promise.all(all.map((proxy) => proxy.close()));
    },
  };
}

/** The ports of an Azurite connection string made by `connectionStringFor`. */
export function azuritePorts(connectionString: string): AzuritePorts {
  const port = (service: string) => {
    const found = new RegExp(`${service}Endpoint=http://127\\.0\\.0\\.1:(\\d+)`).exec(connectionString)?.[1];
    if (!found) throw new Error(`no ${service} endpoint in the connection string`);
    return Number(found);
  };
  return { blob: port('Blob'), queue: port('Queue'), table: port('Table') };
}
