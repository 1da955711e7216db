import { spawn } from 'node:child_process';

export interface Exited {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  cwd?: string;
  /** The child's whole environment (never the developer's own unless passed). */
  env: NodeJS.ProcessEnv;
  /** Past this the child is killed (SIGKILL), so a hung child fails its test instead of holding the suite. */
  timeoutMs?: number;
}

/**
 * The environment of a nested vitest or CLI run: only what finding programs needs, no telemetry,
 * no colours, and nothing of the vitest it runs inside (which it would otherwise think it is).
 */
export function cleanChildEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { PATH: process.env['PATH'], HOME: process.env['HOME'], APPLICATIONINSIGHTS_CONNECTION_STRING: '', NO_COLOR: '1', ...extra };
}

/** Runs a command (no shell) to its end, its output collected: the one way the tests run a child and read what it said. */
export function runToExit(command: string, args: readonly string[], options: RunOptions): Promise<Exited> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = options.timeoutMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
