import {
  createAzureTokenProvider,
  createDataverseClient,
  type DataverseClient,
  type FetchFunction,
  type HttpOptions,
  OrganizationUrlError,
  parseOrganizationUrl,
  type TokenProvider,
} from '../dataverseApi';
import { type CommandIO, UsageError } from './io';

/** What the Dataverse commands reach outside the process; tests replace each part. */
export interface ConnectionDependencies {
  /** Created on first use, so `--help` and usage errors never touch a credential. */
  tokens: () => TokenProvider;
  fetch?: FetchFunction;
  /** Azure Resource Manager, for the function keys. */
  armUrl?: string;
  sleep?: (ms: number) => Promise<void>;
}

export const AZURE_DEPENDENCIES: ConnectionDependencies = { tokens: () => createAzureTokenProvider() };

export const ORG_OPTION_HELP = `  --org URL        the Dataverse organization, e.g. https://contoso.crm.dynamics.com
                   (default: the DATAVERSE_URL environment variable)`;

export const AUTHENTICATION_HELP = `Authenticates with @azure/identity's DefaultAzureCredential: AZURE_TENANT_ID, AZURE_CLIENT_ID and
AZURE_CLIENT_SECRET (an application user in Dataverse), a managed identity, or "az login".`;

/** The organization of --org (or DATAVERSE_URL), checked before anything is sent: a usage mistake otherwise. */
export function organizationUrl(org: string | undefined, io: CommandIO): URL {
  const organization = org ?? io.env.DATAVERSE_URL;
  if (!organization) throw new UsageError('Which organization? Pass --org https://<org>.crm.dynamics.com or set DATAVERSE_URL');
  try {
    return parseOrganizationUrl(organization, { requireDomain: true });
  } catch (error) {
    if (error instanceof OrganizationUrlError) throw new UsageError(`${org !== undefined ? '--org' : 'DATAVERSE_URL'}: ${error.message}`);
    throw error;
  }
}

/** A client for the organization of --org (or DATAVERSE_URL), and the HTTP options it uses, for other Azure calls. */
export function connectToDataverse(
  org: string | undefined,
  io: CommandIO,
  dependencies: ConnectionDependencies,
): { client: DataverseClient; http: HttpOptions } {
  const organization = organizationUrl(org, io);
  const http: HttpOptions = { tokens: dependencies.tokens(), fetch: dependencies.fetch, sleep: dependencies.sleep };
  return { client: createDataverseClient(organization, http), http };
}
