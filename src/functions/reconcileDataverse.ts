import { app, type InvocationContext, type Timer } from '@azure/functions';
import { getDataverseClient } from '../dataverseApi';
import { FUNCTION_NAMES } from '../functionNames';
import { appHandlers, HandlerLoadError } from '../handlerApi/load';
import { handlerFiles } from '../handlers';
import { INVOCATION_BUDGET_MS } from '../hostConfig';
import { invocationLog } from '../observability/log';
import { telemetry } from '../observability/telemetry';
import { reconcileNow } from '../pipeline/reconcile/run';
import { processSettings, reconcileSettings } from '../settings';
import { getStorageClients } from '../storage/clients';

/**
 * Every minute (NCRONTAB): each tick asks whether a run is due (RECONCILE_INTERVAL since the last
 * one started, whichever instance ran it) and takes the run's lease in storage; most ticks cost one
 * read. A schedule of its own per interval would need the setting in the function's registration,
 * which a setting cannot change without a redeploy.
 */
export const RECONCILE_SCHEDULE = '0 * * * * *';
/** What a run leaves itself below the invocation budget for the page in flight. */
export const RECONCILE_MARGIN_MS = 60_000;

/** Said once per worker, not every minute. */
let saidUnset = false;

export async function reconcileDataverseNow(_timer: Timer, context: InvocationContext): Promise<void> {
  const log = invocationLog(context);
  const handlers = appHandlers(handlerFiles);
  if (handlers instanceof HandlerLoadError) throw handlers;
  const dataverseUrl = processSettings().dataverseUrl;
  if (!dataverseUrl) {
    if (!saidUnset && handlers.all.some((handler) => handler.reconcile))
      log.error('Handlers reconcile, and DATAVERSE_URL is not set: nothing is reconciled (docs/reconcile.md)', {});
    saidUnset = true;
    return;
  }
  const started = Date.now();
  await reconcileNow({
    storage: getStorageClients(),
    client: getDataverseClient(dataverseUrl),
    handlers,
    settings: reconcileSettings(),
    log,
    telemetry: telemetry(),
    deadline: started + INVOCATION_BUDGET_MS - RECONCILE_MARGIN_MS,
    holder: `instance ${process.env.WEBSITE_INSTANCE_ID ?? process.pid}`,
  });
}

// The host runs a timer function on one instance at a time (a storage lock it holds); the run's
// own lease (storage/reconcileState.ts) also keeps the CLI's `reconcile` and a lost lock from overlapping.
app.timer(FUNCTION_NAMES.reconcile, {
  schedule: RECONCILE_SCHEDULE,
  runOnStartup: false,
  useMonitor: true,
  handler: reconcileDataverseNow,
});
