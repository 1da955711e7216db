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
 *    happened, the caller does not know yet).
 */
export type Fault = 'reset' | 'hang';

export interface FaultyProxy {
  readonly port: number;
  down(fault?: Fault): void;
  up(): void;
  delayAnswers(ms: number): void;
  /** Connections accepted so far (to tell that a client really went through the proxy). */
  readonly connections: number;
  close(): Promise<void>;
}

export async function startFaultyProxy(targetPort: number): Promise<FaultyProxy> {
  let fault: Fault | null = null;
  let delayMs = 0;
  let connections = 0;
  const open = new Set<Socket>();

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
    client.on('data', (chunk: Buffer) => {
      if (fault === 'hang') return;
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (fault === 'hang') return;
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
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of open) socket.destroy();
        server.close(() => resolve());
      }),
  };
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
