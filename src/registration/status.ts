import { type DerivedStep, IMAGE_TYPES, MODES, STAGES } from '../dataverse/steps';
import type { DataverseClient } from '../dataverseApi';
import { AUTH_TYPES } from './definition';
import { compareSteps, type StepOutcome } from './register';
import {
  type FailedJobRow,
  findEndpointsByName,
  isWebhookEndpoint,
  listEndpointSteps,
  listFailedJobs,
  listStepImages,
  listWebhookEndpoints,
} from './rows';

/** What `status` shows: each webhook endpoint, its steps and images, and the recent failures of each step. */
export interface WebhookStatus {
  organizationUrl: string;
  endpoints: EndpointStatus[];
  /** How the app's endpoint differs from what the handlers declare; null when not compared. */
  drift: Drift | null;
}

/**
 * The difference between the handlers and the steps of the app's endpoint: handlers whose step is
 * not registered (`create`), steps no handler declares (`keep`), and steps whose filtering
 * attributes or images differ (`update`). `register` removes it.
 */
export interface Drift {
  endpoint: string;
  /** False when the endpoint does not exist yet. */
  exists: boolean;
  differences: StepOutcome[];
}

export interface EndpointStatus {
  id: string;
  name: string;
  url: string | null;
  authType: string;
  steps: StepStatus[];
}

export interface StepStatus {
  id: string;
  name: string;
  stage: string;
  mode: string;
  rank: number;
  enabled: boolean;
  filteringAttributes: string | null;
  asyncAutoDelete: boolean;
  images: { alias: string; type: string; attributes: string | null }[];
  /** The most recent failed System Jobs (asyncoperations with statuscode 31) of the step. */
  failedJobs: FailedJobRow[];
}

function nameOf(table: Readonly<Record<string, number>>, value: number | null): string {
  return Object.entries(table).find(([, candidate]) => candidate === value)?.[0] ?? String(value);
}

export interface StatusOptions {
  endpointName?: string;
  failedJobsPerStep: number;
  /** The app's endpoint and the steps its handlers declare, to report drift. */
  expected?: { endpointName: string; steps: readonly DerivedStep[] };
}

export async function readWebhookStatus(client: DataverseClient, options: StatusOptions): Promise<WebhookStatus> {
  const endpoints =
    options.endpointName === undefined
      ? await listWebhookEndpoints(client)
      : (await findEndpointsByName(client, options.endpointName)).filter(isWebhookEndpoint);
  let drift: Drift | null = null;
  if (options.expected) {
    const { endpointName, steps } = options.expected;
    const endpoint = (
      options.endpointName === endpointName ? endpoints : (await findEndpointsByName(client, endpointName)).filter(isWebhookEndpoint)
    )[0];
    drift = endpoint
      ? {
          endpoint: endpointName,
          exists: true,
          differences: (await compareSteps(client, endpoint, steps)).filter((outcome) => outcome.action !== 'unchanged'),
        }
      : { endpoint: endpointName, exists: false, differences: [] };
  }
  return {
    organizationUrl: client.organizationUrl,
    drift,
    endpoints: await Promise.all(
      endpoints.map(async (endpoint) => {
        const steps = await listEndpointSteps(client, endpoint.serviceendpointid);
        return {
          id: endpoint.serviceendpointid,
          name: endpoint.name,
          url: endpoint.url,
          authType: nameOf(AUTH_TYPES, endpoint.authtype),
          steps: await Promise.all(
            steps.map(async (step) => ({
              id: step.sdkmessageprocessingstepid,
              name: step.name,
              stage: nameOf(STAGES, step.stage),
              mode: nameOf(MODES, step.mode),
              rank: step.rank,
              enabled: step.statecode === 0,
              filteringAttributes: step.filteringattributes,
              asyncAutoDelete: step.asyncautodelete ?? false,
              images: (await listStepImages(client, step.sdkmessageprocessingstepid)).map((image) => ({
                alias: image.entityalias,
                type: nameOf(IMAGE_TYPES, image.imagetype),
                attributes: image.attributes,
              })),
              failedJobs:
                options.failedJobsPerStep > 0
                  ? await listFailedJobs(client, step.sdkmessageprocessingstepid, options.failedJobsPerStep)
                  : [],
            })),
          ),
        };
      }),
    ),
  };
}

/** A failure message is shown on one line and bounded: System Job messages can run to pages. */
function oneLine(text: string | null, max = 300): string {
  const flat = (text ?? '').replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max)}…` : flat;
}

export function formatWebhookStatus(status: WebhookStatus): string {
  const lines: string[] = [];
  if (status.endpoints.length === 0) lines.push(`No webhook endpoints (serviceendpoints with contract 8) in ${status.organizationUrl}.`);
  else lines.push(`Webhook endpoints in ${status.organizationUrl}:`);
  for (const endpoint of status.endpoints) {
    lines.push('', `${endpoint.name}  (${endpoint.authType}, id ${endpoint.id})`, `  url: ${endpoint.url ?? '(none)'}`);
    if (endpoint.steps.length === 0) lines.push('  no steps');
    for (const step of endpoint.steps) {
      const failures = step.failedJobs.length;
      lines.push(
        `  step "${step.name}"${step.enabled ? '' : ' (disabled)'}: ${step.stage}, ${step.mode}, rank ${step.rank}${step.asyncAutoDelete ? ', deletes succeeded jobs' : ''}`,
        `    id ${step.id}${step.filteringAttributes ? `; filtering attributes: ${step.filteringAttributes}` : ''}`,
      );
      for (const image of step.images)
        lines.push(`    image "${image.alias}": ${image.type}, ${image.attributes ? `attributes ${image.attributes}` : 'all attributes'}`);
      lines.push(`    failed jobs: ${failures === 0 ? 'none' : failures}`);
      for (const job of step.failedJobs) {
        const message = oneLine(job.friendlymessage || job.message);
        lines.push(`      ${job.completedon ?? '(not completed)'}  error ${job.errorcode ?? '?'}${message ? `  ${message}` : ''}`);
      }
    }
  }
  if (status.drift) lines.push('', ...formatDrift(status.drift));
  return `${lines.join('\n')}\n`;
}

function formatDrift(drift: Drift): string[] {
  const title = `Drift between the handlers and the endpoint "${drift.endpoint}":`;
  if (!drift.exists) return [title, '  the endpoint does not exist: "register" creates it with the handlers\' steps'];
  if (drift.differences.length === 0) return [title, '  none: every step the handlers declare is registered as declared, and no other'];
  const lines = [title];
  for (const difference of drift.differences) {
    if (difference.action === 'keep') lines.push(`  step "${difference.name}": no handler declares it ("register --prune" deletes it)`);
    else if (difference.action === 'create') {
      lines.push(
        `  handler${difference.handlers.length > 1 ? 's' : ''} ${difference.handlers.join(', ')}: no step registered ("register" creates "${difference.name}")${difference.changes
          .filter((change) => change.startsWith('cannot'))
          .map((change) => `; ${change}`)
          .join('')}`,
      );
    } else
      lines.push(
        `  step "${difference.name}" for ${difference.handlers.join(', ')}: not as declared; "register" would update it (${difference.changes.join('; ')})`,
      );
  }
  return lines;
}
