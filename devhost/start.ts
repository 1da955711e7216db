import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Socket } from 'node:net';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { STORAGE_CONNECTION } from '../src/storage/names';
import { type AzuritePorts, connectionStringFor, startAzurite } from './azurite';
import { LOCAL_HOST_LIMITS } from './localHost';
import { type AppWatcher, watchApp } from './watchApp';

/**
 * `npm start`: the local dev loop. Starts Azurite (or reuses one already listening), creates the
 * queues, containers and tables, and runs the TypeScript compiler in watch mode beside the app's
 * host: `func start` when Azure Functions Core Tools is installed, else the local host
 * (hostProcess.ts), which is restarted whenever the compiled app changes. Ctrl-C (SIGINT),
 * SIGTERM or SIGHUP stops everything it started, as does the compiler or the host ending.
 */

export const LOCAL_AZURITE_PORTS: AzuritePorts = { blob: 10000, queue: 10001, table: 10002 };

/** The one line `npm start` prints when func is missing, before it runs the local host. */
export const FUNC_MISSING_NOTICE =
  'Azure Functions Core Tools ("func") is not installed: running the app on the local host instead (to use func start: npm i -g azure-functions-core-tools@4 --unsafe-perm true).';

const HOST_SCRIPT = path.join(__dirname, 'hostProcess.js');

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
  const directories = [
    path.join(options.projectRoot, 'node_modules', '.bin'),
    ...(options.pathEnv ?? '').split(path.delimiter).filter(Boolean),
  ];
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
  /** Where host.json is; the host runs here and Azurite keeps its data under it. */
  projectRoot: string;
  env: NodeJS.ProcessEnv;
  ports?: AzuritePorts;
  /** Azurite's data folder (git-ignored); default `<projectRoot>/.azurite`; null keeps it in memory. */
  azuriteLocation?: string | null;
  /** Default: the project's TypeScript compiler in watch mode. */
  watch?: Command;
  /** The app's HTTP port, as `func start --port` (default: local.settings.json Host.LocalHttpPort, else 7071). */
  port?: number;
  /** Local host only, for tests: arguments for hostProcess.ts (--lease-seconds, --entry-point). */
  localHostArgs?: string[];
  out?: (text: string) => void;
  err?: (text: string) => void;
}

export interface DevLoop {
  /** Resolves with the exit code once everything it started has stopped. */
  readonly finished: Promise<number>;
  stop(): Promise<number>;
}

function typescriptWatch(): Command {
  const typescript = path.dirname(createRequire(__filename).resolve('typescript/package.json'));
  return { command: process.execPath, args: [path.join(typescript, 'bin', 'tsc'), '-p', 'tsconfig.json', '-w', '--preserveWatchOutput'] };
}

/** Starts the dev loop: Azurite, the storage, the compiler, and func start or the local host. */
export async function startDevLoop(options: DevLoopOptions): Promise<DevLoop> {
  const out = options.out ?? ((text: string) => process.stdout.write(text));
  const err = options.err ?? ((text: string) => process.stderr.write(text));
  const func = findFunc({ projectRoot: options.projectRoot, pathEnv: options.env['PATH'] });
  if (!func) out(`${FUNC_MISSING_NOTICE}\n${LOCAL_HOST_LIMITS}\n`);

  const ports = options.ports ?? LOCAL_AZURITE_PORTS;
  const location = options.azuriteLocation === undefined ? path.join(options.projectRoot, '.azurite') : options.azuriteLocation;
  const stopAzurite = await azuriteFor(ports, location, out);
  // Nothing is created here: the app creates the queues, containers and tables it uses on first
  // use, as it must under func start and in Azure, where nothing else does.
  const env = { ...options.env, [STORAGE_CONNECTION]: connectionStringFor(ports) };
  const children = new DevLoopChildren(options.projectRoot, env, err, stopAzurite);
  children.start('TypeScript watch', options.watch ?? typescriptWatch());
  const portArgs = options.port === undefined ? [] : ['--port', String(options.port)];
  if (func) {
    children.start('func start', { command: func, args: ['start', ...portArgs] });
    out(`Running: TypeScript in watch mode and "func start" (${func}). Ctrl-C stops everything.\n`);
    return children.loop;
  }
  const host = new ReloadedHost(
    children,
    { command: process.execPath, args: [HOST_SCRIPT, ...portArgs, ...(options.localHostArgs ?? [])] },
    out,
    err,
  );
  host.start();
  children.watcher = watchApp(options.projectRoot, (files) => void host.reload(files));
  out('Running: TypeScript in watch mode and the local host, which restarts when the app changes. Ctrl-C stops everything.\n');
  return children.loop;
}

/**
 * The processes of the dev loop, each in a process group of its own (stopping it stops what it
 * started too: tsc's native compiler, the host's Node worker). When one ends by itself, everything
 * stops, unless its `onOwnExit` says otherwise; stopping stops the watcher, the children, then
 * Azurite.
 */
class DevLoopChildren {
  private readonly children = new Set<ChildProcess>();
  private stopping: Promise<number> | undefined;
  private resolveFinished: (code: number) => void = () => undefined;
  private readonly finished = new Promise<number>((resolve) => (this.resolveFinished = resolve));
  watcher: AppWatcher | undefined;

