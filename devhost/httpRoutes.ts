import { inputBinding, type RpcFunctionMetadata } from './functionsCore';

/**
 * HTTP routing as the Functions host does it: each HTTP-triggered function has a route template
 * (its `route`, or its name) under host.json's `extensions.http.routePrefix`, and the methods it
 * accepts (all when it lists none). Templates are ASP.NET Core route templates: literal segments
 * (matched without regard to case), `{name}`, `{name?}`, `{name=default}`, `{*rest}`, and
 * constraints such as `{id:int}`. Two functions may share a template when their methods differ;
 * a request whose path matches a template but whose method none of its functions accepts gets 404,
 * as does a path no template matches. Function keys (`authLevel`) are not checked, as under
 * `func start`.
 */

export interface HttpFunction {
  functionId: string;
  functionName: string;
  /** The trigger binding's name: the request is the input of that name. */
  triggerName: string;
  /** The name of the `http` output binding (`$return` for the return value), or null. */
  outputName: string | null;
  /** Upper-case methods, or null for every method. */
  methods: string[] | null;
  template: string;
  authLevel: string;
  segments: RouteSegment[];
}

type RouteSegment =
  | { kind: 'literal'; text: string }
  | { kind: 'parameter'; name: string; optional: boolean; catchAll: boolean; defaultValue: string | undefined; constraints: string[] };

export class RouteTemplateError extends Error {
  override readonly name = 'RouteTemplateError';
}

export function parseRouteTemplate(template: string): RouteSegment[] {
  const trimmed = template.replace(/^[~/]+|\/+$/g, '');
  if (trimmed === '') return [];
  return trimmed.split('/').map((segment) => {
    const parameter = /^\{(\*{1,2})?([^{}:=?*]+)((?::[^{}=?]+?)*)(?:=([^{}]*))?(\?)?\}$/.exec(segment);
    if (parameter) {
      const [, star, name, constraints = '', defaultValue, optional] = parameter;
      return {
        kind: 'parameter',
        name: name!,
        optional: Boolean(optional) || defaultValue !== undefined,
        catchAll: Boolean(star),
        defaultValue,
        constraints: constraints.split(':').filter(Boolean),
      };
    }
    if (/[{}]/.test(segment))
      throw new RouteTemplateError(
        `The route "${template}" has a segment the local host cannot read: "${segment}" (a parameter must be a whole segment)`,
      );
    return { kind: 'literal', text: segment };
  });
}

/** The route constraints ASP.NET Core knows by name; an unknown one matches anything. */
function satisfies(value: string, constraint: string): boolean {
  const [name, argument] = /^(\w+)(?:\((.*)\))?$/.exec(constraint)?.slice(1) ?? [constraint, undefined];
  const numbers = (argument ?? '').split(',').map(Number);
  switch (name?.toLowerCase()) {
    case 'int':
    case 'long':
      return /^-?\d+$/.test(value);
    case 'bool':
      return /^(true|false)$/i.test(value);
    case 'guid':
      return /^[{(]?[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}[)}]?$/i.test(value);
    case 'alpha':
      return /^[a-z]+$/i.test(value);
    case 'double':
    case 'float':
    case 'decimal':
      return value.trim() !== '' && Number.isFinite(Number(value));
    case 'datetime':
      return !Number.isNaN(Date.parse(value));
    case 'minlength':
      return value.length >= numbers[0]!;
    case 'maxlength':
      return value.length <= numbers[0]!;
    case 'length':
      return numbers.length === 1 ? value.length === numbers[0] : value.length >= numbers[0]! && value.length <= numbers[1]!;
    case 'min':
      return Number(value) >= numbers[0]!;
    case 'max':
      return Number(value) <= numbers[0]!;
    case 'range':
      return Number(value) >= numbers[0]! && Number(value) <= numbers[1]!;
    case 'regex':
      return new RegExp(argument ?? '', 'i').test(value);
    default:
      return true;
  }
}

