import { type ChildProcess, fork } from 'node:child_process';
import path from 'node:path';
import {
  LOCAL_HOST_VERSION,
  type RpcFunctionMetadata,
  type RpcInvocationRequest,
  type RpcInvocationResponse,
  type WorkerLogEntry,
} from './functionsCore';
import type { HostToWorker, SerializedError, WorkerToHost } from './worker';

/** The host's side of one worker process: start it, index the app, invoke, stop or kill it. */

/** An error the function threw, as the worker reported it. */
export class FunctionError extends Error {
  override readonly name: string;
  constructor(error: SerializedError) {
    super(error.message);
    this.name = error.name;
    if (error.stack) this.stack = error.stack;
  }
}

/** The invocation ended because its worker process went away (a restart, a crash, a stop). */
export class WorkerGoneError extends Error {
  override readonly name = 'WorkerGoneError';
}

export interface WorkerChannelOptions {
  functionAppDirectory: string;
  env: NodeJS.ProcessEnv;
  extraEntryPoints?: string[];
  onLog: (entry: WorkerLogEntry) => void;
  /** The worker's own stdout and stderr (console.log in the app), line by line. */
  onOutput: (line: string, stream: 'stdout' | 'stderr') => void;
  /** The process ended without being asked to (a crash, process.exit in the app). */
  onUnexpectedExit: (description: string) => void;
}

export type IndexResult =
  | { ok: true; functions: RpcFunctionMetadata[]; capabilities: Record<string, string> }
  | { ok: false; error: FunctionError };

const WORKER_SCRIPT = path.join(__dirname, 'worker.js');

function forwardLines(stream: NodeJS.ReadableStream | null, write: (line: string) => void): void {
  let buffered = '';
  stream?.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    let newline: number;
    while ((newline = buffered.indexOf('\n')) >= 0) {
      write(buffered.slice(0, newline).replace(/\r$/, ''));
      buffered = buffered.slice(newline + 1);
    }
  });
  stream?.on('end', () => {
    if (buffered) write(buffered);
    buffered = '';
  });
}

export class WorkerChannel {
  readonly #child: ChildProcess;
  readonly #pending = new Map<string, { resolve: (response: RpcInvocationResponse) => void; reject: (error: Error) => void }>();
  readonly #options: WorkerChannelOptions;
  readonly exited: Promise<void>;
  #indexed: ((result: IndexResult) => void) | undefined;
  #stopping = false;
  #gone = false;

  private constructor(options: WorkerChannelOptions) {
    this.#options = options;
    this.#child = fork(WORKER_SCRIPT, [], {
      cwd: options.functionAppDirectory,
      env: options.env,
      serialization: 'advanced',
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    forwardLines(this.#child.stdout, (line) => options.onOutput(line, 'stdout'));
    forwardLines(this.#child.stderr, (line) => options.onOutput(line, 'stderr'));
    this.#child.on('message', (message: WorkerToHost) => this.#receive(message));
    this.exited = new Promise((resolve) => {
      this.#child.once('exit', (code, signal) => {
        this.#gone = true;
        const description = signal ? `signal ${signal}` : `code ${code}`;
        this.#failAll(new WorkerGoneError(`The worker process exited (${description}).`));
        this.#indexed?.({
          ok: false,
          error: new FunctionError({ name: 'Error', message: `The worker process exited (${description}) while loading the app.` }),
        });
        if (!this.#stopping) options.onUnexpectedExit(description);
        resolve();
      });
    });
  }

  /** Starts a worker and loads the app in it (WorkerInitRequest, then FunctionsMetadataRequest). */
  static start(options: WorkerChannelOptions): { channel: WorkerChannel; indexed: Promise<IndexResult> } {
    const channel = new WorkerChannel(options);
    const indexed = new Promise<IndexResult>((resolve) => (channel.#indexed = resolve));
    channel.#send({
      kind: 'init',
      functionAppDirectory: options.functionAppDirectory,
      extraEntryPoints: options.extraEntryPoints ?? [],
      hostVersion: LOCAL_HOST_VERSION,
    });
    return { channel, indexed };
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  /** Invocations sent and not yet answered. */
  get inFlight(): string[] {
    return [...this.#pending.keys()];
  }

  #send(message: HostToWorker): void {
    if (this.#gone || !this.#child.connected) throw new WorkerGoneError('The worker process is not running.');
    this.#child.send(message);
  }

  #receive(message: WorkerToHost): void {
    switch (message.kind) {
      case 'indexed':
        this.#indexed?.({ ok: true, functions: message.functions, capabilities: message.capabilities });
        this.#indexed = undefined;
        return;
      case 'index-failed':
        this.#indexed?.({ ok: false, error: new FunctionError(message.error) });
        this.#indexed = undefined;
        return;
      case 'invocation-result':
        this.#pending.get(message.invocationId)?.resolve(message.response);
        this.#pending.delete(message.invocationId);
        return;
      case 'invocation-failed':
        this.#pending.get(message.invocationId)?.reject(new FunctionError(message.error));
        this.#pending.delete(message.invocationId);
        return;
      case 'log':
        this.#options.onLog(message.entry);
        return;
      case 'terminated':
        return;
    }
  }

  invoke(request: RpcInvocationRequest): Promise<RpcInvocationResponse> {
    return new Promise((resolve, reject) => {
      try {
        this.#send({ kind: 'invoke', request });
      } catch (error) {
        reject(error instanceof Error ? error : new Error(String(error)));
        return;
      }
      this.#pending.set(request.invocationId, { resolve, reject });
    });
  }

  #failAll(error: Error): void {
    for (const pending of this.#pending.values()) pending.reject(error);
    this.#pending.clear();
  }

  /**
   * Ends the process at once (the host's restart after a function timeout, or a forced stop):
   * every invocation still running on it fails with `reason`.
   */
  async kill(reason: string): Promise<void> {
    this.#stopping = true;
    this.#failAll(new WorkerGoneError(reason));
    if (!this.#gone) this.#child.kill('SIGKILL');
    await this.exited;
  }

  /**
   * A graceful stop (WorkerTerminate): the appTerminate hooks run and the worker exits; after
   * `graceMs` it is killed.
   */
  async terminate(graceMs: number): Promise<void> {
    this.#stopping = true;
    if (this.#gone) return;
    try {
      this.#send({ kind: 'terminate' });
    } catch {
      // Already going.
    }
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}
