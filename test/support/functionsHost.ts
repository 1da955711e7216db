import Module from 'node:module';

/**
 * Stands in for the Functions host's worker API (`@azure/functions-core`), which only exists inside
 * the host. Without it @azure/functions runs in "test mode" and skips registrations; with it, the
 * function files register exactly as they do under the host, and the test sees the metadata the
 * host would receive: trigger types, auth level, methods, routes, queue names, connections.
 */

export interface RegisteredBinding {
  type: string;
  direction: 'in' | 'out';
  [property: string]: unknown;
}

export interface RegisteredFunction {
  name: string;
  bindings: Record<string, RegisteredBinding>;
  handler: (...args: unknown[]) => unknown;
}

export interface FakeFunctionsHost {
  functions: RegisteredFunction[];
  /** The app's hooks by name (appStart, appTerminate, preInvocation, postInvocation). */
  hooks: Record<string, Array<(context: unknown) => unknown>>;
  byName(name: string): RegisteredFunction;
  trigger(name: string): RegisteredBinding;
}

const CORE_MODULE = '@azure/functions-core';
const FAKE_PATH = '/virtual/azure-functions-core.js';

export function installFakeFunctionsHost(): FakeFunctionsHost {
  const functions: RegisteredFunction[] = [];
  const hooks: FakeFunctionsHost['hooks'] = {};
  const core = {
    version: '4.0.0-test',
    hostVersion: '4.0.0-test',
    setProgrammingModel: () => undefined,
    getProgrammingModel: () => undefined,
    registerHook: (name: string, callback: (context: unknown) => unknown) => {
      (hooks[name] ??= []).push(callback);
      return { dispose: () => undefined };
    },
    registerFunction: (metadata: { name: string; bindings: Record<string, RegisteredBinding> }, handler: RegisteredFunction['handler']) => {
      functions.push({ name: metadata.name, bindings: metadata.bindings, handler });
      return { dispose: () => undefined };
    },
    log: () => undefined,
  };

  const moduleInternals = Module as unknown as {
    _resolveFilename: (request: string, ...rest: unknown[]) => string;
    _cache: Record<string, Module>;
  };
  const resolve = moduleInternals._resolveFilename;
  moduleInternals._resolveFilename = function (request: string, ...rest: unknown[]) {
    return request === CORE_MODULE ? FAKE_PATH : resolve.call(this, request, ...rest);
  };
  const fake = new Module(FAKE_PATH);
  fake.exports = core;
  fake.loaded = true;
  moduleInternals._cache[FAKE_PATH] = fake;

  return {
    functions,
    hooks,
    byName(name) {
      const found = functions.find((candidate) => candidate.name === name);
      if (!found) throw new Error(`no function registered as ${name}; registered: ${functions.map((f) => f.name).join(', ')}`);
      return found;
    },
    trigger(name) {
      const found = Object.values(this.byName(name).bindings).find((binding) => binding.direction === 'in' && binding.type.endsWith('Trigger'));
      if (!found) throw new Error(`${name} has no trigger binding`);
      return found;
    },
  };
}
