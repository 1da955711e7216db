import { randomBytes, randomUUID } from 'node:crypto';
import type { RpcInvocationRequest, RpcInvocationResponse, RpcParameterBinding, RpcTypedData } from './functionsCore';
import type { HostLog } from './hostLog';
import { type IndexResult, WorkerChannel, WorkerGoneError } from './workerChannel';

/**
 * The local host's side of its Node worker: one worker process at a time, started with the
 * settings the host gives it, restarted when it exits unexpectedly (once it had loaded the app) or
 * when an invocation outlives host.json's functionTimeout, and sent every invocation, which it
 * logs as func start does (`Executing …`, then `Executed … (Succeeded|Failed …)`). The HTTP, queue
 * and timer paths of localHost.ts all invoke through `invoke` here.
 */

/**
 * WebScriptHostExceptionHandler.cs `OnTimeoutExceptionAsync` waits this long for a timed-out
 * invocation to finish before it restarts the worker running it (the grace period of the
 * host's function timeout, TimeoutAttribute.cs `GracePeriod = TimeSpan.FromSeconds(2)`).
 */
const TIMEOUT_GRACE_MS = 2_000;

export class FunctionTimeoutError extends Error {
  override readonly name = 'FunctionTimeoutException';
}

/** A .NET TimeSpan as the host prints it: hh:mm:ss. */
function timeSpan(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  const pad = (value: number) => String(value).padStart(2, '0');
  return `${pad(Math.floor(seconds / 3600))}:${pad(Math.floor((seconds % 3600) / 60))}:${pad(seconds % 60)}`;
}

/** A W3C traceparent for the invocation, continuing the caller's trace when it sent one. */
function traceParentFor(header: string | undefined): string {
  const incoming = header ? /^00-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/.exec(header) : null;
  return `00-${incoming?.[1] ?? randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-00`;
}

function describeFailure(error: unknown): { name: string; message: string; stack?: string } {
  return error instanceof Error
    ? { name: error.name, message: error.message, ...(error.stack ? { stack: error.stack } : {}) }
    : { name: 'Error', message: String(error) };
}

export interface HostWorkerOptions {
  functionAppDirectory: string;
  /** The app settings, with what the host sets for its worker. */
  env: NodeJS.ProcessEnv;
  extraEntryPoints?: string[];
  /** host.json functionTimeout; null for none. */
  functionTimeoutMs: number | null;
  log: HostLog;
}

/** One invocation, as a trigger hands it over. */
export interface Invocation {
  functionId: string;
  functionName: string;
  /** `Executing 'Functions.<name>' (Reason='…')`. */
  reason: string;
  /** A line logged after `Executing` (a queue message's details). */
  details?: string;
  inputData: RpcParameterBinding[];
  triggerMetadata: Record<string, RpcTypedData>;
  /** The caller's traceparent header, continued when it has one. */
  traceParent?: string;
}

export class HostWorker {
  private current: { channel: WorkerChannel; indexed: Promise<IndexResult> } | undefined;
  private everIndexed = false;
  private stopping = false;

  constructor(private readonly options: HostWorkerOptions) {}

  /** Starts the first worker; what it loaded (its functions), or why it could not. */
  async start(): Promise<IndexResult> {
    this.current = this.startWorker();
    const indexed = await this.current.indexed;
    if (indexed.ok) this.everIndexed = true;
    return indexed;
  }

  /** Sends one invocation to the worker under functionTimeout, logged as the host logs it. Throws what it failed with. */
  async invoke(invocation: Invocation): Promise<RpcInvocationResponse> {
    const { log } = this.options;
    const invocationId = randomUUID();
    const started = performance.now();
    log.executing(invocation.functionName, invocationId, invocation.reason);
    if (invocation.details) log.line(invocation.details);
    try {
      const response = await this.send(invocation.functionName, {
        invocationId,
        functionId: invocation.functionId,
        inputData: invocation.inputData,
        triggerMetadata: invocation.triggerMetadata,
        traceContext: { traceParent: traceParentFor(invocation.traceParent), traceState: '', attributes: {} },
        retryContext: null,
      });
      log.executed(invocation.functionName, invocationId, performance.now() - started);
      return response;
    } catch (error) {
      log.executed(invocation.functionName, invocationId, performance.now() - started, describeFailure(error));
      throw error;
    }
  }

  /** From now on an exit is expected: no worker is restarted. */
  beginShutdown(): void {
    this.stopping = true;
  }

  /** The worker gets WorkerTerminate (its appTerminate hooks run), and is killed if it does not exit in time. */
  async terminate(graceMs: number): Promise<void> {
    this.stopping = true;
    await this.current?.channel.terminate(graceMs);
  }

  private startWorker(): { channel: WorkerChannel; indexed: Promise<IndexResult> } {
    const { log } = this.options;
    const started = WorkerChannel.start({
      functionAppDirectory: this.options.functionAppDirectory,
      env: this.options.env,
      ...(this.options.extraEntryPoints ? { extraEntryPoints: this.options.extraEntryPoints } : {}),
      onLog: (entry) => {
        if (entry.category === 'user' && entry.functionName && entry.invocationId)
          log.user(entry.functionName, entry.invocationId, entry.level, entry.message);
        else log.system(entry.level, entry.message);
      },
      onOutput: (line) => log.line(line),
      onUnexpectedExit: (description) => {
        if (this.stopping) return;
        log.system('error', `The Node worker process exited (${description}).`);
        // A worker that never loaded the app is not restarted in a loop: the next reload starts one.
        if (this.everIndexed && this.current?.channel === started.channel) {
          log.system('warning', 'Restarting the Node worker process.');
          this.current = this.startWorker();
        }
      },
    });
    return started;
  }

  /** The request to the current worker; past functionTimeout it fails, and the worker is restarted after a grace period. */
  private async send(functionName: string, request: RpcInvocationRequest): Promise<RpcInvocationResponse> {
    const worker = this.current;
    if (!worker) throw new WorkerGoneError('No worker is running.');
    const ready = await worker.indexed;
    if (!ready.ok) throw new WorkerGoneError('The worker could not load the app.');
    const result = worker.channel.invoke(request);
    const timeoutMs = this.options.functionTimeoutMs;
    if (timeoutMs === null) return result;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new FunctionTimeoutError(`Timeout value of ${timeSpan(timeoutMs)} was exceeded by function: Functions.${functionName}`));
        let finished = false;
        void result.then(
          () => (finished = true),
          () => (finished = true),
        );
        setTimeout(() => {
          if (!finished) void this.restartAfterTimeout(worker.channel, request.invocationId);
        }, TIMEOUT_GRACE_MS);
      }, timeoutMs);
      result.then(
        (response) => {
          clearTimeout(timer);
          resolve(response);
        },
        (error: unknown) => {
          clearTimeout(timer);
          reject(error instanceof Error ? error : new Error(String(error)));
        },
      );
    });
  }

  /** WebScriptHostExceptionHandler.cs: a timed-out invocation restarts the worker that runs it. */
  private async restartAfterTimeout(channel: WorkerChannel, invocationId: string): Promise<void> {
    const { log } = this.options;
    if (this.stopping || this.current?.channel !== channel) return;
    log.system('warning', `A function timeout has occurred. Restarting worker process executing invocationId '${invocationId}'.`);
    this.current = this.startWorker();
    await channel.kill(`The worker process was restarted after invocation '${invocationId}' timed out.`);
    log.system('warning', 'Attempt to restart language worker process(es) completed.');
  }
}
