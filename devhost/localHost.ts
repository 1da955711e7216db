import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { QueueServiceClient } from '@azure/storage-queue';
import { storageConnectionFrom } from '../src/storage/clients';
import {
  inputBinding,
  type RpcFunctionMetadata,
  type RpcHttpCookie,
  type RpcHttpData,
  type RpcInvocationRequest,
  type RpcInvocationResponse,
  type RpcNullableString,
  type RpcTypedData,
} from './functionsCore';
import { type HostJson, readHostJson } from './hostJson';
import { type HostLog, hostLog } from './hostLog';
import { describeHttpFunction, type HttpFunction, httpFunctions, matchHttpRequest } from './httpRoutes';
import { type ListenerEvent, QueueListener, SharedQueueWatcher } from './queueListener';
import { TimerListener } from './timerListener';
import { parseSchedule } from './timerSchedule';
import { type IndexResult, WorkerChannel, WorkerGoneError } from './workerChannel';

/**
 * The local host: what `npm start` runs when Azure Functions Core Tools is not installed. It plays
 * the Functions host's part for this app on one machine: it starts a Node worker process that
 * loads the app through @azure/functions exactly as under the host (functionsCore.ts), serves the
 * HTTP functions, runs the queue-triggered ones with the host's queue listener
 * (queueListener.ts) and the timer-triggered ones on their schedules (timerListener.ts), and
 * applies host.json's functionTimeout the way the host does.
 *
 * What it does not do, that Azure does: scale out (one instance, one worker), check function keys
 * (neither does func start), or put the platform's front end before the app (TLS, its request
 * limits and timeouts, authentication, CORS). Other triggers than HTTP, Storage queues and timers
 * are not run, timers run on every local host (Azure runs each on one instance at a time, and
 * catches up a missed occurrence from the status it keeps in storage), and HTTP streaming (app.setup({ enableHttpStream: true })) is not supported.
 */

export const LOCAL_HOST_LIMITS =
  'The local host is not Azure: it does not scale out (one instance, one worker), does not check function keys (neither does func start), and has no platform front end (no TLS, no front-end limits or timeouts, no authentication or CORS).';

/**
 * WebScriptHostExceptionHandler.cs `OnTimeoutExceptionAsync` waits this long for a timed-out
 * invocation to finish before it restarts the worker running it (the grace period of the
 * host's function timeout, TimeoutAttribute.cs `GracePeriod = TimeSpan.FromSeconds(2)`).
 */
const TIMEOUT_GRACE_MS = 2_000;

/**
 * func start's Kestrel limit on a request body (StartHostAction.cs `MaxRequestBodySize =
 * Constants.DefaultMaxRequestBodySize`, 100 MB).
 */
const MAX_REQUEST_BODY_BYTES = 104_857_600;

export interface LocalHostOptions {
  /** The app's folder: host.json and package.json. */
  projectRoot: string;
  /** The app settings the worker sees (the environment, with local.settings.json's Values under it). */
  env: NodeJS.ProcessEnv;
  /** The HTTP port; 0 lets the system choose. */
  port: number;
  /** The queue listener's receive lease; default the host's 10 minutes. Tests shorten it. */
  leaseSeconds?: number;
  /** Files the worker loads after the app's own entry points (the tests add handlers this way). */
  extraEntryPoints?: string[];
  out?: (text: string) => void;
}

export interface LocalHost {
  readonly port: number;
  /** `http://localhost:<port>` */
  readonly baseUrl: string;
  readonly functions: RpcFunctionMetadata[];
  /** Why no function could be loaded, if so (the host keeps running so that a fix can be reloaded). */
  readonly loadError: string | null;
  /** A graceful stop: listeners finish what is in flight, the worker runs its appTerminate hooks. */
  stop(): Promise<void>;
}

export class FunctionTimeoutError extends Error {
  override readonly name = 'FunctionTimeoutException';
}

/** A .NET TimeSpan as the host prints it: hh:mm:ss. */
function timeSpan(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  const pad = (value: number) => String(value).padStart(2, '0');
  return `${pad(Math.floor(seconds / 3600))}:${pad(Math.floor((seconds % 3600) / 60))}:${pad(seconds % 60)}`;
}

