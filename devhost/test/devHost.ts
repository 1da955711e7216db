import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach } from 'vitest';
import { webhookUrl } from '../../src/functionNames';
import { STORAGE_CONNECTION } from '../../src/storage/names';
import { type Exited, runToExit } from '../../test/support/childProcess';
import { freeAzuritePorts, freePorts } from '../../test/support/ports';
import { useTempDirs } from '../../test/support/tempDirs';
import { type AzuritePorts, connectionStringFor } from '../azurite';
import type { Command, DevLoopOptions } from '../start';

/**
 * Starting the dev host in the tests, one way each, as a terminal runs it: npm start's dev loop
 * (`startDevLoopProcess`, or `startLocalDevLoop` for the usual local host on free ports), the local
 * host alone (`startHostProcess`), and the CLI (`cliProcess`), each a process of its own. Whatever a
 * test started and left running (a failed assertion skips its own stop) is stopped after it.
 */

const REPO = path.resolve(__dirname, '..', '..');
const DRIVER = path.join(__dirname, 'devLoopDriver.cjs');
const HOST_SCRIPT = path.join(REPO, 'dist', 'devhost', 'hostProcess.js');
const BIN = path.join(REPO, 'bin', 'dataverse-webhooks.js');
const tempDir = useTempDirs();

/** A process a test started, with what it printed. */
export interface Started {
  child: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
  /** Resolves with the first match of `pattern` in the output, once it appears. */
  waitFor(pattern: RegExp, what: string, timeoutMs?: number): Promise<RegExpExecArray>;
}

export type DevLoopProcess = Started;

/**
 * Polls `probe` until it returns something other than false, undefined or null; fails after
 * `timeoutMs`, with the end of `output` when given.
 */
export async function eventually<T>(
  probe: () => T | false | undefined | null | Promise<T | false | undefined | null>,
  what: string,
  options: { timeoutMs?: number; intervalMs?: number; output?: () => string } = {},
): Promise<T> {
  const deadline = Date.now() + (options.timeoutMs ?? 60_000);
  for (;;) {
    const value = await probe();
    if (value !== false && value !== undefined && value !== null) return value;
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${options.output ? `:\n${options.output().slice(-4000)}` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 50));
  }
}

/** Whether a process is still running. */
export function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const started = new Set<{ child: ChildProcess; exited: Promise<number | null>; stop: () => void }>();

/**
 * After each test, every process it started and left running is stopped: a dev loop as a terminal
 * stops it, SIGINT (which stops its Azurite and host too), killed if it does not stop in 20 s; a
 * local host killed with its worker (its process group). Nothing a failed test started outlives it.
 */
afterEach(async () => {
  for (const running of started) {
    if (running.child.exitCode === null && running.child.signalCode === null) {
      running.stop();
      const timer = setTimeout(() => running.child.kill('SIGKILL'), 20_000);
      await running.exited;
      clearTimeout(timer);
    }
  }
  started.clear();
});

function watched(child: ChildProcess, stop: () => void): Started {
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  started.add({ child, exited, stop });
  return {
    child,
    output: () => output,
    exited,
    waitFor: (pattern, what, timeoutMs = 60_000) =>
      eventually(
        () => {
          const match = pattern.exec(output);
          if (match) return match;
          if (child.exitCode !== null) throw new Error(`the process exited (${child.exitCode}) before ${what}:\n${output}`);
          return null;
        },
        what,
        { timeoutMs, intervalMs: 25, output: () => output },
      ),
  };
}

/**
 * npm start's dev loop (runDevLoop, built) in a process of its own, with the test's options; `env`
 * is the whole environment it gets (give PATH without func for the local host).
 */
export function startDevLoopProcess(options: Omit<DevLoopOptions, 'env' | 'out' | 'err'>, env: NodeJS.ProcessEnv): DevLoopProcess {
  const child = spawn(process.execPath, [DRIVER], {
    env: { ...env, DEV_LOOP_OPTIONS: JSON.stringify(options) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return watched(child, () => child.kill('SIGINT'));
}

/** A dev loop on the local host, started and serving. */
export interface LocalDevLoop {
  loop: DevLoopProcess;
  ports: AzuritePorts;
  httpPort: number;
  /** The local host's process. */
  hostPid: number;
  /** The webhook's URL on it. */
  url: string;
  /** The environment a CLI command reads the loop's storage from. */
  storageEnv: Record<string, string>;
}

/**
 * npm start on a machine without func: the dev loop on free ports with an in-memory Azurite, no
 * func on PATH (so the local host runs), and an idle stand-in for the compiler (the tests never
 * rewrite dist/ under each other) unless `watch` is given. Resolves once the host has started.
 */
export async function startLocalDevLoop(options: {
  projectRoot: string;
  env?: NodeJS.ProcessEnv;
  watch?: Command;
  localHostArgs?: string[];
}): Promise<LocalDevLoop> {
  const ports = await freeAzuritePorts();
  const [httpPort] = await freePorts(1);
  const loop = startDevLoopProcess(
    {
      projectRoot: options.projectRoot,
      ports,
      azuriteLocation: null,
      port: httpPort!,
      watch: options.watch ?? idleCompiler(),
      ...(options.localHostArgs ? { localHostArgs: options.localHostArgs } : {}),
    },
    { PATH: tempDir('no-func-'), APPLICATIONINSIGHTS_CONNECTION_STRING: '', ...options.env },
  );
  const [, , hostPid] = await loop.waitFor(/Host started: (\S+) \(process (\d+)\)/, 'the local host');
  return {
    loop,
    ports,
    httpPort: httpPort!,
    hostPid: Number(hostPid),
    url: webhookUrl(`http://localhost:${httpPort}`),
    storageEnv: { [STORAGE_CONNECTION]: connectionStringFor(ports) },
  };
}

/** A compiler in watch mode that compiles nothing: a process that waits. */
function idleCompiler(): Command {
  const file = path.join(tempDir('idle-compiler-'), 'idle-compiler.cjs');
  writeFileSync(file, 'setInterval(() => {}, 1000);\n');
  return { command: process.execPath, args: [file] };
}

/** The local host alone (dist/devhost/hostProcess.js) on a free port, in `cwd`, its worker in its process group. */
export async function startHostProcess(options: {
  cwd: string;
  args?: string[];
  env: NodeJS.ProcessEnv;
}): Promise<Started & { baseUrl: string }> {
  const child = spawn(process.execPath, [HOST_SCRIPT, '--port', '0', ...(options.args ?? [])], {
    cwd: options.cwd,
    env: { PATH: process.env['PATH'], ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const host = watched(child, () => {
    try {
      // The host and its worker: the whole process group.
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // Already gone.
    }
  });
  const [, baseUrl] = await host.waitFor(/Host started: (\S+)/, 'the host to start', 45_000);
  return { ...host, baseUrl: baseUrl! };
}

/** `npx dataverse-webhooks …` as a user runs it: the project's bin in a process of its own. */
export function cliProcess(args: string[], env: NodeJS.ProcessEnv): Promise<Exited> {
  return runToExit(process.execPath, [BIN, ...args], { cwd: REPO, env });
}
