/**
 * The app's Azure Functions by name, and the webhook's address: what the Functions host lists and
 * logs, what Application Insights records as `operation_Name` (the KQL of infra/monitoring reads
 * it), what `register` reads function keys for, and what the tests and the bench call. Each is
 * written here once; src/functions registers with these, and a test ties the KQL to them.
 * Renaming a function renames its keys and its telemetry.
 */
export const FUNCTION_NAMES = {
  /** The webhook (HTTP POST, authLevel function). */
  webhook: 'dataverseWebhook',
  /** Every other method on the webhook's route: 405 with `Allow: POST`. */
  webhookOtherMethods: 'dataverseWebhookOtherMethods',
  processEvent: 'processDataverseEvent',
  recordPoisonedEvent: 'recordPoisonedEvent',
  applyRetention: 'applyRetention',
  monitorBacklog: 'monitorBacklog',
  reconcile: 'reconcileDataverse',
  queueReconciledChanges: 'queueReconciledChanges',
} as const;

/** The webhook's route, under the host's route prefix. */
export const WEBHOOK_ROUTE = 'dataverse/webhook';

/**
 * host.json `extensions.http.routePrefix`: host.json leaves it out, so the host's default applies
 * (a test ties the two).
 */
export const HTTP_ROUTE_PREFIX = 'api';

/** Where `func start` and `npm start` serve the app unless told otherwise (Core Tools' default port). */
export const LOCAL_HTTP_PORT = 7071;

/** The webhook's URL at a host's origin: `https://<app>.azurewebsites.net/api/dataverse/webhook`. */
export function webhookUrl(origin: string): string {
  return `${origin.replace(/\/+$/, '')}/${HTTP_ROUTE_PREFIX}/${WEBHOOK_ROUTE}`;
}

/** The webhook's URL on this machine: what `send` posts to by default. */
export const LOCAL_WEBHOOK_URL = webhookUrl(`http://localhost:${LOCAL_HTTP_PORT}`);