/** A DateTimeOffset as Json.NET writes it in trigger metadata: `2024-05-01T10:00:00.12+00:00`. */
export function dotnetDate(date: Date): string {
  const iso = date.toISOString();
  const fraction = iso.slice(20, 23).replace(/0+$/, '');
  return `${iso.slice(0, 19)}${fraction ? `.${fraction}` : ''}+00:00`;
}

function queueServiceFor(env: NodeJS.ProcessEnv, connectionName: string): QueueServiceClient {
  const connection = storageConnectionFrom(env, connectionName);
  return connection.kind === 'connection-string'
    ? QueueServiceClient.fromConnectionString(connection.connectionString)
    : new QueueServiceClient(connection.queueUrl, connection.credential);
}

/** `%Name%` in a binding property is read from the app settings (the host's INameResolver). */
function resolveSetting(value: string, env: NodeJS.ProcessEnv): string {
  return value.replace(/%([^%]+)%/g, (whole, name: string) => {
    const setting = env[name];
    if (setting === undefined) throw new Error(`The app setting "${name}" (named by "${whole}") is not set.`);
    return setting;
  });
}

/** A W3C traceparent for the invocation, continuing the caller's trace when it sent one. */
function traceParentFor(header: string | undefined): string {
  const incoming = header ? /^00-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/.exec(header) : null;
  return `00-${incoming?.[1] ?? randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-00`;
}

function bytesOf(data: RpcTypedData | null | undefined): Buffer {
  if (!data) return Buffer.alloc(0);
  if (data.bytes) return Buffer.from(data.bytes);
  if (data.stream) return Buffer.from(data.stream);
  if (typeof data.string === 'string') return Buffer.from(data.string, 'utf8');
  if (typeof data.json === 'string') return Buffer.from(data.json, 'utf8');
  if (typeof data.int === 'number' || typeof data.double === 'number') return Buffer.from(String(data.int ?? data.double), 'utf8');
  return Buffer.alloc(0);
}

function setCookie(cookie: RpcHttpCookie): string {
  const parts = [`${cookie.name ?? ''}=${cookie.value ?? ''}`];
  if (cookie.domain?.value) parts.push(`Domain=${cookie.domain.value}`);
  if (cookie.path?.value) parts.push(`Path=${cookie.path.value}`);
  const seconds = cookie.expires?.value?.seconds;
  if (typeof seconds === 'number') parts.push(`Expires=${new Date(seconds * 1000).toUTCString()}`);
  if (typeof cookie.maxAge?.value === 'number') parts.push(`Max-Age=${cookie.maxAge.value}`);
  if (cookie.secure?.value) parts.push('Secure');
  if (cookie.httpOnly?.value) parts.push('HttpOnly');
  const sameSite = { lax: 'Lax', strict: 'Strict', explicitNone: 'None', none: null }[cookie.sameSite ?? 'none'];
  if (sameSite) parts.push(`SameSite=${sameSite}`);
  return parts.join('; ');
}

/** The function's HTTP answer, as the host writes it; no answer at all is 204 No Content. */
function writeHttpResponse(res: ServerResponse, http: RpcHttpData | null | undefined): void {
  if (!http) {
    res.writeHead(204).end();
    return;
  }
  const headers: Record<string, string | string[]> = { ...(http.headers ?? {}) };
  const cookies = (http.cookies ?? []).map(setCookie);
  if (cookies.length > 0) headers['set-cookie'] = cookies;
  const body = bytesOf(http.body);
  res.writeHead(Number(http.statusCode ?? 200) || 200, headers);
  res.end(body);
}

