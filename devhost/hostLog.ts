import type { RpcLogLevel } from './functionsCore';

/**
 * The local host's console output, in func start's shape: a UTC timestamp in brackets, then
 * `Executing 'Functions.<name>' (Reason='…', Id=<invocation id>)`, the app's lines, and
 * `Executed 'Functions.<name>' (Succeeded|Failed, Id=…, Duration=…ms)`. Unlike func, every line
 * the app logs also carries its function's name and the first 8 characters of the invocation id,
 * so that interleaved invocations can be told apart.
 */

const LEVELS: RpcLogLevel[] = ['trace', 'debug', 'information', 'warning', 'error', 'critical', 'none'];

/** func shows the app's Information lines and up, and the system's Warning lines and up. */
const USER_MIN: RpcLogLevel = 'information';
const SYSTEM_MIN: RpcLogLevel = 'warning';

const atLeast = (level: RpcLogLevel, minimum: RpcLogLevel) => LEVELS.indexOf(level) >= LEVELS.indexOf(minimum) && level !== 'none';

export interface HostLog {
  /** Text as it is, without a timestamp (the list of functions at start-up). */
  plain(text: string): void;
  line(text: string): void;
  system(level: RpcLogLevel, text: string): void;
  user(functionName: string, invocationId: string, level: RpcLogLevel, text: string): void;
  executing(functionName: string, invocationId: string, reason: string): void;
  executed(functionName: string, invocationId: string, durationMs: number, error?: { name: string; message: string; stack?: string }): void;
}

export function hostLog(write: (text: string) => void, now: () => Date = () => new Date()): HostLog {
  const emit = (text: string) => {
    const stamp = `[${now().toISOString()}] `;
    write(
      `${text
        .split('\n')
        .map((line) => `${stamp}${line}`)
        .join('\n')}\n`,
    );
  };
  return {
    plain: (text) => write(`${text}\n`),
    line: emit,
    system: (level, text) => {
      if (atLeast(level, SYSTEM_MIN)) emit(text);
    },
    user: (functionName, invocationId, level, text) => {
      if (atLeast(level, USER_MIN))
        emit(`[${functionName} ${invocationId.slice(0, 8)}] ${level === 'information' ? '' : `${level}: `}${text}`);
    },
    executing: (functionName, invocationId, reason) =>
      emit(`Executing 'Functions.${functionName}' (Reason='${reason}', Id=${invocationId})`),
    executed: (functionName, invocationId, durationMs, error) => {
      emit(
        `Executed 'Functions.${functionName}' (${error ? 'Failed' : 'Succeeded'}, Id=${invocationId}, Duration=${Math.round(durationMs)}ms)`,
      );
      if (error) {
        const stack = error.stack?.includes(error.message) ? error.stack : `${error.name}: ${error.message}`;
        emit(
          `Exception while executing function: Functions.${functionName}. Result: Failure\nException: ${error.message}\nStack: ${stack}`,
        );
      }
    },
  };
}
