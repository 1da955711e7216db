import { readFileSync } from 'node:fs';
import { SourceMap } from 'node:module';
import path from 'node:path';
import type { InvocationContext } from '@azure/functions';

/** Identifiers only: never a payload value (payloads hold customer data). */
export type LogProperties = Record<string, string | number | boolean | null | undefined>;

export interface EventLog {
  info(message: string, properties?: LogProperties): void;
  warn(message: string, properties?: LogProperties): void;
  error(message: string, properties?: LogProperties): void;
}

function line(message: string, properties: LogProperties | undefined): string {
  if (!properties) return message;
  const defined = Object.entries(properties).filter(([, value]) => value !== undefined && value !== null);
  return defined.length === 0 ? message : `${message} ${defined.map(([key, value]) => `${key}=${value}`).join(' ')}`;
}

/** Writes through the invocation's logger, so the host correlates each line with its invocation. */
export function invocationLog(context: InvocationContext): EventLog {
  return {
    info: (message, properties) => context.log(line(message, properties)),
    warn: (message, properties) => context.warn(line(message, properties)),
    error: (message, properties) => context.error(line(message, properties)),
  };
}

export const silentLog: EventLog = { info: () => {}, warn: () => {}, error: () => {} };

/**
 * An error for a log line: its type and message, bounded, and, when a user's handler threw it (or
 * called what threw), the handler's own line: `Error: boom (src/handlers/contactChanges.ts:12:11)`.
 * Never the rest of its stack: the engine's frames say nothing a user can act on.
 */
export function describeError(error: unknown): string {
  if (!(error instanceof Error)) return 'unknown error';
  const text = `${error.name}: ${error.message}`.slice(0, 500);
  const frame = handlerFrame(error);
  return frame && !text.includes(`(${frame})`) ? `${text} (${frame})` : text;
}

/** A stack frame's file, line and column: `at fn (/app/dist/src/handlers/x.js:10:5)`, `at /app/src/handlers/x.ts:3:9`. */
const FRAME = /^\s*at (?:.*?\()?(?:file:\/\/)?((?:[A-Za-z]:)?[\\/][^():]*?):(\d+):(\d+)\)?\s*$/;
const HANDLERS = `${path.sep}src${path.sep}handlers${path.sep}`;

/**
 * The first frame of an error's stack in the user's handlers (src/handlers, less its tests), as the
 * source file a user edits and its line: a built file (dist/src/handlers/x.js) is mapped back to
 * its TypeScript through the source map the build writes beside it. Null when no handler is on
 * the stack.
 */
export function handlerFrame(error: Error): string | null {
  let stack: string;
  try {
    stack = String(error.stack ?? '');
  } catch {
    return null;
  }
  for (const frame of stack.split('\n').slice(1, 50)) {
    const match = FRAME.exec(frame);
    if (!match) continue;
    const file = match[1]!.split(/[\\/]/).join(path.sep);
    const at = file.lastIndexOf(HANDLERS);
    if (at < 0 || /\.test\.[cm]?[jt]s$/.test(file) || file.includes(`${path.sep}node_modules${path.sep}`)) continue;
    const line = Number(match[2]);
    const column = Number(match[3]);
    const above = file.slice(0, at);
    // Built: <root>/dist/src/handlers/x.js, mapped to its source; run from source: <root>/src/handlers/x.ts.
    if (path.basename(above) === 'dist' && /\.[cm]?js$/.test(file)) {
      const original = mapped(file, line, column);
      if (original) return `${relative(path.dirname(above), original.file)}:${original.line}:${original.column}`;
    }
    return `${relative(above, file)}:${line}:${column}`;
  }
  return null;
}

const relative = (root: string, file: string) => path.relative(root, file).split(path.sep).join('/');

const sourceMaps = new Map<string, SourceMap | null>();

/** A built file's line and column (1-based) in its TypeScript source, through `<file>.map`; null without one. */
function mapped(file: string, line: number, column: number): { file: string; line: number; column: number } | null {
  let map = sourceMaps.get(file);
  if (map === undefined) {
    try {
      map = new SourceMap(JSON.parse(readFileSync(`${file}.map`, 'utf8')));
    } catch {
      map = null;
    }
    if (sourceMaps.size > 100) sourceMaps.clear();
    sourceMaps.set(file, map);
  }
  const entry = map?.findEntry(line - 1, column - 1);
  if (!entry || !('originalSource' in entry) || !entry.originalSource) return null;
  const source = entry.originalSource.startsWith('file://') ? new URL(entry.originalSource).pathname : entry.originalSource;
  return { file: path.resolve(path.dirname(file), source), line: entry.originalLine + 1, column: entry.originalColumn + 1 };
}

/** A log whose every line also carries `properties` (an event's identifiers, say). */
export function logWith(log: EventLog, properties: LogProperties): EventLog {
  return {
    info: (message, more) => log.info(message, { ...properties, ...more }),
    warn: (message, more) => log.warn(message, { ...properties, ...more }),
    error: (message, more) => log.error(message, { ...properties, ...more }),
  };
}
