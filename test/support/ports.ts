import { createServer } from 'node:net';
import type { AzuritePorts } from '../../devhost/azurite';

/** Ports free on loopback right now, chosen by the system (never the well-known 7071 or 10000-10002). */
export async function freePorts(count: number): Promise<number[]> {
  const servers = Array.from({ length: count }, () => createServer());
  const ports = await Promise.all(
    servers.map(
      (server) =>
        new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port))),
    ),
  );
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}

export async function freeAzuritePorts(): Promise<AzuritePorts> {
  const [blob, queue, table] = await freePorts(3);
  return { blob: blob!, queue: queue!, table: table! };
}