/** The route parameters when the path's segments match the template, else null. */
export function matchTemplate(segments: RouteSegment[], path: string[]): Record<string, string> | null {
  const params: Record<string, string> = {};
  for (let index = 0; index < segments.length; index++) {
    const segment = segments[index]!;
    const value = path[index];
    if (segment.kind === 'literal') {
      if (value === undefined || value.toLowerCase() !== segment.text.toLowerCase()) return null;
      continue;
    }
    if (segment.catchAll) {
      const rest = path.slice(index).join('/');
      if (rest !== '') {
        if (!segment.constraints.every((constraint) => satisfies(rest, constraint))) return null;
        params[segment.name] = rest;
      } else if (segment.defaultValue !== undefined) {
        params[segment.name] = segment.defaultValue;
      }
      return params;
    }
    if (value === undefined || value === '') {
      if (!segment.optional) return null;
      if (segment.defaultValue !== undefined) params[segment.name] = segment.defaultValue;
      continue;
    }
    if (!segment.constraints.every((constraint) => satisfies(value, constraint))) return null;
    params[segment.name] = value;
  }
  return path.length <= segments.length ? params : null;
}

/** ASP.NET Core's route precedence: literals before constrained parameters before parameters before catch-alls. */
function precedence(segments: RouteSegment[]): number[] {
  return segments.map((segment) => (segment.kind === 'literal' ? 1 : segment.catchAll ? 5 : segment.constraints.length > 0 ? 2 : 3));
}

function compareRoutes(a: HttpFunction, b: HttpFunction): number {
  const [pa, pb] = [precedence(a.segments), precedence(b.segments)];
  for (let index = 0; index < Math.max(pa.length, pb.length); index++) {
    const difference = (pa[index] ?? 0) - (pb[index] ?? 0);
    if (difference !== 0) return difference;
  }
  return 0;
}

/** The HTTP-triggered functions of the app, from what the worker registered. */
export function httpFunctions(functions: RpcFunctionMetadata[]): HttpFunction[] {
  const routes: HttpFunction[] = [];
  for (const fn of functions) {
    const trigger = inputBinding(fn, 'httpTrigger');
    if (!trigger) continue;
    const [triggerName, binding] = trigger;
    const output = Object.entries(fn.bindings).find(
      ([, candidate]) => candidate.direction === 'out' && candidate.type?.toLowerCase() === 'http',
    );
    const methods =
      Array.isArray(binding['methods']) && binding['methods'].length > 0
        ? (binding['methods'] as unknown[]).map((method) => String(method).toUpperCase())
        : null;
    const template = typeof binding['route'] === 'string' && binding['route'] !== '' ? binding['route'] : fn.name;
    routes.push({
      functionId: fn.functionId,
      functionName: fn.name,
      triggerName,
      outputName: output ? output[0] : null,
      methods,
      template,
      authLevel: typeof binding['authLevel'] === 'string' ? binding['authLevel'] : 'function',
      segments: parseRouteTemplate(template),
    });
  }
  return routes.sort(compareRoutes);
}

export type RouteMatch = { route: HttpFunction; params: Record<string, string> } | null;

/** The function for a request, or null (404). `pathname` is the URL's path, still percent-encoded. */
export function matchHttpRequest(routes: HttpFunction[], routePrefix: string, method: string, pathname: string): RouteMatch {
  let path: string[];
  try {
    path = pathname
      .split('/')
      .filter((segment, index, all) => segment !== '' || (index > 0 && index < all.length - 1))
      .map(decodeURIComponent);
  } catch {
    return null;
  }
  const prefix = routePrefix.split('/').filter(Boolean);
  for (let index = 0; index < prefix.length; index++) {
    if (path[index]?.toLowerCase() !== prefix[index]!.toLowerCase()) return null;
  }
  const rest = path.slice(prefix.length);
  const upper = method.toUpperCase();
  for (const route of routes) {
    if (route.methods && !route.methods.includes(upper)) continue;
    const params = matchTemplate(route.segments, rest);
    if (params) return { route, params };
  }
  return null;
}

/** What func start prints for an HTTP function: `[POST] http://localhost:7071/api/route`. */
export function describeHttpFunction(route: HttpFunction, baseUrl: string, routePrefix: string): string {
  const methods = route.methods ? route.methods.join(',') : 'GET,POST,PUT,PATCH,DELETE,HEAD,OPTIONS,TRACE';
  const path = [routePrefix, route.template.replace(/^[~/]+/, '')].filter(Boolean).join('/');
  return `[${methods}] ${baseUrl}/${path}`;
}
