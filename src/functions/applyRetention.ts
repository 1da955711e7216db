import { app, type InvocationContext, type Timer } from '@azure/functions';
import { FUNCTION_NAMES } from '../functionNames';
import { INVOCATION_BUDGET_MS } from '../hostConfig';
import { invocationLog } from '../observability/log';
import { telemetry } from '../observability/telemetry';
import { applyRetention } from '../pipeline/retention';
import { retentionSettings } from '../settings';
import { getStorageClients } from '../storage/clients';

/** Every hour, at 17 minutes past (NCRONTAB: second minute hour day month day-of-week, UTC). */
export const RETENTION_SCHEDULE = '0 17 * * * *';
/** What a run leaves itself below its invocation budget for the deletes already in flight. */
export const RETENTION_MARGIN_MS = 30_000;

export async function applyRetentionNow(_timer: Timer, context: InvocationContext): Promise<void> {
  const started = Date.now();
  // A bad RETENTION_DAYS throws: the run fails, is logged, and deletes nothing.
  await applyRetention({
    storage: getStorageClients(),
    settings: retentionSettings(),
    deadline: started + INVOCATION_BUDGET_MS - RETENTION_MARGIN_MS,
    log: invocationLog(context),
    telemetry: telemetry(),
  });
}

// A timer function runs on one instance at a time (the timer extension's TimerListener.cs is
// `[Singleton(Mode = SingletonMode.Listener)]`, a lock the host holds in storage) and one invocation
// after another; a run that is cut short, or overlaps another all the same (a lock lost, the local
// host, the CLI), is harmless (see storage/retention.ts).
app.timer(FUNCTION_NAMES.applyRetention, {
  schedule: RETENTION_SCHEDULE,
  runOnStartup: false,
  useMonitor: true,
  handler: applyRetentionNow,
});
