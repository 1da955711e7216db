import { app } from '@azure/functions';
import { appHandlers, HandlerLoadError, handlerLoadLine } from './handlerApi/load';
import { handlerFiles } from './handlers';
import { continueHostTrace, shutdownTelemetry, startTelemetry } from './observability/telemetry';
import { checkSettings } from './settings';

// App-wide setup, loaded by the host before any function file (package.json "main").
// Telemetry first: the SDK must be in place before any invocation for its items to correlate.
if (startTelemetry().enabled) app.hook.preInvocation(continueHostTrace);
app.setup({ enableHttpStream: false });

/**
 * Settings are checked once, as the worker starts: each bad one is named here (never its value),
 * and the work that needs it then fails without losing anything (503 to Dataverse, a queue retry).
 * The worker sends what the app writes to stderr to the host's logs as errors.
 */
function reportSettingProblems(
  env: NodeJS.ProcessEnv = process.env,
  write: (line: string) => void = (line) => process.stderr.write(`${line}\n`),
): string[] {
  const problems = checkSettings(env);
  for (const problem of problems) write(`dataverse-webhooks: invalid app setting ${problem}`);
  return problems;
}
app.hook.appStart(() => {
  reportSettingProblems();
  // A declaration the registry refuses: one line naming its file, the handler and the reason.
  const handlers = appHandlers(handlerFiles);
  if (handlers instanceof HandlerLoadError) process.stderr.write(`${handlerLoadLine(handlers)}\n`);
});

// Scale-in and restarts end the worker: what telemetry still buffers is sent first.
app.hook.appTerminate(async () => {
  await shutdownTelemetry();
});
