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

/** An error for a log line: its type and message, bounded; never its stack. */
export function describeError(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`.slice(0, 500);
  return 'unknown error';
}

/** A log whose every line also carries `properties` (an event's identifiers, say). */
export function logWith(log: EventLog, properties: LogProperties): EventLog {
  return {
    info: (message, more) => log.info(message, { ...properties, ...more }),
    warn: (message, more) => log.warn(message, { ...properties, ...more }),
    error: (message, more) => log.error(message, { ...properties, ...more }),
  };
}