function readBody(req: IncomingMessage): Promise<Buffer | 'too-large'> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_REQUEST_BODY_BYTES) tooLarge = true;
      else chunks.push(chunk);
    });
    req.on('end', () => resolve(tooLarge ? 'too-large' : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/**
 * The request as the host hands it to the Node worker (GrpcMessageConversionExtensions.cs
 * `ToRpcHttp`, with the worker's capabilities RpcHttpBodyOnly, RawHttpBodyBytes and
 * UseNullableValueDictionaryForHttp): header names lower-cased, repeated values joined with
 * commas, route parameters, and the body as bytes, only when the request has a Content-Length
 * above 0.
 */
function toRpcHttp(req: IncomingMessage, url: URL, params: Record<string, string>, body: Buffer): RpcHttpData {
  const headers: Record<string, RpcNullableString> = {};
  for (let index = 0; index < req.rawHeaders.length; index += 2) {
    const name = req.rawHeaders[index]!.toLowerCase();
    const value = req.rawHeaders[index + 1]!;
    headers[name] = { value: headers[name] ? `${headers[name].value},${value}` : value };
  }
  const query: Record<string, RpcNullableString> = {};
  for (const key of new Set(url.searchParams.keys())) query[key] = { value: url.searchParams.getAll(key).join(',') };
  const contentLength = Number(req.headers['content-length'] ?? 0);
  return {
    method: req.method ?? 'GET',
    url: url.toString(),
    nullableHeaders: headers,
    nullableQuery: query,
    nullableParams: Object.fromEntries(Object.entries(params).map(([name, value]) => [name, { value }])),
    ...(contentLength > 0 ? { body: { bytes: new Uint8Array(body) } } : {}),
  };
}

/**
 * Trigger metadata for a queue message, as the queue extension makes it (QueueTriggerBinding.cs
 * `CreateBindingData`: QueueTrigger, DequeueCount, ExpirationTime, Id, InsertionTime,
 * NextVisibleTime, PopReceipt), plus the host's `sys` data, each converted for the worker as
 * GrpcMessageConversionExtensions.cs `ToRpc` does: strings as strings, everything else as Json.NET
 * JSON. @azure/functions then gives them to the function camel-cased in context.triggerMetadata
 * (dequeueCount a number, the times ISO strings).
 */
export function queueTriggerMetadata(
  fn: { name: string },
  body: string,
  message: { messageId: string; popReceipt: string; dequeueCount: number; insertedOn: Date; expiresOn: Date; nextVisibleOn: Date },
  now = new Date(),
): Record<string, RpcTypedData> {
  return {
    QueueTrigger: { string: body },
    DequeueCount: { json: String(message.dequeueCount) },
    ExpirationTime: { json: JSON.stringify(dotnetDate(message.expiresOn)) },
    Id: { string: message.messageId },
    InsertionTime: { json: JSON.stringify(dotnetDate(message.insertedOn)) },
    NextVisibleTime: { json: JSON.stringify(dotnetDate(message.nextVisibleOn)) },
    PopReceipt: { string: message.popReceipt },
    sys: { json: JSON.stringify({ MethodName: fn.name, UtcNow: dotnetDate(now), RandGuid: randomUUID() }) },
  };
}

/** Listens on both loopback addresses, so `localhost` reaches it whichever one it resolves to. */
async function listen(handler: (req: IncomingMessage, res: ServerResponse) => void, port: number): Promise<Server[]> {
  const open = (host: string, wanted: number) =>
    new Promise<Server>((resolve, reject) => {
      const server = createServer(handler);
      server.once('error', reject);
      server.listen({ port: wanted, host }, () => {
        server.off('error', reject);
        resolve(server);
      });
    });
  let first: Server;
  try {
    first = await open('127.0.0.1', port);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EADDRINUSE') {
      throw new Error(`Port ${port} is in use: stop what uses it, or choose another with --port.`, { cause: error });
    }
    throw error;
  }
  const servers = [first];
  try {
    servers.push(await open('::1', (first.address() as AddressInfo).port));
  } catch {
    // No IPv6 loopback here (or the port is taken on it): 127.0.0.1 alone.
  }
  return servers;
}

export async function startLocalHost(options: LocalHostOptions): Promise<LocalHost> {
  const log: HostLog = hostLog(options.out ?? ((text) => process.stdout.write(text)));
  const host: HostJson = readHostJson(options.projectRoot, { env: options.env });
  let stopping = false;
  let routes: HttpFunction[] = [];
  const byId = new Map<string, RpcFunctionMetadata>();
  const activeHttp = new Set<Promise<void>>();

  // The worker: one process at a time; a restart replaces it.
  let current: { channel: WorkerChannel; indexed: Promise<IndexResult> } | undefined;
  let everIndexed = false;

  const servers = await listen((req, res) => {
    const handled = handleHttp(req, res).catch((error: unknown) => {
      log.system(
        'error',
        `The local host could not answer ${req.method} ${req.url}: ${error instanceof Error ? error.message : String(error)}`,
      );
      if (!res.headersSent) res.writeHead(500).end();
    });
    activeHttp.add(handled);
    void handled.finally(() => activeHttp.delete(handled));
  }, options.port);
  const port = (servers[0]!.address() as AddressInfo).port;
  const baseUrl = `http://localhost:${port}`;

  const workerEnv: NodeJS.ProcessEnv = {
    ...options.env,
    // What the host sets for its worker (func start also sets AZURE_FUNCTIONS_ENVIRONMENT).
    AzureWebJobsScriptRoot: options.projectRoot,
    FUNCTIONS_WORKER_RUNTIME: 'node',
    AZURE_FUNCTIONS_ENVIRONMENT: 'Development',
    WEBSITE_HOSTNAME: `localhost:${port}`,
  };

  const startWorker = () => {
    const started = WorkerChannel.start({
      functionAppDirectory: options.projectRoot,
      env: workerEnv,
      ...(options.extraEntryPoints ? { extraEntryPoints: options.extraEntryPoints } : {}),
      onLog: (entry) => {
        if (entry.category === 'user' && entry.functionName && entry.invocationId)
          log.user(entry.functionName, entry.invocationId, entry.level, entry.message);
        else log.system(entry.level, entry.message);
      },
      onOutput: (line) => log.line(line),
      onUnexpectedExit: (description) => {
        if (stopping) return;
        log.system('error', `The Node worker process exited (${description}).`);
        // A worker that never loaded the app is not restarted in a loop: the next reload starts one.
        if (everIndexed && current?.channel === started.channel) {
          log.system('warning', 'Restarting the Node worker process.');
          current = startWorker();
        }
      },
    });
    return started;
  };

  /** WebScriptHostExceptionHandler.cs: a timed-out invocation restarts the worker that runs it. */
  const restartWorker = async (channel: WorkerChannel, invocationId: string) => {
    if (stopping || current?.channel !== channel) return;
    log.system('warning', `A function timeout has occurred. Restarting worker process executing invocationId '${invocationId}'.`);
    current = startWorker();
    await channel.kill(`The worker process was restarted after invocation '${invocationId}' timed out.`);
    log.system('warning', 'Attempt to restart language worker process(es) completed.');
  };

  /** Sends one invocation to the worker, under host.json's functionTimeout. */
  const invoke = async (request: RpcInvocationRequest): Promise<RpcInvocationResponse> => {
    const worker = current;
    if (!worker) throw new WorkerGoneError('No worker is running.');
    const ready = await worker.indexed;
    if (!ready.ok) throw new WorkerGoneError('The worker could not load the app.');
    const result = worker.channel.invoke(request);
    const timeoutMs = host.functionTimeoutMs;
    if (timeoutMs === null) return result;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const fn = byId.get(request.functionId);
        reject(
          new FunctionTimeoutError(
            `Timeout value of ${timeSpan(timeoutMs)} was exceeded by function: Functions.${fn?.name ?? request.functionId}`,
          ),
        );
        let finished = false;
        void result.then(
          () => (finished = true),
          () => (finished = true),
        );
        setTimeout(() => {
          if (!finished) void restartWorker(worker.channel, request.invocationId);
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
  };

  const describeFailure = (error: unknown) =>
    error instanceof Error
      ? { name: error.name, message: error.message, ...(error.stack ? { stack: error.stack } : {}) }
      : { name: 'Error', message: String(error) };

  async function handleHttp(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (stopping) {
      // The host answers 503 while it is not running (a restart, a shutdown); a caller retries.
      req.resume();
      res.writeHead(503, { 'retry-after': '1' }).end();
      return;
    }
    const url = new URL(req.url ?? '/', `http://${req.headers.host ?? `localhost:${port}`}`);
    const match = matchHttpRequest(routes, host.routePrefix, req.method ?? 'GET', url.pathname);
    if (!match) {
      req.resume();
      res.writeHead(404).end();
      return;
    }
    const body = await readBody(req);
    if (body === 'too-large') {
      res.writeHead(413).end();
      return;
    }
    const { route, params } = match;
    const invocationId = randomUUID();
    const started = performance.now();
    log.executing(route.functionName, invocationId, 'This function was programmatically called via the host APIs.');
    const traceParent = traceParentFor(typeof req.headers['traceparent'] === 'string' ? req.headers['traceparent'] : undefined);
    try {
      const response = await invoke({
        invocationId,
        functionId: route.functionId,
        inputData: [{ name: route.triggerName, data: { http: toRpcHttp(req, url, params, body) } }],
        triggerMetadata: {},
        traceContext: { traceParent, traceState: '', attributes: {} },
        retryContext: null,
      });
      log.executed(route.functionName, invocationId, performance.now() - started);
      const output =
        route.outputName === '$return'
          ? response.returnValue
          : response.outputData?.find((binding) => binding.name === route.outputName)?.data;
      writeHttpResponse(res, output?.http);
    } catch (error) {
      log.executed(route.functionName, invocationId, performance.now() - started, describeFailure(error));
      // The host answers a failed HTTP invocation with an empty 500.
      if (!res.headersSent) res.writeHead(500).end();
    }
  }

  // Queue triggers: one listener per function, woken by each other's poison moves.
  const watcher = new SharedQueueWatcher();
  const listeners: QueueListener[] = [];
  const startQueueListeners = (functions: RpcFunctionMetadata[]) => {
    for (const fn of functions) {
      const trigger = inputBinding(fn, 'queueTrigger');
      if (!trigger) continue;
      const [triggerName, binding] = trigger;
      let queueName: string;
      let queueService: QueueServiceClient;
      try {
        queueName = resolveSetting(String(binding['queueName'] ?? ''), options.env);
        queueService = queueServiceFor(
          options.env,
          typeof binding['connection'] === 'string' && binding['connection'] ? binding['connection'] : 'AzureWebJobsStorage',
        );
      } catch (error) {
        log.system('error', `The function ${fn.name} will not run: ${error instanceof Error ? error.message : String(error)}`);
        continue;
      }
      const listener = new QueueListener({
        queueService,
        queueName,
        queues: host.queues,
        ...(options.leaseSeconds === undefined ? {} : { leaseSeconds: options.leaseSeconds }),
        watcher,
        onEvent: (event: ListenerEvent) => {
          if (event.type === 'poisoned') {
            log.system(
              'warning',
              `Message has reached MaxDequeueCount of ${host.queues.maxDequeueCount}. Moving message to queue '${event.poisonQueueName}'.`,
            );
          } else if (event.type === 'storage-error') {
            const error = event.error as { message?: string };
            log.system('warning', `Queue '${event.queueName}': ${event.operation} failed: ${error?.message ?? String(event.error)}`);
          }
        },
        onUnhandledError: (error) => log.system('error', `Queue '${queueName}': ${error instanceof Error ? error.message : String(error)}`),
        run: async ({ body, message }) => {
          const invocationId = randomUUID();
          const started = performance.now();
          log.executing(fn.name, invocationId, `New queue message detected on '${queueName}'.`);
          log.line(
            `Trigger Details: MessageId: ${message.messageId}, DequeueCount: ${message.dequeueCount}, InsertedOn: ${dotnetDate(message.insertedOn)}`,
          );
          try {
            await invoke({
              invocationId,
              functionId: fn.functionId,
              inputData: [{ name: triggerName, data: { string: body } }],
              triggerMetadata: queueTriggerMetadata(fn, body, message),
              traceContext: { traceParent: traceParentFor(undefined), traceState: '', attributes: {} },
              retryContext: null,
            });
          } catch (error) {
            log.executed(fn.name, invocationId, performance.now() - started, describeFailure(error));
            throw error;
          }
          log.executed(fn.name, invocationId, performance.now() - started);
        },
      });
      listeners.push(listener);
    }
    for (const listener of listeners) listener.start();
  };

  // Timer triggers: one listener per function, on the schedule it registered.
  const timers: TimerListener[] = [];
  const startTimerListeners = (functions: RpcFunctionMetadata[]) => {
    for (const fn of functions) {
      const trigger = inputBinding(fn, 'timerTrigger');
      if (!trigger) continue;
      const [triggerName, binding] = trigger;
      let listener: TimerListener;
      try {
        listener = new TimerListener({
          schedule: parseSchedule(resolveSetting(String(binding['schedule'] ?? ''), options.env)),
          runOnStartup: binding['runOnStartup'] === true,
          useMonitor: binding['useMonitor'] !== false,
          formatDate: dotnetDate,
          onError: () => undefined,
          run: async (timerInfo, reason) => {
            const invocationId = randomUUID();
            const started = performance.now();
            log.executing(fn.name, invocationId, reason === 'startup' ? 'Timer fired at startup (RunOnStartup).' : 'Timer fired.');
            try {
              await invoke({
                invocationId,
                functionId: fn.functionId,
                inputData: [{ name: triggerName, data: { json: JSON.stringify(timerInfo) } }],
                // TriggerMetadata is not given to timer functions (@azure/functions reads the Timer from the input).
                triggerMetadata: {},
                traceContext: { traceParent: traceParentFor(undefined), traceState: '', attributes: {} },
                retryContext: null,
              });
            } catch (error) {
              log.executed(fn.name, invocationId, performance.now() - started, describeFailure(error));
              throw error;
            }
            log.executed(fn.name, invocationId, performance.now() - started);
          },
        });
      } catch (error) {
        log.system('error', `The function ${fn.name} will not run: ${error instanceof Error ? error.message : String(error)}`);
        continue;
      }
      log.system('information', `The next occurrence of ${fn.name} is ${listener.next.toISOString()}.`);
      timers.push(listener);
    }
    for (const timer of timers) timer.start();
  };

  current = startWorker();
  const indexed = await current.indexed;
  let functions: RpcFunctionMetadata[] = [];
  let loadError: string | null = null;
  if (indexed.ok) {
    everIndexed = true;
    functions = indexed.functions;
    if (indexed.capabilities['HttpUri']) {
      loadError =
        'The app enables HTTP streams (app.setup({ enableHttpStream: true })), which the local host does not support; use func start.';
      functions = [];
    }
  } else {
    loadError = indexed.error.message;
  }
  for (const fn of functions) byId.set(fn.functionId, fn);
  try {
    routes = httpFunctions(functions);
  } catch (error) {
    loadError = error instanceof Error ? error.message : String(error);
    routes = [];
  }

  if (loadError) {
    log.system('error', `No functions were loaded: ${loadError}`);
  } else {
    const lines = functions.map((fn) => {
      const route = routes.find((candidate) => candidate.functionId === fn.functionId);
      const trigger = Object.values(fn.bindings).find(
        (binding) => binding.direction === 'in' && binding.type?.toLowerCase().endsWith('trigger'),
      );
      return `\t${fn.name}: ${route ? describeHttpFunction(route, baseUrl, host.routePrefix) : (trigger?.type ?? 'no trigger')}`;
    });
    log.plain(`\nFunctions:\n\n${lines.join('\n\n')}\n`);
    for (const fn of functions) {
      const type = Object.values(fn.bindings)
        .find((binding) => binding.direction === 'in' && binding.type?.toLowerCase().endsWith('trigger'))
        ?.type?.toLowerCase();
      if (type && type !== 'httptrigger' && type !== 'queuetrigger' && type !== 'timertrigger')
        log.system('warning', `The function ${fn.name} has a ${type}, which the local host does not run.`);
    }
    startQueueListeners(functions);
    startTimerListeners(functions);
  }

  return {
    port,
    baseUrl,
    functions,
    loadError,
    async stop() {
      if (stopping) return;
      stopping = true;
      // No new connections; the host stops its listeners (each waits for the messages it is
      // running), the HTTP requests in flight finish, then the worker gets WorkerTerminate.
      const closed = Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
      await Promise.all([...listeners, ...timers].map((listener) => listener.stop()));
      await Promise.allSettled([...activeHttp]);
      for (const server of servers) server.closeAllConnections();
      await closed;
      await current?.channel.terminate(5_000);
    },
  };
}
