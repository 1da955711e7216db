import { type ChildProcess, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';

/** The well-known Azurite development account (public, documented by Microsoft; not a secret). */
export const DEV_ACCOUNT = 'devstoreaccount1';
export const DEV_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

export interface AzuritePorts {
  blob: number;
  queue: number;
  table: number;
}

export interface AzuriteOptions {
  /** Ports to bind; 0 (the default) lets the OS pick free ones. */
  ports?: AzuritePorts;
  /** A folder to keep data in; without it, data lives in memory and dies with the process. */
  location?: string;
  /** Where Azurite's own output goes besides the start-up parsing (npm start shows it). */
  onOutput?: (text: string) => void;
}

export interface AzuriteInstance {
  connectionString: string;
  ports: AzuritePorts;
  stop(): Promise<void>;
}

export function connectionStringFor(ports: AzuritePorts): string {
  const base = 'http://127.0.0.1';
  return [
    'DefaultEndpointsProtocol=http',
    `AccountName=${DEV_ACCOUNT}`,
    `AccountKey=${DEV_KEY}`,
    `BlobEndpoint=${base}:${ports.blob}/${DEV_ACCOUNT}`,
    `QueueEndpoint=${base}:${ports.queue}/${DEV_ACCOUNT}`,
    `TableEndpoint=${base}:${ports.table}/${DEV_ACCOUNT}`,
  ].join(';');
}

function azuriteEntryPoint(): string {
  const pkg = createRequire(__filename).resolve('azurite/package.json');
  return path.join(path.dirname(pkg), 'dist', 'src', 'azurite.js');
}

/**
 * Starts Azurite on loopback, never sending telemetry. By default it is private and in memory
 * on OS-chosen ports, so parallel test runs (and parallel CI jobs on one machine) never collide;
 * the real ports are read back from Azurite's own start-up lines.
 */
export async function startAzurite(options: AzuriteOptions = {}): Promise<AzuriteInstance> {
  const child = spawn(process.execPath, [azuriteEntryPoint(), ...azuriteArguments(options)], { stdio: ['ignore', 'pipe', 'pipe'] });
  // Drained for as long as Azurite runs: an unread pipe fills up and blocks it.
  const forward = (chunk: Buffer) => options.onOutput?.(chunk.toString());
  child.stdout?.on('data', forward);
  child.stderr?.on('data', forward);
  const ports = await listeningPorts(child);
  return {
    connectionString: connectionStringFor(ports),
    ports,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        // Azurite closes its servers on SIGTERM but its timers keep the process alive; in-memory
        // data has nothing to flush, so it is killed at once, and a persistent one after a grace.
        if (!options.location) {
          child.kill('SIGKILL');
          return;
        }
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 3_000).unref();
      }),
  };
}

function azuriteArguments(options: AzuriteOptions): string[] {
  const want = options.ports ?? { blob: 0, queue: 0, table: 0 };
  return [
    '--disableTelemetry',
    ...(options.location ? ['--location', options.location] : ['--inMemoryPersistence']),
    '--skipApiVersionCheck',
    // No access log: one line per request is noise in tests and in `npm start` alike.
    '--silent',
    ...(['blob', 'queue', 'table'] as const).flatMap((service) => [
      `--${service}Host`,
      '127.0.0.1',
      `--${service}Port`,
      String(want[service]),
    ]),
  ];
}

/** The ports Azurite listens on, read from its start-up lines; it fails if Azurite exits first or takes more than 30 s. */
function listeningPorts(child: ChildProcess): Promise<AzuritePorts> {
  return new Promise<AzuritePorts>((resolve, reject) => {
    const found: Partial<Record<'blob' | 'queue' | 'table', number>> = {};
    let output = '';
    const settle = () => {
      clearTimeout(timer);
      child.stdout?.off('data', onStartupOutput);
      child.stderr?.off('data', onStartupOutput);
      child.off('exit', onEarlyExit);
    };
    const onStartupOutput = (chunk: Buffer) => {
      output += chunk.toString();
      for (const match of output.matchAll(/Azurite (Blob|Queue|Table) service is successfully listening at http:\/\/127\.0\.0\.1:(\d+)/g)) {
        found[match[1]!.toLowerCase() as 'blob' | 'queue' | 'table'] = Number(match[2]);
      }
      if (found.blob && found.queue && found.table) {
        settle();
        resolve({ blob: found.blob, queue: found.queue, table: found.table });
      }
    };
    const onEarlyExit = (code: number | null) => {
      settle();
      reject(new Error(`Azurite exited early (code ${code}):\n${output}`));
    };
    const timer = setTimeout(() => {
      settle();
      child.kill('SIGKILL');
      reject(new Error(`Azurite did not start in time:\n${output}`));
    }, 30_000);
    child.stdout?.on('data', onStartupOutput);
    child.stderr?.on('data', onStartupOutput);
    child.on('exit', onEarlyExit);
  });
}
