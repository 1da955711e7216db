import { app, type InvocationContext, type Timer } from '@azure/functions';
import { FUNCTION_NAMES } from '../functionNames';
import { invocationLog } from '../observability/log';
import { telemetry } from '../observability/telemetry';
import { emitBacklog, readBacklog } from '../pipeline/backlog';
import { getStorageClients } from '../storage/clients';

/** Every minute (NCRONTAB), so the queue-age alert looks at a figure at most a minute old. */
export const BACKLOG_SCHEDULE = '0 * * * * *';

export async function monitorBacklogNow(_timer: Timer, context: InvocationContext): Promise<void> {
  const backlog = await readBacklog(getStorageClients());
  emitBacklog(backlog, telemetry());
  if (backlog.events.oldestAgeSeconds > 0 || backlog.failures > 0) {
    invocationLog(context).info('Backlog', {
      queued: backlog.events.length,
      oldestAgeSeconds: backlog.events.oldestAgeSeconds,
      poisonQueued: backlog.poison.length,
      failures: backlog.failures,
    });
  }
}

app.timer(FUNCTION_NAMES.monitorBacklog, {
  schedule: BACKLOG_SCHEDULE,
  runOnStartup: false,
  useMonitor: true,
  handler: monitorBacklogNow,
});
