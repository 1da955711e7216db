import type { RpcFunctionMetadata } from './functionsCore';
import { type HostJson, readHostJson } from './hostJson';
import { type HostLog, hostLog } from './hostLog';
import { HostWorker } from './hostWorker';
import { HttpFront } from './httpFront';
import { describeHttpFunction, type HttpFunction, httpFunctions } from './httpRoutes';
import { type Listener, startTriggerListeners } from './triggerListeners';

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

/** The triggers the local host runs; the host lists the others, and warns that they do not run here. */
const RUN_TRIGGERS = new Set(['httptrigger', 'queuetrigger', 'timertrigger']);

/**
 * Starts the host as func start does: the HTTP port first (the worker is told its address), then
 * the worker, which loads the app; then the functions it registered are listed and their
 * triggers started. A load error is logged, and the host keeps running without functions.
 */
export async function startLocalHost(options: LocalHostOptions): Promise<LocalHost> {
  const log: HostLog = hostLog(options.out ?? ((text) => process.stdout.write(text)));
  const host: HostJson = readHostJson(options.projectRoot, { env: options.env });
  const front = await HttpFront.start({ port: options.port, routePrefix: host.routePrefix, log });
  const baseUrl = `http://localhost:${front.port}`;
  const worker = new HostWorker({
    functionAppDirectory: options.projectRoot,
    env: workerEnvironment(options, front.port),
    ...(options.extraEntryPoints ? { extraEntryPoints: options.extraEntryPoints } : {}),
    functionTimeoutMs: host.functionTimeoutMs,
    log,
  });
  const loaded = await loadFunctions(worker);
  front.serve(worker, loaded.routes);
  let listeners: Listener[] = [];
  if (loaded.error) {
    log.system('error', `No functions were loaded: ${loaded.error}`);
  } else {
    listFunctions(log, loaded.functions, loaded.routes, baseUrl, host.routePrefix);
    const { leaseSeconds } = options;
    listeners = startTriggerListeners(loaded.functions, {
      env: options.env,
      host,
      worker,
      log,
      ...(leaseSeconds === undefined ? {} : { leaseSeconds }),
    });
  }
  let stopped: Promise<void> | undefined;
  return {
    port: front.port,
    baseUrl,
    functions: loaded.functions,
    loadError: loaded.error,
    stop() {
      // No new connections; the host stops its listeners (each waits for the messages it is
      // running), the HTTP requests in flight finish, then the worker gets WorkerTerminate.
      stopped ??= (async () => {
        worker.beginShutdown();
        await front.stop(() => Promise.all(listeners.map((listener) => listener.stop())));
        await worker.terminate(5_000);
      })();
      return stopped;
    },
  };
}

/** The settings the worker sees: the app's, and what the host sets for its worker (func start also sets AZURE_FUNCTIONS_ENVIRONMENT). */
function workerEnvironment(options: LocalHostOptions, port: number): NodeJS.ProcessEnv {
  return {
    ...options.env,
    AzureWebJobsScriptRoot: options.projectRoot,
    FUNCTIONS_WORKER_RUNTIME: 'node',
    AZURE_FUNCTIONS_ENVIRONMENT: 'Development',
    WEBSITE_HOSTNAME: `localhost:${port}`,
  };
}

/** What the worker loaded: its functions and their HTTP routes, or why there are none. */
async function loadFunctions(
  worker: HostWorker,
): Promise<{ functions: RpcFunctionMetadata[]; routes: HttpFunction[]; error: string | null }> {
  const indexed = await worker.start();
  if (!indexed.ok) return { functions: [], routes: [], error: indexed.error.message };
  if (indexed.capabilities['HttpUri']) {
    const error =
      'The app enables HTTP streams (app.setup({ enableHttpStream: true })), which the local host does not support; use func start.';
    return { functions: [], routes: [], error };
  }
  try {
    return { functions: indexed.functions, routes: httpFunctions(indexed.functions), error: null };
  } catch (error) {
    return { functions: indexed.functions, routes: [], error: error instanceof Error ? error.message : String(error) };
  }
}

/** The list func start prints (`Functions:` and each one's route or trigger), and a warning for each trigger not run here. */
function listFunctions(log: HostLog, functions: RpcFunctionMetadata[], routes: HttpFunction[], baseUrl: string, routePrefix: string): void {
  const triggerOf = (fn: RpcFunctionMetadata) =>
    Object.values(fn.bindings).find((binding) => binding.direction === 'in' && binding.type?.toLowerCase().endsWith('trigger'))?.type;
  const lines = functions.map((fn) => {
    const route = routes.find((candidate) => candidate.functionId === fn.functionId);
    return `\t${fn.name}: ${route ? describeHttpFunction(route, baseUrl, routePrefix) : (triggerOf(fn) ?? 'no trigger')}`;
  });
  log.plain(`\nFunctions:\n\n${lines.join('\n\n')}\n`);
  for (const fn of functions) {
    const type = triggerOf(fn)?.toLowerCase();
    if (type && !RUN_TRIGGERS.has(type)) log.system('warning', `The function ${fn.name} has a ${type}, which the local host does not run.`);
  }
}
