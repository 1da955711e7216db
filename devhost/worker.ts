import {
  FunctionsWorker,
  type RpcFunctionMetadata,
  type RpcInvocationRequest,
  type RpcInvocationResponse,
  type WorkerLogEntry,
} from './functionsCore';

/**
 * The local host's Node worker: a process of its own, as under the Functions host, so that a
 * function timeout or a crash takes down this process and its invocations, not the host. The
 * host talks to it over Node's IPC channel with the messages below (the real host uses gRPC with
 * the same steps: WorkerInitRequest, FunctionsMetadataRequest, InvocationRequest, WorkerTerminate).
 */

export interface SerializedError {
  name: string;
  message: string;
  stack?: string;
}

export type HostToWorker =
  | { kind: 'init'; functionAppDirectory: string; extraEntryPoints: string[]; hostVersion: string }
  | { kind: 'invoke'; request: RpcInvocationRequest }
  | { kind: 'terminate' };

export type WorkerToHost =
  | { kind: 'indexed'; functions: RpcFunctionMetadata[]; capabilities: Record<string, string> }
  | { kind: 'index-failed'; error: SerializedError }
  | { kind: 'invocation-result'; invocationId: string; response: RpcInvocationResponse }
  | { kind: 'invocation-failed'; invocationId: string; error: SerializedError }
  | { kind: 'log'; entry: WorkerLogEntry }
  | { kind: 'terminated' };

export function serializeError(error: unknown): SerializedError {
  if (error instanceof Error) return { name: error.name, message: error.message, ...(error.stack ? { stack: error.stack } : {}) };
  return { name: 'Error', message: typeof error === 'string' ? error : (JSON.stringify(error) ?? String(error)) };
}

/** Sends to the host; resolves once sent. Throws when the message cannot be serialized. */
function send(message: WorkerToHost): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send || !process.connected) return resolve();
    process.send(message, undefined, {}, () => resolve());
  });
}

function sendResult(invocationId: string, response: RpcInvocationResponse): void {
  try {
    void send({ kind: 'invocation-result', invocationId, response });
  } catch (error) {
    void send({ kind: 'invocation-failed', invocationId, error: serializeError(error) });
  }
}

function runWorker(): void {
  let worker: FunctionsWorker | undefined;
  // The host going away ends the worker too (the real worker exits when its gRPC stream closes).
  process.on('disconnect', () => process.exit(0));
  // The host decides when the worker stops (WorkerTerminate, or a kill): a signal sent to the
  // whole process group, such as npm start's stop, must not cut the appTerminate hooks short.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => undefined);
  process.on('message', (message: HostToWorker) => {
    switch (message.kind) {
      case 'init': {
        worker = new FunctionsWorker({ log: (entry) => void send({ kind: 'log', entry }), hostVersion: message.hostVersion });
        worker.install();
        const started = worker;
        void (async () => {
          try {
            await started.startApp(message.functionAppDirectory, message.extraEntryPoints);
            const indexed = await started.indexFunctions();
            void send({ kind: 'indexed', ...indexed });
          } catch (error) {
            void send({ kind: 'index-failed', error: serializeError(error) });
          }
        })();
        return;
      }
      case 'invoke': {
        const { invocationId } = message.request;
        if (!worker) {
          void send({ kind: 'invocation-failed', invocationId, error: serializeError(new Error('The worker was not initialized.')) });
          return;
        }
        worker.invoke(message.request).then(
          (response) => sendResult(invocationId, response),
          (error: unknown) => void send({ kind: 'invocation-failed', invocationId, error: serializeError(error) }),
        );
        return;
      }
      case 'terminate': {
        void (async () => {
          try {
            await worker?.terminate();
          } catch (error) {
            await send({
              kind: 'log',
              entry: { level: 'error', category: 'system', message: `An appTerminate hook failed: ${serializeError(error).message}` },
            });
          }
          await send({ kind: 'terminated' });
          process.exit(0);
        })();
        return;
      }
    }
  });
}

if (require.main === module) runWorker();
