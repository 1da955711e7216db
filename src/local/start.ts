import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Socket } from 'node:net';
import path from 'node:path';
import { createStorageClients, ensureStorageResources } from '../storage/clients';
import { connectionStringFor, startAzurite, type AzuritePorts } from './azurite';

/**
 * `npm start`: the local dev loop. Checks that Azure Functions Core Tools is installed before it
 * starts anything, then starts Azurite (or reuses one already listening), creates the queues,
 * containers and tables, and runs the TypeScript compiler in watch mode beside `func start`.
 * Ctrl-C (SIGINT), SIGTERM or SIGHUP stops everything it started, as does either process ending.
 */

export const LOCAL_AZURITE_PORTS: AzuritePorts = { blob: 10000, queue: 10001, table: 10002 };

export const FUNC_MISSING_MESSAGE = `Azure Functions Core Tools (the "func" command) is not installed, and npm start needs it to run the app.
Install it with:
  npm i -g azure-functions-core-tools@4 --unsafe-perm true
or follow https://learn.microsoft.com/azure/azure-functions/functions-run-local
It is also an optional dependency of this project: "npm install" puts it in node_modules/.bin when its download succeeds.
`;

const FUNC_NAMES = process.platform === 'win32' ? ['func.cmd', 'func.exe', 'func'] : ['func'];

function isExecutableFile(file: string): boolean {
  try {
    if (!statSync(file).isFile()) return false;
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The `func` that npm scripts would run: the project's node_modules/.bin first, then PATH. */
export function findFunc(options: { projectRoot: string; pathEnv: string | undefined }): string | null {
  const directories = [path.join(options.projectRoot, 'node_modules', '.bin'), ...(options.pathEnv ?? '').split(path.delimiter).filter(Boolean)];
  for (const directory of directories) {
    for (const name of FUNC_NAMES) {
      const candidate = path.join(directory, name);
      if (isExecutableFile(candidate)) return candidate;
    }
  }
  return null;
}

/** Whether something accepts connections on the loopback port. */
export function isListening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    const done = (listening: boolean) => {
      socket.destroy();
      resolve(listening);
    };
    socket.setTimeout(1_000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
    socket.connect(port, '127.0.0.1');
  });
}

export interface Command {
  command: string;
  args: string[];
}

export interface DevLoopOptions {
  /** Where host.json is; `func start` runs here and Azurite keeps its data under it. */
  projectRoot: string;
  env: NodeJS.ProcessEnv;
  ports?: AzuritePorts;
  /** Azurite's data folder (git-ignored); default `<projectRoot>/.azurite`. */
  azuriteLocation?: string;
  /** Default: the project's TypeScript compiler in watch mode. */
  watch?: Command;
  out?: (text: string) => void;
  err?: (text: string) => void;
}

export interface DevLoop {
  /** Resolves with the exit code once everything it started has stopped. */
  readonly finished: Promise<number>;
  stop(): Promise<number>;
}

class FuncMissingError extends Error {}

function typescriptWatch(): Command {
  const typescript = path.dirname(createRequire(__filename).resolve('typescript/package.json'));
  return { command: process.execPath, args: [path.join(typescript, 'bin', 'tsc'), '-p', 'tsconfig.json', '-w', '--preserveWatchOutput'] };
}

