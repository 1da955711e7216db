import type { DataverseClient } from '../dataverseApi';
import { AUTH_TYPES, IMAGE_TYPES, MODES, STAGES } from './definition';
import { findEndpointsByName, listEndpointSteps, listFailedJobs, listStepImages, listWebhookEndpoints, isWebhookEndpoint, type FailedJobRow } from './rows';

/** What `status` shows: each webhook endpoint, its steps and images, and the recent failures of each step. */
export interface WebhookStatus {
  organizationUrl: string;
  endpoints: EndpointStatus[];
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

function nameOf(table: Record<string, number>, value: number | null): string {
  return Object.entries(table).find(([, candidate]) => candidate === value)?.[0] ?? String(value);
}

export async function readWebhookStatus(client: DataverseClient, options: { endpointName?: string; failedJobsPerStep: number }): Promise<WebhookStatus> {
  const endpoints = options.endpointName === undefined ? await listWebhookEndpoints(client) : (await findEndpointsByName(client, options.endpointName)).filter(isWebhookEndpoint);
  return {
    organizationUrl: client.organizationUrl,
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
              failedJobs: options.failedJobsPerStep > 0 ? await listFailedJobs(client, step.sdkmessageprocessingstepid, options.failedJobsPerStep) : [],
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
  if (status.endpoints.length === 0) return `No webhook endpoints (serviceendpoints with contract 8) in ${status.organizationUrl}.\n`;
  const lines: string[] = [`Webhook endpoints in ${status.organizationUrl}:`];
  for (const endpoint of status.endpoints) {
    lines.push('', `${endpoint.name}  (${endpoint.authType}, id ${endpoint.id})`, `  url: ${endpoint.url ?? '(none)'}`);
    if (endpoint.steps.length === 0) lines.push('  no steps');
    for (const step of endpoint.steps) {
      const failures = step.failedJobs.length;
      lines.push(
        `  step "${step.name}"${step.enabled ? '' : ' (disabled)'}: ${step.stage}, ${step.mode}, rank ${step.rank}${step.asyncAutoDelete ? ', deletes succeeded jobs' : ''}`,
        `    id ${step.id}${step.filteringAttributes ? `; filtering attributes: ${step.filteringAttributes}` : ''}`,
      );
      for (const image of step.images) lines.push(`    image "${image.alias}": ${image.type}, ${image.attributes ? `attributes ${image.attributes}` : 'all attributes'}`);
      lines.push(`    failed jobs: ${failures === 0 ? 'none' : failures}`);
      for (const job of step.failedJobs) {
        const message = oneLine(job.friendlymessage || job.message);
        lines.push(`      ${job.completedon ?? '(not completed)'}  error ${job.errorcode ?? '?'}${message ? `  ${message}` : ''}`);
      }
    }
  }
  return `${lines.join('\n')}\n`;
}
