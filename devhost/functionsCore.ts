import { readFileSync } from 'node:fs';
import Module, { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { entryPointFiles } from '../hostRules/entryPoints';

/**
 * The Node worker's side of the Functions host, for the local host: a real `@azure/functions-core`
 * module (the API the worker gives apps at run time), the loading of the app, and the invocation
 * sequence, following Azure/azure-functions-nodejs-worker (v3.9, paths under src/):
 *
 * - setupCoreModule.ts: `require('@azure/functions-core')` answered by intercepting
 *   Module.prototype.require; the API is version, hostVersion, registerHook, setProgrammingModel,
 *   getProgrammingModel, log, registerFunction and Disposable.
 * - startApp.ts, loadScriptFile.ts, parsers/parsePackageJson.ts: package.json `main` is a glob
 *   (hostRules/entryPoints.ts); each matching file is loaded in turn (require, or import() for ES modules), then the appStart
 *   hooks run; on Node 20 and later a file that fails to load blocks the app.
 * - eventHandlers/FunctionsMetadataHandler.ts: registration is locked once the host asks for the
 *   functions; a blocking load error is reported then.
 * - eventHandlers/getWorkerCapabilities.ts: the programming model's getCapabilities runs at start-up
 *   (which is when @azure/functions locks `app.setup`).
 * - eventHandlers/InvocationHandler.ts, hooks/*: getArguments, preInvocation hooks, the function,
 *   postInvocation hooks, getResponse; an error thrown by the function fails the invocation.
 * - eventHandlers/terminateWorker.ts: the appTerminate hooks run when the host stops the worker.
 *
 * The types are the ones @azure/functions compiles against (azure-functions-nodejs-library
 * types-core/index.d.ts), reduced to what is used here.
 */

export type RpcLogLevel = 'trace' | 'debug' | 'information' | 'warning' | 'error' | 'critical' | 'none';
export type RpcLogCategory = 'user' | 'system' | 'customMetric';

export interface RpcNullableString {
  value?: string | null;
}

export interface RpcHttpCookie {
  name?: string | null;
  value?: string | null;
  domain?: RpcNullableString | null;
  path?: RpcNullableString | null;
  expires?: { value?: { seconds?: number | null; nanos?: number | null } | null } | null;
  secure?: { value?: boolean | null } | null;
  httpOnly?: { value?: boolean | null } | null;
  sameSite?: 'none' | 'lax' | 'strict' | 'explicitNone' | null;
  maxAge?: { value?: number | null } | null;
}

export interface RpcHttpData {
  method?: string | null;
  url?: string | null;
  headers?: Record<string, string> | null;
  body?: RpcTypedData | null;
  params?: Record<string, string> | null;
  statusCode?: string | null;
  query?: Record<string, string> | null;
  enableContentNegotiation?: boolean | null;
  cookies?: RpcHttpCookie[] | null;
  nullableHeaders?: Record<string, RpcNullableString> | null;
  nullableParams?: Record<string, RpcNullableString> | null;
  nullableQuery?: Record<string, RpcNullableString> | null;
}

export interface RpcTypedData {
  string?: string | null;
  json?: string | null;
  bytes?: Uint8Array | null;
  stream?: Uint8Array | null;
  http?: RpcHttpData | null;
  int?: number | null;
  double?: number | null;
}

export interface RpcBindingInfo {
  type?: string | null;
  direction?: 'in' | 'out' | 'inout' | null;
  dataType?: string | null;
  [property: string]: unknown;
}

/** What the app passes to registerFunction. */
export interface FunctionMetadata {
  name: string;
  functionId?: string;
  bindings: Record<string, RpcBindingInfo>;
  retryOptions?: unknown;
}

/** What the worker tells the host about a function (the FunctionsMetadataResponse entry). */
export interface RpcFunctionMetadata {
  name: string;
  functionId: string;
  bindings: Record<string, RpcBindingInfo>;
  /** What the host actually reads: each binding as JSON, with its name. */
  rawBindings: string[];
  scriptFile: string;
  directory?: string;
  retryOptions?: unknown;
}

/** A function's input binding of one type (`httpTrigger`, `queueTrigger`…), with its name; binding types compare case-insensitively. */
export function inputBinding(fn: RpcFunctionMetadata, type: string): [name: string, binding: RpcBindingInfo] | undefined {
  const wanted = type.toLowerCase();
  return Object.entries(fn.bindings).find(([, binding]) => binding.direction === 'in' && binding.type?.toLowerCase() === wanted);
}

export interface RpcParameterBinding {
  name?: string | null;
  data?: RpcTypedData | null;
}

export interface RpcInvocationRequest {
  invocationId: string;
  functionId: string;
  inputData: RpcParameterBinding[];
  triggerMetadata: Record<string, RpcTypedData>;
  traceContext?: { traceParent?: string | null; traceState?: string | null; attributes?: Record<string, string> | null } | null;
  retryContext?: null;
}

export interface RpcInvocationResponse {
  invocationId?: string | null;
  outputData?: RpcParameterBinding[] | null;
  returnValue?: RpcTypedData | null;
}

export type FunctionCallback = (...args: unknown[]) => unknown;
type HookData = Record<string, unknown>;
type HookCallback = (context: object) => unknown;
type HookName = 'preInvocation' | 'postInvocation' | 'appStart' | 'appTerminate';

interface CoreInvocationContext {
  invocationId: string;
  request: RpcInvocationRequest;
  metadata: RpcFunctionMetadata;
  state?: 'preInvocationHooks' | 'postInvocationHooks' | 'invocation';
  log(level: RpcLogLevel, category: RpcLogCategory, message: string): void;
}

interface InvocationModel {
  getArguments(): Promise<{ context: unknown; inputs: unknown[] }>;
  invokeFunction(context: unknown, inputs: unknown[], callback: FunctionCallback): Promise<unknown>;
  getResponse(context: unknown, result: unknown): Promise<RpcInvocationResponse>;
}

export interface ProgrammingModel {
  name: string;
  version: string;
  getInvocationModel(context: CoreInvocationContext): InvocationModel | Promise<InvocationModel>;
  getCapabilities?(capabilities: Record<string, string>): Record<string, string> | Promise<Record<string, string>>;
}

/** One log line from the worker: the app's (`user`) or the worker's and library's (`system`). */
export interface WorkerLogEntry {
  level: RpcLogLevel;
  category: RpcLogCategory;
  message: string;
  invocationId?: string;
  functionName?: string;
}

/** The worker's Disposable (Disposable.ts, after VS Code's). */
export class Disposable {
  static from(...disposables: Array<{ dispose(): unknown }>): Disposable {
    let remaining: Array<{ dispose(): unknown }> | undefined = disposables;
    return new Disposable(() => {
      for (const disposable of remaining ?? []) disposable?.dispose?.();
      remaining = undefined;
    });
  }

  #callOnDispose: (() => unknown) | undefined;

  constructor(callOnDispose: () => unknown) {
    this.#callOnDispose = callOnDispose;
  }

  dispose(): unknown {
    const call = this.#callOnDispose;
    this.#callOnDispose = undefined;
    return call?.();
  }
}

/** errors.ts: the worker marks its own errors so @azure/functions can tell them apart. */
class AzFuncSystemError extends Error {
  readonly isAzureFunctionsSystemError = true;
}
class AzFuncRangeError extends RangeError {
  readonly isAzureFunctionsSystemError = true;
}
class ReadOnlyError extends TypeError {
  readonly isAzureFunctionsSystemError = true;
  constructor(property: string) {
    super(`Cannot assign to read only property '${property}'`);
  }
}

/** The version of the Node worker whose behaviour this follows. */
export const WORKER_VERSION = '3.9.1';
/** What `hostVersion` reports: a 4.x host, marked as the local stand-in. */
export const LOCAL_HOST_VERSION = '4.0.0-local';

/** getWorkerCapabilities.ts: what the worker tells the host it handles. */
const WORKER_CAPABILITIES: Record<string, string> = {
  RawHttpBodyBytes: 'true',
  RpcHttpTriggerMetadataRemoved: 'true',
  RpcHttpBodyOnly: 'true',
  IgnoreEmptyValuedRpcHttpHeaders: 'true',
  UseNullableValueDictionaryForHttp: 'true',
  WorkerStatus: 'true',
  TypedDataCollection: 'true',
  HandlesWorkerTerminateMessage: 'true',
};

interface PackageJson {
  main?: string;
  type?: string;
}

/** parsePackageJson.ts: only `main` and `type`, each ignored unless it is a string. */
function readPackageJson(directory: string): PackageJson {
  const data: unknown = JSON.parse(readFileSync(path.join(directory, 'package.json'), 'utf8'));
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new AzFuncSystemError('file content is not an object');
  const record = data as Record<string, unknown>;
  return {
    ...(typeof record['main'] === 'string' ? { main: record['main'] } : {}),
    ...(typeof record['type'] === 'string' ? { type: record['type'] } : {}),
  };
}

function isESModule(file: string, packageJson: PackageJson): boolean {
  if (file.endsWith('.mjs')) return true;
  if (file.endsWith('.cjs')) return false;
  return packageJson.type === 'module';
}

function describe(error: unknown): Error {
  return error instanceof Error ? error : new Error(typeof error === 'string' ? error : (JSON.stringify(error) ?? 'Unknown error'));
}

const CORE_MODULE = '@azure/functions-core';

/**
 * The worker's state for one app (AppContext.ts): the functions and hooks it registered, its
 * programming model, and the module it sees as `@azure/functions-core`. One per process, as the
 * module is answered for every `require` in the process.
 */
/** A hook context's property the app may read and never set, as the library's contexts enforce. */
function readOnly(name: string, value: unknown): PropertyDescriptor {
  return {
    get: () => value,
    set: () => {
      throw new ReadOnlyError(name);
    },
    enumerable: true,
  };
}

export class FunctionsWorker {
  readonly functions = new Map<string, { metadata: RpcFunctionMetadata; callback: FunctionCallback }>();
  readonly #hooks: Record<HookName, HookCallback[]> = {
    preInvocation: [],
    postInvocation: [],
    appStart: [],
    appTerminate: [],
  };
  readonly #appHookData: HookData = {};
  readonly #appLevelOnlyHookData: HookData = {};
  readonly #log: (entry: WorkerLogEntry) => void;
  #programmingModel: ProgrammingModel | undefined;
  #indexingLocked = false;
  #currentEntryPoint: string | undefined;
  #blockingAppStartError: Error | undefined;
  #uninstall: (() => void) | undefined;

  /** The module object apps get from `require('@azure/functions-core')`. */
  readonly coreApi: Record<string, unknown>;

  constructor(options: { log: (entry: WorkerLogEntry) => void; hostVersion?: string }) {
    this.#log = options.log;
    const hostVersion = options.hostVersion ?? LOCAL_HOST_VERSION;
    this.coreApi = {
      version: WORKER_VERSION,
      hostVersion,
      registerHook: (hookName: string, callback: HookCallback) => this.#registerHook(hookName, callback),
      setProgrammingModel: (model: ProgrammingModel) => this.#setProgrammingModel(model),
      getProgrammingModel: () => this.#programmingModel,
      log: (level: RpcLogLevel, category: RpcLogCategory, message: string) => this.#log({ level, category, message }),
      registerFunction: (metadata: FunctionMetadata, callback: FunctionCallback) => this.#registerFunction(metadata, callback),
      Disposable,
    };
  }

  /** setupCoreModule.ts: from now on `require('@azure/functions-core')` anywhere in the process answers coreApi. */
  install(): void {
    if (this.#uninstall) return;
    const original = Module.prototype.require;
    const coreApi = this.coreApi;
    Module.prototype.require = new Proxy(original, {
      apply(target, thisArg, argArray: unknown[]) {
        return argArray[0] === CORE_MODULE ? coreApi : Reflect.apply(target, thisArg, argArray);
      },
    });
    this.#uninstall = () => {
      Module.prototype.require = original;
      this.#uninstall = undefined;
    };
  }

  uninstall(): void {
    this.#uninstall?.();
  }

  #registerHook(hookName: string, callback: HookCallback): Disposable {
    if (!(hookName in this.#hooks)) {
      // getHooks.ts; @azure/functions turns this into "Log hooks require Azure Functions Host v4.34 or higher."
      throw new AzFuncRangeError(`Unrecognized hook "${hookName}"`);
    }
    const hooks = this.#hooks[hookName as HookName];
    hooks.push(callback);
    return new Disposable(() => {
      const index = hooks.indexOf(callback);
      if (index > -1) hooks.splice(index, 1);
    });
  }

  #setProgrammingModel(model: ProgrammingModel): void {
    if (this.#programmingModel) {
      this.#log({
        level: 'information',
        category: 'system',
        message: `Setting Node.js programming model to "${model.name}" version "${model.version}"`,
      });
    }
    this.#programmingModel = model;
  }

  #registerFunction(metadata: FunctionMetadata, callback: FunctionCallback): Disposable {
    if (this.#indexingLocked) throw new AzFuncSystemError('A function can only be registered during app startup.');
    const functionId = metadata.functionId || metadata.name;
    if (this.functions.has(functionId)) throw new AzFuncSystemError(`A function with id "${functionId}" has already been registered.`);
    const entry = this.#currentEntryPoint;
    this.functions.set(functionId, {
      metadata: {
        name: metadata.name,
        functionId,
        bindings: metadata.bindings,
        // registerFunction.ts: "`rawBindings` is what's actually used by the host".
        rawBindings: Object.entries(metadata.bindings).map(([name, binding]) => JSON.stringify({ ...binding, name })),
        scriptFile: entry ? path.basename(entry) : 'unknown',
        ...(entry ? { directory: path.dirname(entry) } : {}),
        ...(metadata.retryOptions === undefined ? {} : { retryOptions: metadata.retryOptions }),
      },
      callback,
    });
    return new Disposable(() => {
      if (this.#indexingLocked) throw new AzFuncSystemError('A function can only be disposed during app startup.');
      this.functions.delete(functionId);
    });
  }

  /**
   * startApp.ts: loads the app's entry points (package.json `main`), then any `extraEntryPoints`
   * (absolute paths; the local host's tests add handlers this way), then runs the appStart hooks.
   */
  async startApp(functionAppDirectory: string, extraEntryPoints: string[] = []): Promise<void> {
    let packageJson: PackageJson = {};
    try {
      packageJson = readPackageJson(functionAppDirectory);
    } catch (error) {
      this.#log({ level: 'warning', category: 'system', message: `Worker failed to load package.json: ${describe(error).message}` });
    }
    const load = createRequire(path.join(functionAppDirectory, 'package.json'));
    let current: string | undefined;
    try {
      const files: string[] = [];
      if (packageJson.main) {
        files.push(...entryPointFiles(packageJson.main, functionAppDirectory).map((file) => path.join(functionAppDirectory, file)));
        if (files.length === 0)
          throw new AzFuncSystemError(
            /[*?[{]/.test(packageJson.main) ? 'Found zero files matching the supplied pattern' : 'File does not exist',
          );
      }
      files.push(...extraEntryPoints);
      for (const file of files) {
        current = file;
        this.#currentEntryPoint = file;
        try {
          if (isESModule(file, packageJson)) await import(pathToFileURL(file).href);
          else load(file);
        } finally {
          this.#currentEntryPoint = undefined;
        }
      }
    } catch (error) {
      // Node 20 and later: a file that cannot load blocks the app (startApp.ts shouldBlockOnEntryPointError).
      const blocking = describe(error);
      blocking.message = `Worker was unable to load entry point "${current ? path.relative(functionAppDirectory, current) : packageJson.main}": ${blocking.message}`;
      this.#blockingAppStartError = blocking;
    }
    await this.#executeHooks('appStart', this.#appContext({ functionAppDirectory }));
  }

  /**
   * getWorkerCapabilities.ts then FunctionsMetadataHandler.ts: the programming model gives its
   * capabilities (and @azure/functions locks `app.setup`), registration is locked, and the host
   * gets the functions, or the error that blocked the app.
   */
  async indexFunctions(): Promise<{ functions: RpcFunctionMetadata[]; capabilities: Record<string, string> }> {
    let capabilities = { ...WORKER_CAPABILITIES };
    if (this.#programmingModel?.getCapabilities) capabilities = await this.#programmingModel.getCapabilities(capabilities);
    this.#indexingLocked = true;
    if (this.#blockingAppStartError) throw this.#blockingAppStartError;
    return { functions: [...this.functions.values()].map((entry) => entry.metadata), capabilities };
  }

  /** InvocationHandler.ts. Resolves with the response; rejects with what the function threw. */
  async invoke(request: RpcInvocationRequest): Promise<RpcInvocationResponse> {
    const registered = this.functions.get(request.functionId);
    if (!registered) throw new AzFuncSystemError(`Function code for '${request.functionId}' is not loaded and cannot be invoked.`);
    const { metadata } = registered;
    let callback = registered.callback;
    const log = this.#log;
    const core: CoreInvocationContext = {
      invocationId: request.invocationId,
      request,
      metadata,
      log(level, category, message) {
        log({ level, category, message, invocationId: request.invocationId, functionName: metadata.name });
      },
    };
    const programmingModel = this.#programmingModel;
    if (!programmingModel)
      throw new AzFuncSystemError(
        'The app set no programming model: it must use @azure/functions (v4), which sets one when it registers a function.',
      );
    const model = await programmingModel.getInvocationModel(core);
    const hookData: HookData = {};
    const args = await model.getArguments();
    const context = args.context;
    let inputs = args.inputs;

    const preContext = this.#invocationContext(hookData, context, { functionCallback: callback, inputs });
    core.state = 'preInvocationHooks';
    try {
      await this.#executeHooks('preInvocation', preContext);
    } finally {
      core.state = undefined;
    }
    inputs = preContext['inputs'] as unknown[];
    callback = preContext['functionCallback'] as FunctionCallback;

    const postContext = this.#invocationContext(hookData, context, { inputs, result: null, error: null });
    core.state = 'invocation';
    try {
      postContext['result'] = await model.invokeFunction(context, inputs, callback);
    } catch (error) {
      postContext['error'] = error;
    } finally {
      core.state = undefined;
    }
    core.state = 'postInvocationHooks';
    try {
      await this.#executeHooks('postInvocation', postContext);
    } finally {
      core.state = undefined;
    }
    // errors.ts `isError`: anything thrown, whatever it is, fails the invocation.
    if (postContext['error'] !== null && postContext['error'] !== undefined) throw postContext['error'];
    return await model.getResponse(context, postContext['result']);
  }

  /** terminateWorker.ts: the appTerminate hooks, before the worker exits. */
  async terminate(): Promise<void> {
    await this.#executeHooks('appTerminate', this.#appContext({}));
  }

  async #executeHooks(name: HookName, context: object): Promise<void> {
    for (const callback of [...this.#hooks[name]]) await callback(context);
  }

  #appContext(extra: Record<string, unknown>): object {
    const appLevelOnly = this.#appLevelOnlyHookData;
    const app = this.#appHookData;
    return Object.defineProperties(
      { ...extra },
      {
        hookData: readOnly('hookData', appLevelOnly),
        appHookData: readOnly('appHookData', app),
      },
    );
  }

  #invocationContext(hookData: HookData, invocationContext: unknown, fields: Record<string, unknown>): Record<string, unknown> {
    const app = this.#appHookData;
    return Object.defineProperties(
      { ...fields },
      {
        hookData: readOnly('hookData', hookData),
        appHookData: readOnly('appHookData', app),
        invocationContext: readOnly('invocationContext', invocationContext),
      },
    ) as Record<string, unknown>;
  }
}