  constructor(
    private readonly cwd: string,
    private readonly env: NodeJS.ProcessEnv,
    private readonly err: (text: string) => void,
    private readonly stopAzurite: () => Promise<void>,
  ) {}

  get loop(): DevLoop {
    return { finished: this.finished, stop: () => this.stop(0) };
  }

  get isStopping(): boolean {
    return this.stopping !== undefined;
  }

  stop(code = 0): Promise<number> {
    this.stopping ??= (async () => {
      this.watcher?.close();
      await Promise.all([...this.children].map((child) => stopChild(child)));
      await this.stopAzurite();
      this.resolveFinished(code);
      return code;
    })();
    return this.stopping;
  }

  start(name: string, command: Command, onOwnExit: (description: string) => boolean = () => false): ChildProcess {
    const child = spawn(command.command, command.args, {
      cwd: this.cwd,
      env: this.env,
      stdio: 'inherit',
      detached: process.platform !== 'win32',
    });
    this.children.add(child);
    child.once('error', (error) => {
      this.err(`${name} could not start: ${error.message}\n`);
      void this.stop(1);
    });
    child.once('exit', (code, signal) => {
      this.children.delete(child);
      const description = signal ?? `code ${code}`;
      if (this.stopping || onOwnExit(description)) return;
      this.err(`${name} exited (${description}); stopping the rest.\n`);
      void this.stop(code === 0 ? 0 : 1);
    });
    return child;
  }
}

/**
 * The local host, restarted when the compiled app changes: a reload is a clean stop (listeners
 * finish what they run, appTerminate hooks run) and a fresh start, like func's host restart.
 */
class ReloadedHost {
  private host: ChildProcess | undefined;
  private restarts = 0;
  private reloading = false;
  private reloadQueued = false;

  constructor(
    private readonly children: DevLoopChildren,
    private readonly command: Command,
    private readonly out: (text: string) => void,
    private readonly err: (text: string) => void,
  ) {}

  start(): void {
    const generation = ++this.restarts;
    const child = this.children.start('The local host', this.command, (description) => {
      // Stopped for a reload: expected.
      if (child !== this.host) return true;
      // A host started by a reload that cannot run (say, host.json was saved half-edited) waits
      // for the next change; only the first start's failure stops npm start.
      if (generation === 1) return false;
      this.host = undefined;
      this.err(`The local host exited (${description}); fix what it said and save to start it again.\n`);
      return true;
    });
    this.host = child;
  }

  async reload(files: string[]): Promise<void> {
    if (this.children.isStopping) return;
    if (this.reloading) {
      this.reloadQueued = true;
      return;
    }
    this.reloading = true;
    this.out(
      `Changed: ${files.slice(0, 5).join(', ')}${files.length > 5 ? ` and ${files.length - 5} more` : ''}. Restarting the local host.\n`,
    );
    const previous = this.host;
    this.host = undefined;
    if (previous) await stopChild(previous);
    if (!this.children.isStopping) this.start();
    this.reloading = false;
    if (this.reloadQueued) {
      this.reloadQueued = false;
      void this.reload(['(changes during the restart)']);
    }
  }
}

/** Starts Azurite with its data kept on disk, or reuses one already listening on the ports. */
async function azuriteFor(ports: AzuritePorts, location: string | null, out: (text: string) => void): Promise<() => Promise<void>> {
  const listening = await Promise.all([ports.blob, ports.queue, ports.table].map(isListening));
  if (listening.every(Boolean)) {
    out(`Azurite is already listening on ${ports.blob}-${ports.table}: using it, and leaving it running afterwards.\n`);
    return async () => undefined;
  }
  if (listening.some(Boolean)) {
    const taken = [ports.blob, ports.queue, ports.table].filter((_, index) => listening[index]);
    throw new Error(
      `Port ${taken.join(', ')} is in use by something that is not a whole Azurite (blob, queue and table on ${ports.blob}-${ports.table}); stop it and run npm start again.`,
    );
  }
  const azurite = await startAzurite({ ...(location ? { location } : {}), ports, onOutput: (text) => out(text) });
  out(`Azurite started on ${ports.blob}-${ports.table}, data ${location ? `in ${location}` : 'in memory'}.\n`);
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
 * Runs the dev loop until a signal or a child ends it; returns the exit code. A failure to start
 * is one line, not a stack trace.
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
      err(`npm start could not start: ${error instanceof Error ? error.message : String(error)}\n`);
      return 1;
    }
    if (stopRequested) void loop.stop();
    return await loop.finished;
  } finally {
    for (const signal of signals) process.off(signal, onSignal);
  }
}

export const START_USAGE = 'Usage: npm start [-- --port <port>]';

/** `npm start [-- --port 7072]`: the options npm start takes, or a usage error. */
export function parseStartArgs(argv: string[]): { port?: number } {
  const { values } = parseArgs({ args: argv, options: { port: { type: 'string', short: 'p' } } });
  if (values.port === undefined) return {};
  const port = Number(values.port);
  if (!/^\d+$/.test(values.port) || port < 1 || port > 65535)
    throw new Error(`--port must be a port number from 1 to 65535, not "${values.port}"`);
  return { port };
}

if (require.main === module) {
  let args: { port?: number };
  try {
    args = parseStartArgs(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n${START_USAGE}\n`);
    process.exit(2);
  }
  void runDevLoop({ projectRoot: process.cwd(), env: process.env, ...args }).then((code) => process.exit(code));
}
