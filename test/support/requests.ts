import { HttpRequest, InvocationContext, type LogLevel } from '@azure/functions';
import { FUNCTION_NAMES, LOCAL_WEBHOOK_URL } from '../../src/functionNames';

export const FUNCTION_URL = LOCAL_WEBHOOK_URL;

/** Headers Dataverse sends with every webhook, as in a real request. */
export function dataverseHeaders(overrides: Record<string, string> = {}): Record<string, string> {
  return {
    'content-type': 'application/json',
    'x-ms-dynamics-organization': 'contoso.crm.dynamics.com',
    'x-ms-dynamics-entity-name': 'contact',
    'x-ms-dynamics-request-name': 'Update',
    'x-ms-correlation-request-id': '5bb3f2b0-7a9b-4f5e-9c52-1f3c0e7f0d11',
    ...overrides,
  };
}

/** A real @azure/functions HttpRequest, built the way the host builds one. */
export function webhookRequest(
  body: Buffer | string,
  options: { method?: string; headers?: Record<string, string>; query?: string } = {},
): HttpRequest {
  return new HttpRequest({
    method: options.method ?? 'POST',
    url: `${FUNCTION_URL}${options.query ?? '?code=function-key'}`,
    body: typeof body === 'string' ? { string: body } : { bytes: body },
    headers: options.headers ?? dataverseHeaders(),
  });
}

export interface CapturedLogs {
  context: InvocationContext;
  lines: Array<{ level: LogLevel; text: string }>;
  text(): string;
}

/** A real InvocationContext whose log lines are captured. */
export function invocationContext(functionName: string = FUNCTION_NAMES.webhook): CapturedLogs {
  const lines: Array<{ level: LogLevel; text: string }> = [];
  const context = new InvocationContext({
    functionName,
    invocationId: `test-${Math.random().toString(16).slice(2)}`,
    logHandler: (level, ...args) => lines.push({ level, text: args.map(String).join(' ') }),
  });
  return { context, lines, text: () => lines.map((line) => line.text).join('\n') };
}