/** Starts the dev loop; throws FuncMissingError, having started nothing, when `func` is missing. */
export async function startDevLoop(options: DevLoopOptions): Promise<DevLoop> {
  const out = options.out ?? ((text: string) => process.stdout.write(text));
  const err = options.err ?? ((text: string) => process.stderr.write(text));
  const func = findFunc({ projectRoot: options.projectRoot, pathEnv: options.env['PATH'] });
  if (!func) throw new FuncMissingError(FUNC_MISSING_MESSAGE);

  const ports = options.ports ?? LOCAL_AZURITE_PORTS;
  const stopAzurite = await azuriteFor(ports, options.azuriteLocation ?? path.join(options.projectRoot, '.azurite'), out);
  const connectionString = connectionStringFor(ports);
  const children: ChildProcess[] = [];
  let stopping: Promise<number> | undefined;
  let resolveFinished: (code: number) => void = () => undefined;
  const finished = new Promise<number>((resolve) => (resolveFinished = resolve));

  const stop = (code = 0): Promise<number> => {
    stopping ??= (async () => {
      await Promise.all(children.map((child) => stopChild(child)));
      await stopAzurite();
      resolveFinished(code);
      return code;
    })();
    return stopping;
  };

  try {
    await ensureStorageResources(createStorageClients(connectionString));
    out('Storage ready: queues, containers and tables exist.\n');
  } catch (error) {
    await stopAzurite();
    throw error;
  }

  const env = { ...options.env, AzureWebJobsStorage: connectionString };
  const start = (name: string, command: Command) => {
    // A process group of its own: stopping it stops what it started too (tsc's native compiler,
    // the Functions host's language worker).
    const child = spawn(command.command, command.args, { cwd: options.projectRoot, env, stdio: 'inherit', detached: process.platform !== 'win32' });
    children.push(child);
    child.once('error', (error) => {
      err(`${name} could not start: ${error.message}\n`);
      void stop(1);
    });
    child.once('exit', (code, signal) => {
      if (stopping) return;
      err(`${name} exited (${signal ?? `code ${code}`}); stopping the rest.\n`);
      void stop(code === 0 ? 0 : 1);
    });
  };
  start('TypeScript watch', options.watch ?? typescriptWatch());
  start('func start', { command: func, args: ['start'] });
  out(`Running: TypeScript in watch mode and "func start" (${func}). Ctrl-C stops everything.\n`);
  return { finished, stop: () => stop(0) };
}

/** Starts Azurite with its data kept on disk, or reuses one already listening on the ports. */
async function azuriteFor(ports: AzuritePorts, location: string, out: (text: string) => void): Promise<() => Promise<void>> {
  const listening = await Promise.all([ports.blob, ports.queue, ports.table].map(isListening));
  if (listening.every(Boolean)) {
    out(`Azurite is already listening on ${ports.blob}-${ports.table}: using it, and leaving it running afterwards.\n`);
    return async () => undefined;
  }
  if (listening.some(Boolean)) {
    const taken = [ports.blob, ports.queue, ports.table].filter((_, index) => listening[index]);
    throw new Error(`Port ${taken.join(', ')} is in use by something that is not a whole Azurite (blob, queue and table on ${ports.blob}-${ports.table}); stop it and run npm start again.`);
  }
  const azurite = await startAzurite({ location, ports, onOutput: (text) => out(text) });
  out(`Azurite started on ${ports.blob}-${ports.table}, data in ${location}.\n`);
  return () => azurite.stop();
}

function stopChild(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return resolve();
    const pid = child.pid;
    child.once('exit', () => resolve());
    const signal = (name: NodeJS.Signals) => {
      try {
        if (process.platform === 'win32') child.kill(name);
        else process.kill(-pid, name);
      } catch {
        // Already gone.
      }
    };
    signal('SIGTERM');
    setTimeout(() => signal('SIGKILL'), 5_000).unref();
  });
}

/**
 * Runs the dev loop until a signal or a child ends it; returns the exit code. A missing `func`
 * is reported as plain instructions, not a stack trace.
 */
export async function runDevLoop(options: DevLoopOptions): Promise<number> {
  const err = options.err ?? ((text: string) => process.stderr.write(text));
  // Listening from the start: a Ctrl-C while Azurite starts must still stop it once it is up,
  // rather than kill this process and leave Azurite behind.
  let loop: DevLoop | undefined;
  let stopRequested = false;
  const onSignal = () => {
    stopRequested = true;
    void loop?.stop();
  };
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  for (const signal of signals) process.on(signal, onSignal);
  try {
    try {
      loop = await startDevLoop(options);
    } catch (error) {
      err(error instanceof FuncMissingError ? error.message : `npm start could not start: ${error instanceof Error ? error.message : String(error)}\n`);
      return 1;
    }
    if (stopRequested) void loop.stop();
    return await loop.finished;
  } finally {
    for (const signal of signals) process.off(signal, onSignal);
  }
}

if (require.main === module) {
  void runDevLoop({ projectRoot: process.cwd(), env: process.env }).then((code) => process.exit(code));
}
