import { app, type InvocationContext } from '@azure/functions';
import { FUNCTION_NAMES } from '../functionNames';
import { appHandlers, HandlerLoadError } from '../handlerApi/load';
import { handlerFiles } from '../handlers';
import { invocationLog } from '../observability/log';
import { telemetry } from '../observability/telemetry';
import { queueReconciledChanges } from '../pipeline/reconcile/fanOut';
import { getStorageClients } from '../storage/clients';
import { RECONCILE_QUEUE, STORAGE_CONNECTION } from '../storage/names';

export async function queueReconciledChangesNow(message: unknown, context: InvocationContext): Promise<void> {
  const handlers = appHandlers(handlerFiles);
  if (handlers instanceof HandlerLoadError) throw handlers;
  await queueReconciledChanges(message, { storage: getStorageClients(), handlers, log: invocationLog(context), telemetry: telemetry() });
}

// A throw makes the host retry the page; a page is idempotent (its events' delivery keys are derived
// from the changes), and a page that fails every attempt goes to dataverse-reconcile-poison, which
// `reconcile` (the CLI, and each run) puts back.
app.storageQueue(FUNCTION_NAMES.queueReconciledChanges, {
  queueName: RECONCILE_QUEUE,
  connection: STORAGE_CONNECTION,
  handler: queueReconciledChangesNow,
});
