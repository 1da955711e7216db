import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { afterEach } from 'vitest';
import type { DevLoopOptions } from '../start';

const DRIVER = path.join(__dirname, 'devLoopDriver.cjs');

export interface DevLoopProcess {
  child: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
  /** Resolves with the first match of `pattern` in the output, once it appears. */
  waitFor(pattern: RegExp, what: string, timeoutMs?: number): Promise<RegExpExecArray>;
}

/**
 * npm start's dev loop (runDevLoop, built) in a process of its own, as a terminal runs it, with the
 * test's options; `env` is the whole environment it gets (give PATH without func for the local host).
 */
export function startDevLoopProcess(options: Omit<DevLoopOptions, 'env' | 'out' | 'err'>, env: NodeJS.ProcessEnv): DevLoopProcess {
  const child = spawn(process.execPath, [DRIVER], {
    env: { ...env, DEV_LOOP_OPTIONS: JSON.stringify(options) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  started.add({ child, exited });
  return {
    child,
    output: () => output,
    exited,
    async waitFor(pattern, what, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const match = pattern.exec(output);
        if (match) return match;
        if (child.exitCode !== null) throw new Error(`the dev loop exited (${child.exitCode}) before ${what}:\n${output}`);
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}:\n${output}`);
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    },
  };
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

const started = new Set<{ child: ChildProcess; exited: Promise<number | null> }>();

/**
 * After each test, every dev loop it started and left running (a failed assertion skips the test's
 * own Ctrl-C) is stopped as a terminal stops it, SIGINT, which stops its Azurite and host too; one
 * that does not stop in 20 s is killed. Nothing a failed test started outlives it.
 */
afterEach(async () => {
  for (const loop of started) {
    if (loop.child.exitCode === null && loop.child.signalCode === null) {
      loop.child.kill('SIGINT');
      const timer = setTimeout(() => loop.child.kill('SIGKILL'), 20_000);
      await loop.exited;
      clearTimeout(timer);
    }
  }
  started.clear();
});
